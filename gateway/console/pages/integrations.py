"""Integrations: webhooks and AWS IoT Core with state and recent failures; create, edit, test,
restart and delete through the API (secrets are entered, never shown back)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..calls import PREFIX, call, call_ok
from ..render import render, session_of
from ._time import short

BASE = "/v1/integrate/clouds"
# the AWS ``connection`` fields (integrators/aws_api.py): MQTT with certificate files, or iot-data
AWS_FIELDS = ("host", "port", "caFile", "certFile", "keyFile", "clientId", "region", "endpointUrl", "roleArn",
              "externalId", "sessionName")
AWS_SECRETS = ("externalId",)  # written, never shown back (empty keeps the stored value)


def headers_from_text(text: str) -> tuple[dict[str, str], str | None]:
    """``Name: value`` per line → a dict; the first bad line's complaint, if any."""
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            return {}, f"headers, line {number}: write 'Name: value'"
        headers[name.strip()] = value.strip()
    return headers, None


def _event_types_of(form: Any, offered: list[str]) -> list[dict[str, str]]:
    """The checked event types of an integration form, in the API's shape."""
    return [{"type": t, "version": "1.0.0"} for t in offered if form.get(f"event_{t}")]


async def _create(request: web.Request, kind_path: str, label: str, body: dict[str, Any]) -> web.StreamResponse:
    """POST a new integration; its page on success, the list with the API's reason otherwise."""
    session = session_of(request)
    answer = await call(request, "POST", f"{BASE}/{kind_path}", body=body)
    if not answer.ok:
        session.say("error", f"{label} {body['name']!r}: {answer.message}")
        raise web.HTTPSeeOther(f"{PREFIX}/integrations")
    session.say("ok", f"{label} {body['name']!r} created")
    raise web.HTTPSeeOther(f"{PREFIX}/integrations/{answer.body['id']}")


def _kind_path(integration: dict[str, Any]) -> str:
    return "webhooks" if integration["type"] == "WEBHOOK" else "aws"


async def _event_types(request: web.Request) -> list[str]:
    answer = await call_ok(request, "GET", f"{BASE}/eventTypes")
    return [item["name"] for item in answer.body.get("eventTypes", []) if item["name"] != "TEST_MESSAGE"]


async def list_integrations(request: web.Request) -> web.Response:
    answer = await call_ok(request, "GET", BASE)
    failures = await call(request, "GET", "/v1/inspect/events", params={"type": "ERROR", "pageSize": 20})
    errors = [{"time": short(e["time"]), "message": e["event"].get("error", {}).get("message", ""),
               "description": e["event"].get("error", {}).get("description", "")}
              for e in (failures.body.get("items", []) if failures.ok else [])]
    return render(request, "integrations.html", page="integrations", integrations=answer.body["items"],
                  errors=errors, event_types=await _event_types(request), aws_fields=AWS_FIELDS,
                  aws_secrets=AWS_SECRETS)


async def show_integration(request: web.Request) -> web.Response:
    answer = await call_ok(request, "GET", f"{BASE}/{request.match_info['id']}")
    integration = answer.body
    headers = integration.get("headers") or {}
    return render(request, "integration.html", page="integrations", integration=integration,
                  headers_text="\n".join(f"{k}: {v}" for k, v in headers.items()),
                  selected=[e["type"] for e in integration.get("eventTypes", [])],
                  connection=integration.get("connection") or {}, aws_fields=AWS_FIELDS, aws_secrets=AWS_SECRETS,
                  event_types=await _event_types(request))


def _webhook_body(form: Any, event_types: list[str]) -> tuple[dict[str, Any], str | None]:
    headers, problem = headers_from_text(str(form.get("headers", "")))
    body: dict[str, Any] = {"url": str(form.get("url", "")).strip(), "headers": headers,
                            "eventTypes": _event_types_of(form, event_types),
                            "jsonPayloadEnabled": bool(form.get("jsonPayloadEnabled"))}
    return body, problem


async def create_webhook(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    body, problem = _webhook_body(form, await _event_types(request))
    session = session_of(request)
    if problem:
        session.say("error", problem)
        raise web.HTTPSeeOther(f"{PREFIX}/integrations")
    body["name"] = str(form.get("name", "")).strip()
    return await _create(request, "webhooks", "webhook", body)


async def update_webhook(request: web.Request) -> web.StreamResponse:
    integration_id = request.match_info["id"]
    form = await request.post()
    body, problem = _webhook_body(form, await _event_types(request))
    session = session_of(request)
    if problem:
        session.say("error", problem)
    else:
        if form.get("keep_headers"):
            body.pop("headers")  # masked values shown back must not overwrite the real ones
        answer = await call(request, "PATCH", f"{BASE}/webhooks/{integration_id}", body=body)
        session.say("ok" if answer.ok else "error", "saved" if answer.ok else answer.message)
    raise web.HTTPSeeOther(f"{PREFIX}/integrations/{integration_id}")


def _aws_connection(form: Any) -> tuple[dict[str, Any], str | None]:
    """The AWS ``connection`` object from the form: MQTT (host, port, certificate files) or the
    iot-data API (region, endpoint, role). Empty fields are left out (on edit: left as stored)."""
    connection: dict[str, Any] = {"mode": str(form.get("mode") or "mqtt")}
    for name in AWS_FIELDS:
        value = str(form.get(name, "")).strip()
        if not value:
            continue
        if name == "port":
            if not value.isdigit():
                return {}, "port: a number such as 8883"
            connection[name] = int(value)
        else:
            connection[name] = value
    return connection, None


async def create_aws(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    session = session_of(request)
    connection, problem = _aws_connection(form)
    name = str(form.get("name", "")).strip()
    if problem:
        session.say("error", f"AWS integration {name!r}: {problem}")
        raise web.HTTPSeeOther(f"{PREFIX}/integrations")
    body = {"name": name, "eventTypes": _event_types_of(form, await _event_types(request)),
            "jsonPayloadEnabled": bool(form.get("jsonPayloadEnabled")), "connection": connection}
    return await _create(request, "aws", "AWS integration", body)


async def update_aws(request: web.Request) -> web.StreamResponse:
    integration_id = request.match_info["id"]
    form = await request.post()
    connection, problem = _aws_connection(form)
    session = session_of(request)
    if problem:
        session.say("error", problem)
    else:
        body = {"connection": connection, "eventTypes": _event_types_of(form, await _event_types(request)),
                "jsonPayloadEnabled": bool(form.get("jsonPayloadEnabled"))}
        answer = await call(request, "PATCH", f"{BASE}/{integration_id}", body=body)
        session.say("ok" if answer.ok else "error", "saved" if answer.ok else answer.message)
    raise web.HTTPSeeOther(f"{PREFIX}/integrations/{integration_id}")


async def operate(request: web.Request) -> web.StreamResponse:
    """Test, restart or delete (the API's own routes; the role check is the API's)."""
    integration_id, operation = request.match_info["id"], request.match_info["operation"]
    integration = (await call_ok(request, "GET", f"{BASE}/{integration_id}")).body
    session = session_of(request)
    if operation == "delete":
        answer = await call(request, "DELETE", f"{BASE}/{integration_id}")
        session.say("ok" if answer.ok else "error",
                    f"{integration['name']!r} deleted" if answer.ok else answer.message)
        raise web.HTTPSeeOther(f"{PREFIX}/integrations" if answer.ok else f"{PREFIX}/integrations/{integration_id}")
    answer = await call(request, "POST", f"{BASE}/{_kind_path(integration)}/{integration_id}/{operation}")
    if answer.ok and operation == "test":
        ok = answer.body.get("testStatus") == "SUCCESS"
        session.say("ok" if ok else "error", f"test: {answer.body.get('testStatus')}: {answer.body.get('message')}")
    elif answer.ok:
        session.say("ok", f"restart: {answer.body.get('message') or answer.body.get('restartStatus')}")
    else:
        session.say("error", f"{operation}: {answer.message}")
    raise web.HTTPSeeOther(f"{PREFIX}/integrations/{integration_id}")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/integrations", list_integrations)
    router.add_post("/integrations/webhooks", create_webhook)
    router.add_post("/integrations/aws", create_aws)
    router.add_get("/integrations/{id}", show_integration)
    router.add_post("/integrations/{id}/webhook", update_webhook)
    router.add_post("/integrations/{id}/aws", update_aws)
    router.add_post(r"/integrations/{id}/{operation:test|restart|delete}", operate)
