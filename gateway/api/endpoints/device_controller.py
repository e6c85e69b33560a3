"""The Device Controller for UDP and CoAP (1nce-os.json ``/v1/integrate/devices/{deviceId}/actions/UDP|COAP``
and the bulk forms ``/v1/integrate/devices/actions/UDP|COAP``): requests of :mod:`gateway.controller`.

A request is stored before anything is sent and answered 202 with its id; its status and
result are read with ``GET .../actions/requests/{requestId}`` (endpoints/action_requests.py).
A body the 1NCE schema refuses, or a payload that is not valid base64 or is too long, is 400;
a device that is not a SIM 404 (bulk: ``rejectedDevices``); a disabled SIM or a full queue 409.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ...controller import ControllerError, describe, validate
from ..errors import ApiError
from ..routes import MANAGE, ApiRoute, body_of, gateway_of, json_response, params_of, principal_of

log = logging.getLogger("nce.api.controller")


def _api_error(exc: ControllerError) -> ApiError:
    return ApiError(exc.status, str(exc), field=exc.field if exc.status == 400 else None)


def _when(gateway: object, iccid: str, mode: str) -> str:
    if mode == "SEND_NOW" and gateway.controller.recent(iccid):  # type: ignore[attr-defined]
        return "is being sent now"
    return "waits for the device's next uplink"


async def _post(request: web.Request, protocol: str) -> web.Response:
    gateway = gateway_of(request)
    iccid = params_of(request)["deviceId"]
    try:
        record = await gateway.controller.submit(iccid, protocol, body_of(request))
    except ControllerError as exc:
        raise _api_error(exc) from None
    log.info("controller request submitted", extra={"event": "api_controller_request", "request_id": record["id"],
                                                    "iccid": iccid, "protocol": protocol,
                                                    "by": principal_of(request).username})
    return json_response({"id": record["id"], "message": f"{describe(record)} for device {iccid} "
                                                        f"{_when(gateway, iccid, record['mode'])}."}, status=202)


async def _post_bulk(request: web.Request, protocol: str) -> web.Response:
    gateway = gateway_of(request)
    body = dict(body_of(request))
    devices = body.pop("deviceIds")
    try:  # a bad body is bad for every device: 400, nothing stored
        fields = validate(protocol, body, gateway.config.controller.max_payload_bytes)
    except ControllerError as exc:
        raise _api_error(exc) from None
    accepted, rejected = [], []
    for iccid in dict.fromkeys(devices):
        try:
            record = await gateway.controller.submit(iccid, protocol, body, fields)
        except ControllerError:
            rejected.append(iccid)
            continue
        accepted.append({"requestId": record["id"], "deviceId": iccid})
    log.info("controller requests submitted", extra={"event": "api_controller_bulk", "protocol": protocol,
                                                     "accepted": len(accepted), "rejected": len(rejected),
                                                     "by": principal_of(request).username})
    what = "UDP message" if protocol == "UDP" else f"CoAP {body['requestType']} {body['path'] or '/'}"
    return json_response({"acceptedRequests": accepted, "rejectedDevices": rejected,
                          "message": f"{what} scheduled for {len(accepted)} device(s)."}, status=202)


async def post_udp(request: web.Request) -> web.Response:
    return await _post(request, "UDP")


async def post_coap(request: web.Request) -> web.Response:
    return await _post(request, "COAP")


async def post_bulk_udp(request: web.Request) -> web.Response:
    return await _post_bulk(request, "UDP")


async def post_bulk_coap(request: web.Request) -> web.Response:
    return await _post_bulk(request, "COAP")


# documented differences ----------------------------------------------------------------------------

RULES = (" Sent at once (SEND_NOW) when the device sent anything within `[controller] recent_uplink_seconds` "
         "(default 60 s), otherwise (and always for SEND_WHEN_ACTIVE) with its next uplink of any protocol; "
         "FAILED when still waiting after `[controller] expiry_seconds` (default 24 h). The address is the "
         "source address of the device's last uplink, the port the body's `port`; a CoAP request to a device "
         "whose last uplink came over a DTLS session still open goes inside that session. "
         "See docs/device-controller.md.")


def _patch_post(operation: dict) -> None:
    operation["description"] += (" 400 for a payload that is not valid base64 (BASE64) or is longer than "
                                 "`[controller] max_payload_bytes`; 404 when the device is not a SIM of this "
                                 "gateway; 409 when the SIM is disabled or already has `[controller] "
                                 "max_queued_per_device` open requests, or the gateway `max_queued_total`." + RULES)


def _patch_bulk(operation: dict) -> None:
    operation["description"] += (" A body that is invalid for every device answers 400 and creates nothing; "
                                 "devices that are not SIMs, are disabled or have a full queue are listed in "
                                 "`rejectedDevices`." + RULES)


def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    base = "/v1/integrate/devices"
    return [
        ApiRoute("POST", f"{base}/{{deviceId}}/actions/UDP", post_udp, MANAGE, spec=os_, patch=_patch_post),
        ApiRoute("POST", f"{base}/{{deviceId}}/actions/COAP", post_coap, MANAGE, spec=os_, patch=_patch_post),
        ApiRoute("POST", f"{base}/actions/UDP", post_bulk_udp, MANAGE, spec=os_, patch=_patch_bulk),
        ApiRoute("POST", f"{base}/actions/COAP", post_bulk_coap, MANAGE, spec=os_, patch=_patch_bulk),
    ]
