"""The management API's AWS IoT Core bodies, as pure functions (no I/O besides checking that
certificate files exist): request → stored config, stored integration → response.

1NCE OS's ``POST /v1/integrate/clouds/aws`` takes only ``name``, ``eventTypes`` and
``jsonPayloadEnabled``; 1NCE then waits for the customer to roll out a CloudFormation stack
(state ``ROLLOUT_STARTED``). A self-hosted gateway has no stack to wait for, it needs to know
where and how to publish. So the same body is accepted, plus one gateway extension object:

    "connection": {"mode": "mqtt", "host": "...-ats.iot.eu-central-1.amazonaws.com", "port": 8883,
                   "caFile": "/etc/nce/AmazonRootCA1.pem", "certFile": "/etc/nce/thing.pem",
                   "keyFile": "/etc/nce/thing.key", "clientId": "gateway-1", "keepalive": 60,
                   "publishRateLimit": 100}
    "connection": {"mode": "iot_data", "region": "eu-central-1", "endpointUrl": "https://...",
                   "roleArn": "arn:aws:iam::123456789012:role/x", "externalId": "...",
                   "sessionName": "nce-gateway", "sessionDurationSeconds": 3600}

and ``retrySchedule`` (seconds) beside it. Without ``connection`` the integration is stored in
``ROLLOUT_STARTED``: it gets no worker and no events until a PATCH adds the connection (then
``ROLLOUT_DONE``, and the running gateway makes it ``INTEGRATION_ACTIVE``).

Certificates and keys are named by file path on the gateway host, read only when connecting,
never returned: responses leave out ``keyFile`` and ``externalId``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from gateway.config import (AWS_IOT_DATA_KEYS, AWS_MQTT_KEYS, DEFAULT_RETRY_SCHEDULE, AwsIntegrationConfig,
                            ConfigError, validate_aws)

from .base import ROLLOUT_DONE, ROLLOUT_STARTED

#: event types the 1NCE OS API knows (TEST_MESSAGE is sent by the test route, not subscribed to)
API_EVENT_TYPES = ("TELEMETRY_DATA", "LIFECYCLE", "ERROR", "GEOFENCE", "LOCATION", "MO_SMS")  # MO_SMS: docs/sms.md
EVENT_VERSION = "1.0.0"

# API name (camelCase) ↔ config key
_CONNECTION_KEYS = {
    "mode": "mode", "host": "host", "port": "port", "caFile": "ca_file", "certFile": "cert_file",
    "keyFile": "key_file", "clientId": "client_id", "keepalive": "keepalive",
    "publishRateLimit": "publish_rate_limit", "region": "region", "endpointUrl": "endpoint_url",
    "roleArn": "role_arn", "externalId": "external_id", "sessionName": "session_name",
    "sessionDurationSeconds": "session_duration_seconds",
}
_TO_API = {v: k for k, v in _CONNECTION_KEYS.items()}
_SHARED_TO_API = {"event_types": "eventTypes", "retry_schedule": "retrySchedule",
                  "json_payload_enabled": "jsonPayloadEnabled", "name": "name"}
#: never in a response
SECRET_KEYS = ("key_file", "external_id")
_INT_KEYS = {"port", "keepalive", "session_duration_seconds"}
_NUMBER_KEYS = {"publish_rate_limit"}
_ACCOUNT = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):")
_HOST_REGION = re.compile(r"\.iot\.([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com")


class AwsApiError(ValueError):
    """A request body the API answers with 400; ``field`` is the JSON path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class AwsIntegrationRequest:
    """What ``parse_create`` makes of a POST body: enough for ``store.upsert_integration``."""

    name: str
    kind: str  # "aws_mqtt" | "aws_iot_data"
    config: dict[str, Any]
    state: str  # ROLLOUT_DONE with a connection, ROLLOUT_STARTED without


# requests ----------------------------------------------------------------------------------


def parse_event_types(value: Any, field: str = "eventTypes") -> list[str]:
    """``[{"type": "TELEMETRY_DATA", "version": "1.0.0"}, ...]`` → ``["TELEMETRY_DATA", ...]``."""
    if not isinstance(value, list) or not value:
        raise AwsApiError(field, "a non-empty list of {\"type\": ...} objects")
    out: list[str] = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise AwsApiError(where, "an object with \"type\"")
        unknown = sorted(set(item) - {"type", "version"})
        if unknown:
            raise AwsApiError(f"{where}.{unknown[0]}", "unknown property")
        event_type = item.get("type")
        if event_type not in API_EVENT_TYPES:
            raise AwsApiError(f"{where}.type", f"one of {', '.join(API_EVENT_TYPES)}")
        version = item.get("version", EVENT_VERSION)
        if version != EVENT_VERSION:
            raise AwsApiError(f"{where}.version", f"only {EVENT_VERSION} exists")
        if event_type not in out:
            out.append(event_type)
    return out


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 128:
        raise AwsApiError("name", "a string of 1 to 128 characters")
    return value


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise AwsApiError(field, "true or false")
    return value


def _retry_schedule(value: Any) -> list[float]:
    if (not isinstance(value, list) or not value
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in value)):
        raise AwsApiError("retrySchedule", "a non-empty list of non-negative numbers of seconds")
    return [float(v) for v in value]


def _connection(value: Any) -> dict[str, Any]:
    """The ``connection`` object → config keys (types checked here, meaning in ``_validate``)."""
    if not isinstance(value, dict):
        raise AwsApiError("connection", "an object")
    out: dict[str, Any] = {}
    for key, raw in value.items():
        config_key = _CONNECTION_KEYS.get(key)
        where = f"connection.{key}"
        if config_key is None:
            raise AwsApiError(where, f"unknown property; known: {', '.join(_CONNECTION_KEYS)}")
        if raw is None:
            continue
        if config_key in _INT_KEYS:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise AwsApiError(where, "an integer")
        elif config_key in _NUMBER_KEYS:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise AwsApiError(where, "a number")
            raw = float(raw)
        elif not isinstance(raw, str):
            raise AwsApiError(where, "a string")
        out[config_key] = raw
    return out


def _validate(name: str, config: dict[str, Any], check_files: bool) -> AwsIntegrationConfig:
    """Run the config file's validation and report its complaint with the API's field name."""
    aws = config_from_stored(name, config)
    try:
        validate_aws(aws, "@", check_files=check_files)
    except ConfigError as exc:
        text = str(exc)
        match = re.match(r"@\.(\w+): (.*)", text, re.S)
        if not match:
            raise AwsApiError("connection", text.replace("@: ", "")) from None
        key, message = match.groups()
        field = _SHARED_TO_API.get(key) or f"connection.{_TO_API.get(key, key)}"
        message = re.sub(r'mode = "(\w+)"', r'mode "\1"', message)
        raise AwsApiError(field, message) from None
    return aws


def parse_create(body: Any, *, check_files: bool = True) -> AwsIntegrationRequest:
    """A ``POST /v1/integrate/clouds/aws`` body → what to store. Raises AwsApiError."""
    if not isinstance(body, dict):
        raise AwsApiError("body", "a JSON object")
    allowed = {"name", "eventTypes", "jsonPayloadEnabled", "connection", "retrySchedule"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise AwsApiError(unknown[0], "unknown property")
    if "name" not in body:
        raise AwsApiError("name", "required")
    if "eventTypes" not in body:
        raise AwsApiError("eventTypes", "required")
    name = _name(body["name"])
    config: dict[str, Any] = {
        "event_types": parse_event_types(body["eventTypes"]),
        "json_payload_enabled": _bool(body.get("jsonPayloadEnabled", False), "jsonPayloadEnabled"),
        "retry_schedule": _retry_schedule(body["retrySchedule"]) if "retrySchedule" in body
        else list(DEFAULT_RETRY_SCHEDULE),
    }
    if body.get("connection") is None:
        config["mode"] = "mqtt"
        return AwsIntegrationRequest(name=name, kind="aws_mqtt", config=config, state=ROLLOUT_STARTED)
    config.update(_connection(body["connection"]))
    config.setdefault("mode", "mqtt")
    aws = _validate(name, config, check_files)
    return AwsIntegrationRequest(name=name, kind=aws.kind, config=aws.stored(), state=ROLLOUT_DONE)


def apply_patch(name: str, stored: dict[str, Any], state: str, body: Any, *,
                check_files: bool = True) -> AwsIntegrationRequest:
    """A ``PATCH /v1/integrate/clouds/{id}`` body applied to a stored AWS integration.

    ``connection`` keys are merged into the stored ones (``null`` removes a key); a changed
    ``mode`` needs the new mode's keys. An integration waiting for its connection
    (``ROLLOUT_STARTED``) becomes ``ROLLOUT_DONE`` once it has one; other states are kept.
    """
    if not isinstance(body, dict):
        raise AwsApiError("body", "a JSON object")
    for webhook_only in ("url", "headers"):
        if webhook_only in body:
            raise AwsApiError(webhook_only, "only webhook integrations have this")
    allowed = {"eventTypes", "jsonPayloadEnabled", "connection", "retrySchedule", "name"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise AwsApiError(unknown[0], "unknown property")
    config = dict(stored)
    if "name" in body:
        name = _name(body["name"])
    if "eventTypes" in body:
        config["event_types"] = parse_event_types(body["eventTypes"])
    if "jsonPayloadEnabled" in body:
        config["json_payload_enabled"] = _bool(body["jsonPayloadEnabled"], "jsonPayloadEnabled")
    if "retrySchedule" in body:
        config["retry_schedule"] = _retry_schedule(body["retrySchedule"])
    has_connection = state != ROLLOUT_STARTED
    if body.get("connection") is not None:
        patch = body["connection"]
        changes = _connection(patch)
        removed = [_CONNECTION_KEYS[k] for k, v in patch.items() if v is None and k in _CONNECTION_KEYS]
        if changes.get("mode", config.get("mode")) != config.get("mode"):  # a new mode starts afresh
            for key in (*AWS_MQTT_KEYS, *AWS_IOT_DATA_KEYS):
                config.pop(key, None)
        for key in removed:
            config.pop(key, None)
        config.update(changes)
        has_connection = True
    if not has_connection:
        return AwsIntegrationRequest(name=name, kind="aws_mqtt", config=config, state=state)
    config.setdefault("mode", "mqtt")
    aws = _validate(name, config, check_files)
    return AwsIntegrationRequest(name=name, kind=aws.kind, config=aws.stored(),
                                 state=ROLLOUT_DONE if state == ROLLOUT_STARTED else state)


def config_from_stored(name: str, stored: dict[str, Any]) -> AwsIntegrationConfig:
    """The stored config dict as the config file's dataclass (unknown keys ignored)."""
    known = {f for f in AwsIntegrationConfig.__dataclass_fields__} - {"name"}
    return AwsIntegrationConfig(name=name, **{k: v for k, v in stored.items() if k in known})


# responses ---------------------------------------------------------------------------------


def iso_time(ms: int) -> str:
    """Epoch milliseconds → ``2022-03-07T08:51:29.015Z`` (1NCE OS's format)."""
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def event_types_body(event_types: list[str]) -> list[dict[str, str]]:
    return [{"type": t, "version": EVENT_VERSION} for t in event_types if t in API_EVENT_TYPES]


def rollout_token(row: dict[str, Any]) -> str:
    """The response's ``jwt``. In 1NCE OS it carries the CloudFormation rollout details; here
    there is no rollout, so it is an unsigned token naming the integration: it grants nothing
    and holds nothing secret."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'iss': 'nce-gateway', 'sub': row['uuid'], 'name': row['name']})}."


def connection_body(config: dict[str, Any]) -> dict[str, Any]:
    """The gateway extension ``connection`` of a response: everything but the secrets."""
    mode = config.get("mode", "mqtt")
    keys = AWS_MQTT_KEYS if mode == "mqtt" else AWS_IOT_DATA_KEYS
    out: dict[str, Any] = {"mode": mode}
    for key in keys:  # tuning keys of the config file only (reconnect_*, threads, sts_endpoint_url) are left out
        if key in config and key not in SECRET_KEYS and key in _TO_API:
            out[_TO_API[key]] = config[key]
    if mode == "iot_data":
        out["externalIdSet"] = bool(config.get("external_id"))
    return out


def create_response(row: dict[str, Any]) -> dict[str, Any]:
    """The 201 body of ``POST /v1/integrate/clouds/aws`` (exactly 1NCE OS's properties).

    ``row`` is a row of ``store.list_integrations()`` (id, uuid, name, kind, config, state,
    created_ms, updated_ms).
    """
    config = row["config"]
    return {"id": row["uuid"], "name": row["name"], "type": "AWS", "state": row["state"],
            "eventTypes": event_types_body(config.get("event_types") or list(API_EVENT_TYPES)),
            "jsonPayloadEnabled": bool(config.get("json_payload_enabled", False)), "jwt": rollout_token(row),
            "createdTime": iso_time(row["created_ms"]), "updatedTime": iso_time(row["updated_ms"])}


def integration_response(row: dict[str, Any], *, last_error: str | None = None,
                         last_delivery_ms: int | None = None, extended: bool = True) -> dict[str, Any]:
    """The body of ``GET /v1/integrate/clouds/{id}`` (and of list and PATCH) for an AWS
    integration: 1NCE OS's properties, ``region``/``awsAccountId`` where they are known, and
    (``extended``) the gateway's ``connection`` without secrets."""
    config = row["config"]
    body = create_response(row)
    region = config.get("region")
    if region is None:
        match = _HOST_REGION.search(config.get("host") or "")
        region = match.group(1) if match else None
    if region:
        body["region"] = region
    account = _ACCOUNT.match(config.get("role_arn") or "")
    if account:
        body["awsAccountId"] = account.group(1)
    if last_error:
        body["error"] = last_error
    if last_delivery_ms:
        body["lastSuccessfulMessageDelivery"] = iso_time(last_delivery_ms)
    if extended and row["state"] != ROLLOUT_STARTED:
        body["connection"] = connection_body(config)
        body["retrySchedule"] = list(config.get("retry_schedule") or DEFAULT_RETRY_SCHEDULE)
    return body


def is_aws(row: dict[str, Any]) -> bool:
    return str(row.get("kind", "")).startswith("aws_")
