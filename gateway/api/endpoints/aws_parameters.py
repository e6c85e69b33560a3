"""What a customer needs to set up the AWS integration (1nce-os.json,
``GET /v1/integrate/clouds/aws/parameters``).

1NCE OS answers URLs of CloudFormation templates that roll out its side in the customer's
account. The gateway's analogue is ``integrators/aws_cloudformation_v1.json``: a template with
the IAM role the gateway assumes (mode ``iot_data``, external id) and the IoT policy for a
gateway certificate (mode ``mqtt``), both allowed to publish only. The answer names the URL of
the gateway's own route that serves it (``GET .../aws/templates/{version}``, behind the same
token as every route): download it and create the stack from the file (docs/aws.md).
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from aiohttp import web

from ..errors import not_found
from ..openapi import PREFIX
from ..routes import READ, ApiRoute, json_response, params_of

VERSIONS = ("v1",)


@functools.cache
def template(version: str) -> str:
    return (resources.files("integrators") / f"aws_cloudformation_{version}.json").read_text(encoding="utf-8")


async def get_parameters(request: web.Request) -> web.Response:
    base = f"{request.url.origin()}{PREFIX}/v1/integrate/clouds/aws/templates"
    return json_response({"awsIntegration": [{"version": v, "url": f"{base}/{v}"} for v in VERSIONS]})


async def get_template(request: web.Request) -> web.Response:
    version = params_of(request)["version"]
    if version not in VERSIONS:
        raise not_found(f"no CloudFormation template {version!r}; versions: {', '.join(VERSIONS)}")
    return web.Response(text=template(version), content_type="application/json")


def _patch(operation: dict) -> None:
    operation["description"] += (" nce-gateway: one template, `v1` (integrators/aws_cloudformation_v1.json): the "
                                 "IAM role to assume (mode iot_data) and the IoT policy for the gateway's "
                                 "certificate (mode mqtt). The URL is the gateway's own route serving it (needs "
                                 "a token); create the stack from the downloaded file (docs/aws.md).")


TEMPLATE_OPERATION = {
    "tags": ["IoT Integrator"],
    "summary": "Download the CloudFormation template of the AWS integration",
    "description": "The CloudFormation template (JSON) that sets up the customer's side of an AWS IoT Core "
                   "integration: parameters GatewayPrincipalArn, ExternalId, TopicPrefix, ClientId; outputs "
                   "RoleArn, ThingPolicyName, Region. 404 for an unknown version. Not in 1NCE OS.",
    "parameters": [{"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}],
    "responses": {"200": {"description": "The template", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/cloudFormationTemplate"}}}},
                  "404": {"$ref": "#/components/responses/NotFoundError"}},
}
TEMPLATE_SCHEMAS = {"cloudFormationTemplate": {
    "type": "object", "required": ["AWSTemplateFormatVersion", "Resources"],
    "properties": {"AWSTemplateFormatVersion": {"type": "string"}, "Description": {"type": "string"},
                   "Parameters": {"type": "object"}, "Resources": {"type": "object"}, "Outputs": {"type": "object"}}}}


def routes() -> list[ApiRoute]:
    json.loads(template("v1"))  # a broken template stops the start-up, not a customer's download
    return [
        ApiRoute("GET", "/v1/integrate/clouds/aws/parameters", get_parameters, READ, spec="1nce-os", patch=_patch),
        ApiRoute("GET", "/v1/integrate/clouds/aws/templates/{version}", get_template, READ,
                 operation=TEMPLATE_OPERATION, schemas=TEMPLATE_SCHEMAS),
    ]
