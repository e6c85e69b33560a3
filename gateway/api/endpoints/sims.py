"""SIM management (sim-management.json): list, read, change; and a CSV export of the registry.

A change is written through the gateway's writer thread and the running registry is reloaded
before the answer, so a SIM disabled by ``PUT /v1/sims/{iccid}`` is refused on the very next
packet.
"""

from __future__ import annotations

import io
import logging

from aiohttp import web

from inspector import sim_list
from inspector.sim_list import SimRow

from ...connectivity.service import IMEI_LOCK_BLOCK
from ...sims_import import write_csv
from ..errors import bad_request, not_found
from ..routes import MANAGE, READ, ApiRoute, body_of, gateway_of, json_response, params_of, principal_of
from ..timefmt import format_1nce_sim_date
from ._common import page_offset, paging_headers, parse_filters, parse_sort

log = logging.getLogger("nce.api.sims")

# q filters and sort keys: the two 1NCE documents (imei, ip_address), and more of the SIM's fields
FILTERS = {"imei": "imei", "ip_address": "ip_address", "iccid": "iccid", "imsi": "imsi", "msisdn": "msisdn",
           "label": "label", "status": "status"}
SORT_KEYS = FILTERS


def luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def sim_card(row: SimRow) -> dict:
    """A SIM as the 1NCE SIM_card schema names its fields (fields the gateway has no value for are left out)."""
    s = row.sim
    card: dict = {"iccid": s.iccid,
                  "iccid_with_luhn": s.iccid + luhn_digit(s.iccid) if len(s.iccid) == 19 else s.iccid,
                  "imsi": s.imsi, "current_imsi": s.imsi, "imei_lock": s.imei_lock, "status": s.status,
                  "activation_date": format_1nce_sim_date(row.created_ms), "ip_address": s.ip_address}
    if s.msisdn:
        card["msisdn"] = s.msisdn
    if s.imei:
        card["imei"] = s.imei
    if s.label is not None:
        card["label"] = s.label
    return card


async def list_sims(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    params = params_of(request)
    page, size = params["page"], params["pageSize"]
    filters = parse_filters(params.get("q"), FILTERS)
    sort = parse_sort(params.get("sort"), SORT_KEYS)
    total, rows = await gateway.read(lambda: sim_list.list_sims(gateway.store, filters=filters, sort=sort,
                                                               offset=page_offset(page, size), limit=size))
    return json_response([sim_card(r) for r in rows], headers=paging_headers(total, page, size))


async def get_sim(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    iccid = params_of(request)["iccid"]
    row = await gateway.read(sim_list.get_sim_row, gateway.store, iccid)
    if row is None:
        raise not_found(f"no SIM with ICCID {iccid}")
    return json_response(sim_card(row))


def _changes(update: dict) -> dict:
    changes = {"status": update["status"]}
    if "label" in update:
        changes["label"] = update["label"]
    if "imei_lock" in update:
        changes["imei_lock"] = update["imei_lock"]
    return changes


async def _apply(request: web.Request, updates: list[tuple[str, dict]]) -> None:
    gateway = gateway_of(request)
    missing = await gateway.committer.write(sim_list.update_sims, gateway.store, updates)
    if missing:
        raise not_found(f"no SIM with ICCID {', '.join(missing)}; nothing was changed")
    await gateway.read(gateway.registry.reload)
    for iccid, changes in updates:  # a lock taken off lifts the block it caused, at once (as the CLI does)
        if changes.get("imei_lock") is False and gateway.registry.block_reason(iccid) == IMEI_LOCK_BLOCK:
            await gateway.connectivity.set_block(iccid, None)
    log.info("SIMs changed", extra={"event": "sims_changed", "count": len(updates),
                                    "by": principal_of(request).username})


async def update_sim(request: web.Request) -> web.Response:
    iccid = params_of(request)["iccid"]
    body = body_of(request)
    if body["iccid"] != iccid:
        raise bad_request(f"iccid: the body names {body['iccid']}, the path {iccid}", "iccid")
    await _apply(request, [(iccid, _changes(body))])
    return web.Response(status=200)


async def update_sims(request: web.Request) -> web.Response:
    body = body_of(request)
    if not body:
        raise bad_request("body: an empty list changes nothing", "body")
    await _apply(request, [(u["iccid"], _changes(u)) for u in body])
    return web.Response(status=201)


async def export_sims(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    filters = parse_filters(params_of(request).get("q"), FILTERS)
    _, rows = await gateway.read(lambda: sim_list.list_sims(gateway.store, filters=filters))
    out = io.StringIO()
    write_csv([r.sim for r in rows], out)
    return web.Response(text=out.getvalue(), content_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="sims.csv"'})


def _q_description(operation: dict, name: str) -> None:
    for param in operation.get("parameters", []):
        if param.get("name") == name:
            param["description"] = (
                f"{'Filter' if name == 'q' else 'Sort'} keys: imei, ip_address (1NCE), and also iccid, imsi, msisdn, "
                "label, status (gateway). " + ("Exact match; comma-separated filter:value pairs, all must hold. "
                                                "Example: \"ip_address:10.0.0.1,status:Enabled\""
                                                if name == "q" else "Prepend '-' for descending. Example: \"-imei\""))


def _patch_list(operation: dict) -> None:
    _q_description(operation, "q")
    _q_description(operation, "sort")
    for code in ("404", "422"):
        operation["responses"].pop(code, None)


def _patch_get(operation: dict) -> None:
    operation["responses"].pop("422", None)


def _patch_put(operation: dict) -> None:
    operation["responses"].pop("422", None)
    operation["description"] += " The change reaches the running gateway before the answer."
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    if schema.get("type") == "array":  # POST /v1/sims: all or nothing, synchronously
        schema["minItems"] = 1
        operation["description"] += (" All changes are made in one transaction, before the answer; an unknown "
                                     "ICCID answers 404 and changes nothing.")


_EXPORT = {
    "tags": ["General SIMs"],
    "summary": "Export All SIMs as CSV",
    "description": "Every SIM (optionally filtered by `q` as in GET /v1/sims) as CSV with the columns "
                   "iccid, imsi, ip_address, msisdn, imei, label, status: the format that "
                   "`nce-gateway sims import` reads.",
    "parameters": [{"name": "q", "in": "query", "required": False, "schema": {"type": "string"},
                    "description": "filters as in GET /v1/sims"}],
    "responses": {"200": {"description": "OK", "content": {"text/csv": {"schema": {"type": "string"}}}}},
}


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("GET", "/v1/sims", list_sims, READ, spec="sim-management", patch=_patch_list),
        ApiRoute("POST", "/v1/sims", update_sims, MANAGE, spec="sim-management", patch=_patch_put),
        ApiRoute("GET", "/v1/sims/export", export_sims, READ, operation=_EXPORT),
        ApiRoute("GET", "/v1/sims/{iccid}", get_sim, READ, spec="sim-management", patch=_patch_get),
        ApiRoute("PUT", "/v1/sims/{iccid}", update_sim, MANAGE, spec="sim-management", patch=_patch_put),
    ]
