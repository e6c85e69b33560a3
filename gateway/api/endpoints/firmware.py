"""``POST /v1/optimize/templates/codegen``: the firmware encoder of a template (the gateway's own
route): the C99 header and source, or the Python module, that `nce-gateway template codegen`
writes. Any role that may read templates may call it."""

from __future__ import annotations

from aiohttp import web

from bcl import TemplateError
from bcl.firmware import LANGUAGES, CodegenRefused, generate

from ...templates import TemplateRefused, template_text
from ..errors import bad_request, not_found
from ..routes import READ, ApiRoute, body_of, gateway_of, json_response


async def codegen(request: web.Request) -> web.Response:
    body = body_of(request)
    if ("template" in body) == ("templateId" in body):
        raise bad_request("give either template (the template, as JSON text or an object) or templateId "
                          "(a stored template)", "template")
    if "templateId" in body:
        row = gateway_of(request).templates.get(body["templateId"])
        if row is None:
            raise not_found(f"no template with id {body['templateId']}")
        text = row["template"]
    else:
        try:
            text, _ = template_text(body["template"])
        except TemplateRefused as exc:
            raise bad_request(str(exc), "template") from None
    try:
        files = generate(text, body.get("lang", "c"), body.get("name"))
    except TemplateError as exc:
        raise bad_request(str(exc), "template") from None
    except CodegenRefused as exc:
        raise bad_request(f"cannot generate an encoder: {exc}", "template") from None
    return json_response({"lang": body.get("lang", "c"), "files": [{"name": n, "content": t} for n, t in files.items()]})


_OPERATION = {
    "tags": ["Energy Saver"],
    "summary": "Generate a Firmware Encoder",
    "description": "The encoder a device uses to pack a template's values into exactly the bytes the template "
                   "translates: a C99 header and source (`lang` c: a struct with every asset, an `encode` "
                   "function into a caller's buffer, no dynamic memory) or a Python module (`lang` python, for "
                   "emulators). A layout the generator cannot encode correctly answers 400 saying why. The "
                   "same as `nce-gateway template codegen FILE --lang c|python`; see docs/bcl.md.",
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/CodegenRequest"}}}},
    "responses": {
        "200": {"description": "The generated files", "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/CodegenResponse"}}}},
        "400": {"description": "Invalid template, or a layout the generator refuses"},
        "404": {"description": "No stored template with this templateId"},
    },
}
_SCHEMAS = {
    "CodegenRequest": {"type": "object", "additionalProperties": False, "properties": {
        "template": {"description": "the template, as JSON text or an object", "oneOf": [
            {"type": "string"}, {"type": "object"}]},
        "templateId": {"type": "string", "description": "a stored template instead of `template`"},
        "lang": {"type": "string", "enum": list(LANGUAGES), "default": "c"},
        "name": {"type": "string", "description": "prefix of files, type and function (default: the "
                                                  "template's name)"}}},
    "CodegenResponse": {"type": "object", "required": ["lang", "files"], "properties": {
        "lang": {"type": "string"},
        "files": {"type": "array", "items": {"type": "object", "required": ["name", "content"], "properties": {
            "name": {"type": "string"}, "content": {"type": "string"}}}}}},
}


def routes() -> list[ApiRoute]:
    return [ApiRoute("POST", "/v1/optimize/templates/codegen", codegen, READ, operation=_OPERATION,
                     schemas=_SCHEMAS)]
