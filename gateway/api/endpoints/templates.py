"""Energy Saver (1nce-os.json, ``/v1/optimize``): translation templates and the template test."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from ...template_worker import TemplateTester, TestRefused
from ...templates import MAX_TEMPLATE_CHARS, TemplateRefused
from ..errors import ApiError, bad_request, not_found
from ..routes import MANAGE, READ, ApiRoute, body_of, gateway_of, json_response, params_of

TESTER_KEY: web.AppKey[TemplateTester] = web.AppKey("nce.template_tester")


def object_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (the 1NCE file does not mark these bodies required)."""
    body = body_of(request)
    if not isinstance(body, dict):
        raise bad_request("body: a JSON object is required", "body")
    return body


def template_body(row: dict) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "template": row["template"],
            "protocolFilter": row["protocols"], "status": row["status"]}


def refused(exc: TemplateRefused) -> ApiError:
    return ApiError(exc.status, str(exc), field=exc.field)


async def list_templates(request: web.Request) -> web.Response:
    return json_response([template_body(row) for row in gateway_of(request).templates.list()])


async def create_template(request: web.Request) -> web.Response:
    body = object_body(request)
    try:
        row = await gateway_of(request).templates.create(
            name=body["name"], template=body["template"], protocols=body["protocolFilter"],
            status=body.get("status", "INACTIVE"))
    except TemplateRefused as exc:
        raise refused(exc) from None
    return json_response(template_body(row), status=201)


async def patch_template(request: web.Request) -> web.Response:
    body = object_body(request)
    changes = {key: body[name] for name, key in (("name", "name"), ("template", "template"),
                                                 ("protocolFilter", "protocols"), ("status", "status"))
               if name in body}
    try:
        row = await gateway_of(request).templates.update(params_of(request)["templateId"], **changes)
    except TemplateRefused as exc:
        raise refused(exc) from None
    return json_response(template_body(row))


async def delete_template(request: web.Request) -> web.Response:
    try:
        await gateway_of(request).templates.delete(params_of(request)["templateId"])
    except TemplateRefused as exc:
        raise not_found(str(exc)) from None
    return web.Response(status=204)


async def test_template(request: web.Request) -> web.Response:
    body = object_body(request)
    try:
        payload = base64.b64decode(body["payload"], validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("payload is not valid base64", field="payload") from None
    template = body["template"]
    if len(template) > MAX_TEMPLATE_CHARS:
        raise bad_request(f"template: {len(template)} characters; at most {MAX_TEMPLATE_CHARS} are taken",
                          field="template")
    try:  # compiled and run in a child process, with a time limit (gateway.template_worker)
        return json_response(await request.config_dict[TESTER_KEY].test(template, payload))
    except TestRefused as exc:
        headers = {"Retry-After": "1"} if exc.status == 429 else None
        raise ApiError(exc.status, str(exc), field=exc.field, headers=headers) from None


def _patch_test(operation: dict) -> None:
    operation["responses"]["429"] = {"$ref": "#/components/responses/TooManyRequestsError"}
    operation["responses"]["413"] = {"description": "Payload Too Large: the body is over 1 MiB", "content": {
        "application/json": {"schema": {"type": "object", "properties": {
            "statusCode": {"type": "integer"}, "statusText": {"type": "string"}, "errors": {"type": "array"}}}}}}
    operation["description"] = operation.get("description", "") + (
        f" Templates up to {MAX_TEMPLATE_CHARS} characters; the test runs in a child process and is cut off "
        "after 10 s (400 naming `template`); at most 4 tests wait, beyond that 429.")


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("GET", "/v1/optimize/templates", list_templates, READ, spec="1nce-os"),
        ApiRoute("POST", "/v1/optimize/templates", create_template, MANAGE, spec="1nce-os"),
        ApiRoute("PATCH", "/v1/optimize/templates/{templateId}", patch_template, MANAGE, spec="1nce-os"),
        ApiRoute("DELETE", "/v1/optimize/templates/{templateId}", delete_template, MANAGE, spec="1nce-os"),
        ApiRoute("POST", "/v1/optimize/messages/test", test_template, READ, spec="1nce-os", patch=_patch_test),
    ]
