"""Partner plugins (1nce-os.json, ``/v1/partners/plugins``): the plugins installed beside the
gateway (:mod:`gateway.plugins`, docs/plugins.md): list, show, uninstall, restart.

1NCE's per-partner install routes (``POST /v1/partners/{DATACAKE,MENDER,TARTABIT,MEMFAULT}/plugins``)
stay 501: they enrol the customer in a partner's hosted service, which a self-hosted gateway
cannot do; a plugin here is a Python package installed with pip. The answers carry the generic
plugin fields plus ``kind`` and ``message`` (why it FAILED) instead of a partner's own fields.
"""

from __future__ import annotations

import copy

from aiohttp import web

from ...plugins import PluginError, PluginState
from ..errors import not_found
from ..openapi import reference
from ..routes import INTEGRATE, READ, ApiRoute, explain_not_implemented, gateway_of, json_response, params_of
from ..timefmt import format_time


def plugin_json(state: PluginState, detail: bool = False) -> dict:
    item = {"id": state.id, "partner": state.partner, "status": state.status,
            "created": format_time(state.created_ms), "updated": format_time(state.updated_ms)}
    if detail:
        item["kind"] = state.kind or "unknown"
        if state.message:
            item["message"] = state.message
    return item


def _state(request: web.Request) -> PluginState:
    try:
        return gateway_of(request).plugins.get(params_of(request)["pluginId"])
    except PluginError as exc:
        raise not_found(str(exc)) from None


async def list_plugins(request: web.Request) -> web.Response:
    plugins = gateway_of(request).plugins.plugins.values()
    return json_response({"page": 1, "pageAmount": 1, "items": [plugin_json(p) for p in plugins]})


async def get_plugin(request: web.Request) -> web.Response:
    return json_response(plugin_json(_state(request), detail=True))


async def delete_plugin(request: web.Request) -> web.Response:
    state = _state(request)
    await gateway_of(request).plugins.uninstall(state.id)
    return web.Response(status=204)


async def restart_plugin(request: web.Request) -> web.Response:
    state = await gateway_of(request).plugins.restart(_state(request).id)
    ok = state.status == "INSTALLED"
    return json_response({"plugin": plugin_json(state, detail=True), "restartStatus": "SUCCESS" if ok else "FAILURE",
                          "message": "Restart was successful" if ok else f"Restart failed: {state.message}"})


def _detail_schema() -> dict:
    schema = copy.deepcopy(reference()["1nce-os"]["components"]["schemas"]["getAllResponseschema_6_items_inner"])
    schema.pop("example", None)
    schema["properties"]["kind"] = {"type": "string", "enum": ["codec", "integration", "unknown"],
                                    "description": "nce-gateway: what the plugin is (unknown while it FAILED)"}
    schema["properties"]["message"] = {"type": "string", "description": "nce-gateway: why it FAILED"}
    schema["required"] = [*schema["required"], "kind"]
    return schema


def _patch_list(operation: dict) -> None:
    operation["description"] = ("nce-gateway: every plugin found through the entry point group "
                                "`nce_gateway.plugins` (docs/plugins.md), on one page; status INSTALLED, FAILED "
                                "or UNINSTALLED.")


def _patch_get(operation: dict) -> None:
    operation["responses"]["200"]["content"]["application/json"]["schema"] = _detail_schema()
    operation["description"] = "nce-gateway: a plugin with its kind and, when FAILED, why. 404 for an unknown id."
    operation["responses"]["404"] = {"$ref": "#/components/responses/NotFoundError"}


def _patch_delete(operation: dict) -> None:
    operation["description"] = ("nce-gateway: stops the plugin and keeps it off across restarts (status "
                                "UNINSTALLED; its Python package stays installed; restart installs it again).")


def _patch_restart(operation: dict) -> None:
    schema = copy.deepcopy(reference()["1nce-os"]["components"]["schemas"]["restartResponseschema"])
    schema.pop("example", None)
    schema["properties"]["plugin"] = _detail_schema()
    operation["responses"]["200"]["content"]["application/json"]["schema"] = schema
    operation["description"] = ("nce-gateway: stops and starts the plugin again (also an UNINSTALLED one); "
                                "FAILURE with the reason when it does not start.")
    operation["responses"]["404"] = {"$ref": "#/components/responses/NotFoundError"}


for _partner in ("DATACAKE", "MENDER", "TARTABIT", "MEMFAULT"):
    explain_not_implemented("POST", f"/v1/partners/{_partner}/plugins",
                            f"the {_partner.title()} plugin of 1NCE OS enrols the customer in {_partner.title()}'s "
                            "hosted service, which a self-hosted gateway cannot do; install a partner's gateway "
                            "plugin (a Python package, docs/plugins.md) and manage it with /v1/partners/plugins")


def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    return [
        ApiRoute("GET", "/v1/partners/plugins", list_plugins, READ, spec=os_, patch=_patch_list),
        ApiRoute("GET", "/v1/partners/plugins/{pluginId}", get_plugin, READ, spec=os_, patch=_patch_get),
        ApiRoute("DELETE", "/v1/partners/plugins/{pluginId}", delete_plugin, INTEGRATE, spec=os_,
                 patch=_patch_delete),
        ApiRoute("POST", "/v1/partners/plugins/{pluginId}/restart", restart_plugin, INTEGRATE, spec=os_,
                 patch=_patch_restart),
    ]
