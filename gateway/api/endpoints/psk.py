"""Pre-shared keys of devices (1nce-os.json, ``/v1/integrate/devices/{deviceId}/psk``).

``POST .../psk`` (and its older twin ``POST .../presharedkey``, same body and answer) sets the
key of one SIM and protocol through :class:`gateway.psk.PskService`: stored durably before the
answer, used by the next DTLS handshake at once (a running session keeps its key). A key is at
most 32 bytes (Mbed TLS' limit, see docs/dtls.md). ``GET .../psk/{protocol}`` answers the key,
as 1NCE's file says. ``POST .../psk/rotate`` (the gateway's own) replaces the SIM's DTLS key with a
generated one; the old key keeps a grace period (docs/dtls.md). Keys are never logged.

The import jobs (``.../psk/jobs``, ``.../presharedkey/jobs``): psk_jobs.py.
"""

from __future__ import annotations

import copy
import logging

from aiohttp import web

from ...psk import MAX_GRACE_SECONDS, PROTOCOLS, PskError, format_key, parse_key
from ..errors import bad_request, not_found
from ..openapi import reference
from ..routes import (MANAGE, READ, ApiRoute, body_of, gateway_of, json_response, params_of,
                      principal_of)
from ..timefmt import format_time

log = logging.getLogger("nce.api.psk")


async def _existing_sim(request: web.Request) -> str:
    gateway = gateway_of(request)
    iccid = params_of(request)["deviceId"]
    if await gateway.read(gateway.store.get_sim, iccid) is None:
        raise not_found(f"no device {iccid}")
    return iccid


def _answer(iccid: str, protocol: str, fmt: str, secret: str, ms: int) -> dict:
    # the store keeps one time per key (when it was last set): created and updated alike
    return {"deviceId": iccid, "identity": iccid, "secretKey": secret, "format": fmt, "protocol": protocol,
            "createdAt": format_time(ms), "updatedAt": format_time(ms)}


async def set_psk(request: web.Request) -> web.Response:
    iccid = await _existing_sim(request)
    body = body_of(request)
    fmt = body.get("format", "STRING")
    try:
        key = parse_key(body["secretKey"], fmt)
    except PskError as exc:
        raise bad_request(f"secretKey: {exc}", "secretKey") from None
    psk = await gateway_of(request).psks.set(iccid, body["protocol"], key, user_set=True)
    log.info("PSK set through the API", extra={"event": "api_psk_set", "iccid": iccid, "protocol": body["protocol"],
                                                "by": principal_of(request).username})
    return json_response(_answer(iccid, body["protocol"], fmt, body["secretKey"], psk.created_ms))


async def get_psk(request: web.Request) -> web.Response:
    protocol = params_of(request)["protocol"]  # COAP or LWM2M (the operation's enum)
    iccid = await _existing_sim(request)
    psk = gateway_of(request).psks.get(iccid, protocol)
    if psk is None:
        raise not_found(f"device {iccid} has no {protocol} PSK")
    fmt, text = format_key(psk.key)
    return json_response(_answer(iccid, protocol, fmt, text, psk.created_ms))


async def rotate_psk(request: web.Request) -> web.Response:
    iccid = await _existing_sim(request)
    body = body_of(request) or {}
    gateway = gateway_of(request)
    protocol = body.get("protocol", "COAP")
    try:
        psk = await gateway.psks.rotate(iccid, protocol, grace_seconds=body.get("graceSeconds"))
    except PskError as exc:
        raise bad_request(f"graceSeconds: {exc}", "graceSeconds") from None
    log.info("PSK rotated through the API", extra={"event": "api_psk_rotated", "iccid": iccid, "protocol": protocol,
                                                    "by": principal_of(request).username})
    fmt, text = format_key(psk.key)
    answer = _answer(iccid, protocol, fmt, text, psk.created_ms)
    until = gateway.psks.previous_until_ms(iccid)
    if until is not None:
        answer["previousKeyValidUntil"] = format_time(until)
    return json_response(answer)


ROTATE_OPERATION = {
    "tags": ["Device Integrator"],
    "summary": "Rotate a device's PSK",
    "description": "Replace the SIM's DTLS key (the one the CoAPs port accepts for its identity) with a new "
                   "generated key (`psk.generated_length` letters and digits) and answer it. The previous key "
                   "stays valid for `graceSeconds` (default `psk.rotation_grace_seconds`; 0 refuses it at once, "
                   "e.g. for a leaked key): during that time a handshake with either key gets in (a device holding "
                   "the key the server did not offer first fails once and succeeds on its next attempt). Devices "
                   "learn the new key from `GET /bootstrap` or from their next LwM2M bootstrap. 404 for an unknown "
                   "device. Not in 1NCE OS.",
    "parameters": [{"name": "deviceId", "in": "path", "required": True, "schema": {"type": "string"}}],
    "requestBody": {"required": False, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/pskRotateRequest"}}}},
    "responses": {"200": {"description": "OK", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/pskRotateResponse"}}}},
                  "400": {"$ref": "#/components/responses/BadRequestError"},
                  "404": {"$ref": "#/components/responses/NotFoundError"}},
}
ROTATE_SCHEMAS = {
    "pskRotateRequest": {"type": "object", "additionalProperties": False, "properties": {
        "protocol": {"type": "string", "enum": list(PROTOCOLS), "description": "which of the SIM's keys holds the "
                     "new key (the DTLS key is the one set last, whichever protocol); default COAP"},
        "graceSeconds": {"type": "number", "minimum": 0, "maximum": MAX_GRACE_SECONDS,
                         "description": "how long the previous key stays valid (at most 10 years)"}}},
    "pskRotateResponse": {"type": "object", "additionalProperties": False, "required": [
        "deviceId", "identity", "secretKey", "format", "protocol", "createdAt", "updatedAt"],
        "properties": {"deviceId": {"type": "string"}, "identity": {"type": "string"},
                       "secretKey": {"type": "string"}, "format": {"type": "string", "enum": ["STRING", "HEX"]},
                       "protocol": {"type": "string", "enum": list(PROTOCOLS)},
                       "createdAt": {"type": "string"}, "updatedAt": {"type": "string"},
                       "previousKeyValidUntil": {"type": "string", "description": "until when the previous "
                                                 "key is accepted; absent when it is refused at once"}}},
}


def _patch_set(operation: dict) -> None:
    operation["description"] += (" The key is at most 32 bytes (Mbed TLS' limit for DTLS PSKs): at most 32 "
                                 "bytes of UTF-8 text (STRING, the default) or 64 hex digits (HEX); longer keys "
                                 "answer 400. The device must be a SIM of this gateway (404). The answer shows "
                                 "the key as it was given.")


def _patch_get(operation: dict) -> None:
    # keys set with the CLI may be shorter than the 8 characters the 1NCE schema requires
    schema = copy.deepcopy(reference()["1nce-os"]["components"]["schemas"]["postPreSharedKeyResponseschema"])
    schema["properties"]["secretKey"]["minLength"] = 1
    operation["responses"]["200"]["content"]["application/json"]["schema"] = schema
    for param in operation.get("parameters", []):
        if param.get("name") == "protocol":
            param["schema"]["enum"] = list(PROTOCOLS)
            param["description"] = "COAP or LWM2M (UDP has no PSK)."
    operation["description"] += (" The gateway stores the key's bytes, not the format they were given in: "
                                 "`format` is STRING with the text when the key is printable UTF-8, else HEX. "
                                 "`createdAt` and `updatedAt` are both the time the key was last set. 404 for "
                                 "an unknown device or one without a key for this protocol.")


def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    return [
        ApiRoute("POST", "/v1/integrate/devices/{deviceId}/psk", set_psk, MANAGE, spec=os_, patch=_patch_set),
        ApiRoute("POST", "/v1/integrate/devices/{deviceId}/presharedkey", set_psk, MANAGE, spec=os_,
                 patch=_patch_set),
        ApiRoute("GET", "/v1/integrate/devices/{deviceId}/psk/{protocol}", get_psk, READ, spec=os_,
                 patch=_patch_get),
        ApiRoute("POST", "/v1/integrate/devices/{deviceId}/psk/rotate", rotate_psk, MANAGE,
                 operation=ROTATE_OPERATION, schemas=ROTATE_SCHEMAS),
    ]
