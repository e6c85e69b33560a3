"""The Device Controller's requests as data: checking a UDP or CoAP request body (API or CLI),
the stored record, its API shape, and what a CoAP ``path`` means on the wire. No I/O."""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any
from urllib.parse import unquote

from aiocoap.numbers.codes import Code

from ..lwm2m.actions import ActionError as ControllerError  # status (HTTP) and field, as for LwM2M actions
from ..lwm2m.actions import iso, now_ms

PROTOCOLS = ("UDP", "COAP")
MODES = ("SEND_NOW", "SEND_WHEN_ACTIVE")
PAYLOAD_TYPES = ("STRING", "BASE64")
METHODS = {"GET": Code.GET, "POST": Code.POST, "PUT": Code.PUT, "DELETE": Code.DELETE, "PATCH": Code.PATCH}


def payload_bytes(payload: str | None, payload_type: str) -> bytes:
    """The bytes a request's payload stands for (STRING: UTF-8; BASE64: decoded)."""
    if payload is None:
        return b""
    if payload_type == "BASE64":
        return base64.b64decode(payload, validate=True)
    return payload.encode("utf-8")


def coap_target(path: str) -> tuple[list[str], list[str]]:
    """Uri-Path segments and Uri-Query items of a request's ``path`` (``a/b?x=1&y``; percent
    escapes decoded, a ``#fragment`` dropped, as a CoAP client does with a URI)."""
    path = path.split("#", 1)[0]
    path, _, query = path.partition("?")
    segments = [unquote(s) for s in path.split("/") if s]
    return segments, [unquote(q) for q in query.split("&") if q]


def validate(protocol: str, body: dict[str, Any], max_payload: int) -> dict[str, Any]:
    """Check a request body (already checked against the 1NCE schema by the API; the CLI builds
    the same dict); returns the fields to store. Raises :class:`ControllerError` (400)."""
    if protocol not in PROTOCOLS:
        raise ControllerError(f"protocol must be one of {', '.join(PROTOCOLS)}", field="protocol")
    port = body.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ControllerError("port must be a whole number from 1 to 65535", field="port")
    payload, payload_type = body.get("payload"), body.get("payloadType") or "STRING"
    if payload is not None and not isinstance(payload, str):
        raise ControllerError("payload must be a string", field="payload")
    if payload_type not in PAYLOAD_TYPES:
        raise ControllerError("payloadType must be STRING or BASE64", field="payloadType")
    if protocol == "UDP" and payload is None:
        raise ControllerError("a UDP request needs a payload", field="payload")
    try:
        data = payload_bytes(payload, payload_type)
    except UnicodeEncodeError:
        raise ControllerError("payload is not valid UTF-8 text (lone surrogates)", field="payload") from None
    except (binascii.Error, ValueError):
        raise ControllerError("payload is not valid base64 (payloadType BASE64)", field="payload") from None
    if len(data) > max_payload:
        raise ControllerError(f"payload is {len(data)} bytes; at most {max_payload}", field="payload")
    if protocol == "UDP" and not data:
        raise ControllerError("a UDP request needs a non-empty payload", field="payload")
    mode = body.get("requestMode") or "SEND_NOW"
    if mode not in MODES:
        raise ControllerError(f"requestMode must be one of {', '.join(MODES)}", field="requestMode")
    request: dict[str, Any] = {"port": port, "payloadType": payload_type}
    if payload is not None:
        request["payload"] = payload
    attempts = 1
    if protocol == "COAP":
        method, path = body.get("requestType"), body.get("path")
        if method not in METHODS:
            raise ControllerError(f"requestType must be one of {', '.join(METHODS)}", field="requestType")
        if not isinstance(path, str) or len(path) > 255:
            raise ControllerError("path must be a string of at most 255 characters", field="path")
        request.update(requestType=method, path=path)
        raw = body.get("sendAttempts", 1)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw != int(raw) or not 1 <= raw <= 5:
            raise ControllerError("sendAttempts must be a whole number from 1 to 5", field="sendAttempts")
        attempts = int(raw)
    return {"protocol": protocol, "mode": mode, "request": request, "send_attempts": attempts}


def to_api(record: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI shape of ``GET /v1/integrate/devices/actions/requests/{requestId}``."""
    return {
        "id": record["id"], "status": record["status"], "deviceId": record["iccid"], "ip": record["ip"] or "",
        "protocol": record["protocol"], "created": iso(record["created_ms"]), "updated": iso(record["updated_ms"]),
        "mode": record["mode"], "resultData": record["result"] or {}, "requestData": record["request"],
        "sendAttemptsLeft": record["attempts_left"], "sendAttempts": record["send_attempts"],
    }


def describe(record: dict[str, Any]) -> str:
    """``UDP to port 3000`` / ``CoAP POST /path to port 5683``, for messages and logs."""
    r = record["request"]
    if record["protocol"] == "UDP":
        return f"UDP message to port {r['port']}"
    return f"CoAP {r['requestType']} {r['path'] or '/'} to port {r['port']}"


def new_record(iccid: str, ip: str | None, fields: dict[str, Any], expiry_seconds: float) -> dict[str, Any]:
    ts = now_ms()
    return {"id": secrets.token_urlsafe(15), "iccid": iccid, **fields, "attempts_left": fields["send_attempts"],
            "status": "SCHEDULED", "result": None, "ip": ip, "created_ms": ts, "updated_ms": ts,
            "expires_ms": ts + int(expiry_seconds * 1000)}
