"""Device endpoints per protocol (1nce-os.json, ``/v1/integrate/devices/endpoints``).

``GET`` shows where devices send to: per protocol (UDP, COAP, COAPS, LWM2M) the domain, the bound
address, the port (COAP: ``securePort`` is the DTLS port) and whether it listens now.
``PATCH .../{protocol}`` changes the endpoint's settings (LWM2M: ``LWM2M_PASSIVE_REPORTING``) and,
a documented difference from 1NCE (where ``active`` is "Not used"), turns the endpoint's socket
off and on while the gateway runs: :mod:`gateway.endpoints`. Owner and Admin only (it cuts off
every device of a protocol); 409 when the port is taken by another program on reopening.
"""

from __future__ import annotations

import copy

from aiohttp import web

from ...endpoints import PROTOCOLS, SETTINGS, Endpoint, EndpointError
from ..errors import ApiError, not_found
from ..openapi import reference
from ..routes import OPERATE, READ, ApiRoute, body_of, gateway_of, json_response, params_of


def endpoint_json(endpoint: Endpoint, domain: str, with_settings: bool) -> dict:
    item: dict = {"protocol": endpoint.protocol, "active": endpoint.active, "domain": domain,
                  "ipAddresses": [endpoint.bind], "port": endpoint.port}
    if endpoint.secure_port is not None:
        item["securePort"] = endpoint.secure_port
    if with_settings:
        item["settings"] = [{"name": name, "state": state, "description": SETTINGS[endpoint.protocol][name]}
                            for name, state in endpoint.settings.items()]
    return item


def _protocol(request: web.Request) -> str:
    protocol = params_of(request)["protocol"].upper()
    if protocol not in PROTOCOLS:
        raise not_found(f"no endpoint {params_of(request)['protocol']!r}; endpoints: {', '.join(PROTOCOLS)}")
    return protocol


async def list_endpoints(request: web.Request) -> web.Response:
    switch = gateway_of(request).endpoints
    domain = switch.domain()
    items = [endpoint_json(switch.describe(p), domain, False) for p in PROTOCOLS]
    return json_response({"page": 1, "pageAmount": 1, "items": items})


async def get_endpoint(request: web.Request) -> web.Response:
    switch = gateway_of(request).endpoints
    return json_response(endpoint_json(switch.describe(_protocol(request)), switch.domain(), True))


async def patch_endpoint(request: web.Request) -> web.Response:
    protocol = _protocol(request)
    body = body_of(request) or {}
    switch = gateway_of(request).endpoints
    settings = {s["name"]: s["state"] for s in body.get("settings", [])}
    try:
        endpoint = await switch.change(protocol, body.get("active"), settings)
    except EndpointError as exc:
        raise ApiError(exc.status, str(exc), field="active" if exc.status == 409 else None) from None
    return json_response(endpoint_json(endpoint, switch.domain(), True))


_PROTOCOLS_TEXT = "UDP, COAP (plain CoAP; securePort is the DTLS port), COAPS (CoAP over DTLS), LWM2M"


def _patch_protocol_param(operation: dict) -> None:
    for param in operation.get("parameters", []):
        if param.get("name") == "protocol":
            param["description"] = f"One of {_PROTOCOLS_TEXT} (case-insensitive); another answers 404."


def _patch_list(operation: dict) -> None:
    operation["description"] = (operation.get("description", "") + f" nce-gateway: the endpoints {_PROTOCOLS_TEXT}, "
                                "on one page. `ipAddresses` is the bound address (0.0.0.0: every address of the "
                                "host); `domain` the host of coaps.public_url, else the host name.")


def _patch_get(operation: dict) -> None:
    _patch_protocol_param(operation)
    operation["responses"]["404"] = {"$ref": "#/components/responses/NotFoundError"}


def _patch_patch(operation: dict) -> None:
    _patch_protocol_param(operation)
    schema = copy.deepcopy(reference()["1nce-os"]["components"]["schemas"]["patchschema"])
    operation["requestBody"]["content"]["application/json"]["schema"] = schema
    schema.pop("required", None)
    active = schema["properties"]["active"]
    active.pop("deprecated", None)
    active["description"] = ("nce-gateway: false closes the endpoint's socket at once (DTLS sessions end), true "
                             "opens it again on the same port; kept across restarts. Not for LWM2M (it shares "
                             "the CoAP sockets).")
    operation["description"] = (operation.get("description", "") + " nce-gateway: `settings` is optional and "
                                "`active` turns the endpoint off and on live (Owner and Admin). 409 when the "
                                "port was taken by another program meanwhile (the endpoint stays off) or the "
                                "protocol is disabled in the configuration; 400 for a setting the endpoint does "
                                "not have, and for LWM2M_PASSIVE_REPORTING DISABLED (the gateway always reports what devices send).")
    operation["responses"]["404"] = {"$ref": "#/components/responses/NotFoundError"}
    operation["responses"]["409"] = {"$ref": "#/components/responses/ConflictError"}


def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    return [
        ApiRoute("GET", "/v1/integrate/devices/endpoints", list_endpoints, READ, spec=os_, patch=_patch_list),
        ApiRoute("GET", "/v1/integrate/devices/endpoints/{protocol}", get_endpoint, READ, spec=os_,
                 patch=_patch_get),
        ApiRoute("PATCH", "/v1/integrate/devices/endpoints/{protocol}", patch_endpoint, OPERATE, spec=os_,
                 patch=_patch_patch),
    ]
