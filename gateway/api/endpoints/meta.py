"""``GET /openapi.json``: the gateway's own OpenAPI document (what it implements, exactly)."""

from __future__ import annotations

from aiohttp import web

from ..routes import ANY, DOCUMENT_KEY, ApiRoute, json_response


async def openapi_document(request: web.Request) -> web.Response:
    return json_response(request.config_dict[DOCUMENT_KEY])


OPERATION = {
    "tags": ["Gateway"],
    "summary": "Get OpenAPI Document",
    "description": "This document: every implemented route with its parameters, bodies and answers. Routes of "
                   "the 1NCE API that are not implemented answer 501 and are listed in x-nce-not-implemented.",
    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}},
}


def routes() -> list[ApiRoute]:
    return [ApiRoute("GET", "/openapi.json", openapi_document, ANY, operation=OPERATION)]
