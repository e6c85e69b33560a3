"""Energy Saver templates: the list, an editor that shows validation problems at their JSON
pointer, a live test with a hex payload, and activation per protocol."""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from ..calls import PREFIX, back, call, call_ok
from ..render import render, session_of

PROTOCOLS = ("UDP", "COAP")


def _protocols(form: Any) -> list[str]:
    return [p for p in PROTOCOLS if form.get(f"protocol_{p}")]


def _editor(request: web.Request, *, template: dict[str, Any] | None, name: str, text: str, protocols: list[str],
            problems: list[tuple[str, str]] | None = None, result: Any = None, payload_hex: str = "",
            status: int = 200) -> web.Response:
    return render(request, "template_edit.html", status=status, page="templates", template=template, name=name,
                  text=text, protocols=protocols, all_protocols=PROTOCOLS, problems=problems or [], result=result,
                  payload_hex=payload_hex)


def _json_problems(text: str) -> list[tuple[str, str]]:
    """Where the text is not JSON (line and column), before the API is asked."""
    try:
        json.loads(text)
    except ValueError as exc:
        return [("", f"the template is not valid JSON: {exc}")]
    return []


def pretty_json(value: Any) -> str:
    """The translated payload (JSON text in the 1NCE answer) indented for reading."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False)


async def list_templates(request: web.Request) -> web.Response:
    answer = await call_ok(request, "GET", "/v1/optimize/templates")
    return render(request, "templates.html", page="templates", templates=answer.body, all_protocols=PROTOCOLS)


async def new_template(request: web.Request) -> web.Response:
    return _editor(request, template=None, name="", text="", protocols=["UDP"])


async def edit_template(request: web.Request) -> web.Response:
    template_id = request.match_info["id"]
    answer = await call_ok(request, "GET", "/v1/optimize/templates")
    found = next((t for t in answer.body if t["id"] == template_id), None)
    if found is None:
        raise web.HTTPNotFound(text=f"no template {template_id}")
    text = json.dumps(found["template"], indent=2, ensure_ascii=False)
    return _editor(request, template=found, name=found["name"], text=text, protocols=found["protocolFilter"])


async def save_template(request: web.Request) -> web.StreamResponse:
    """Create (no id) or save (id): on a refusal the editor comes back with the text as typed."""
    template_id = request.match_info.get("id")
    form = await request.post()
    name, text = str(form.get("name", "")).strip(), str(form.get("template", ""))
    protocols = _protocols(form)
    problems = _json_problems(text)
    current = {"id": template_id, "name": name, "protocolFilter": protocols} if template_id else None
    if not problems:
        body = {"name": name, "template": text, "protocolFilter": protocols}
        if template_id:
            answer = await call(request, "PATCH", f"/v1/optimize/templates/{template_id}", body=body)
        else:
            answer = await call(request, "POST", "/v1/optimize/templates", body={**body, "status": "INACTIVE"})
        if answer.ok:
            session_of(request).say("ok", f"template {name!r} saved")
            raise web.HTTPSeeOther(f"{PREFIX}/templates/{answer.body['id']}")
        problems = answer.problems
    return _editor(request, template=current, name=name, text=text, protocols=protocols, problems=problems,
                   status=400)


async def test_template(request: web.Request) -> web.Response:
    """Translate a hex payload with the template as it is in the editor (saved or not)."""
    template_id = request.match_info.get("id")
    form = await request.post()
    name, text = str(form.get("name", "")), str(form.get("template", ""))
    protocols = _protocols(form)
    payload_hex = str(form.get("payload_hex", "")).strip().replace(" ", "")
    current = {"id": template_id, "name": name, "protocolFilter": protocols} if template_id else None
    problems = _json_problems(text)
    result = None
    if not problems:
        try:
            payload = bytes.fromhex(payload_hex)
        except ValueError:
            problems = [("payload", "the payload must be hex digits, two per byte")]
        else:
            answer = await call(request, "POST", "/v1/optimize/messages/test",
                                body={"template": text, "payload": base64.b64encode(payload).decode("ascii")})
            if answer.ok:
                result = {**answer.body, "pretty": pretty_json(answer.body.get("translatedPayload"))}
            else:
                problems = answer.problems
    return _editor(request, template=current, name=name, text=text, protocols=protocols, problems=problems,
                   result=result, payload_hex=payload_hex, status=200 if not problems else 400)


async def set_status(request: web.Request) -> web.StreamResponse:
    template_id = request.match_info["id"]
    form = await request.post()
    status = str(form.get("status", ""))
    answer = await call(request, "PATCH", f"/v1/optimize/templates/{template_id}", body={"status": status})
    if answer.ok:
        session_of(request).say("ok", f"template {answer.body['name']!r} is {status}")
    else:
        session_of(request).say("error", answer.message)
    raise back(request, f"{PREFIX}/templates")


async def delete_template(request: web.Request) -> web.StreamResponse:
    template_id = request.match_info["id"]
    answer = await call(request, "DELETE", f"/v1/optimize/templates/{template_id}")
    session_of(request).say("ok" if answer.ok else "error",
                            "template deleted" if answer.ok else answer.message)
    raise web.HTTPSeeOther(f"{PREFIX}/templates")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/templates", list_templates)
    router.add_get("/templates/new", new_template)
    router.add_post("/templates/new", save_template)
    router.add_post("/templates/new/test", test_template)
    router.add_get("/templates/{id}", edit_template)
    router.add_post("/templates/{id}", save_template)
    router.add_post("/templates/{id}/test", test_template)
    router.add_post("/templates/{id}/status", set_status)
    router.add_post("/templates/{id}/delete", delete_template)
