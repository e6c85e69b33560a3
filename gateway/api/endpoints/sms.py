"""SMS of a SIM (sim-management.json, tag SMS): send an MT SMS, list, read and cancel.

``POST`` answers 201 only once the SMS is committed to the store (the outbox the sender works
from), so an accepted SMS is sent after a crash or an SMSC outage. The quota check and the
insert are one transaction (docs/sms.md).
"""

from __future__ import annotations

import logging

from aiohttp import web

from inspector import sms as repo

from ...connectivity.quota import MT, SmsRefused, sms_charge, sms_refund, sms_used_up_event
from ...sms.mt import SmsRequestError, build_mt
from ...sms.service import REFUSAL_LABELS, now_ms
from ..errors import ApiError, bad_request, conflict, not_found
from ..routes import MANAGE, READ, ApiRoute, body_of, gateway_of, json_response, params_of, principal_of
from ..timefmt import format_time
from ._common import paging_headers, parse_sort

log = logging.getLogger("nce.api.sms")

SORT_KEYS = {"id": "id", "status": "status", "submit_date": "submit_ms", "delivery_date": "delivery_ms",
             "sms_type": "direction"}
_TYPE_IDS = {repo.MT: 1, repo.MO: 2}


def sms_data(row: dict, imsi: str | None) -> dict:
    """One stored SMS as the 1NCE ``SMS-Data`` schema names its fields."""
    out: dict = {"id": row["id"], "iccid": row["iccid"], "submit_date": format_time(row["submit_ms"]),
                 "dcs": row["dcs"], "payload": row["payload"],
                 "status": {"id": repo.STATUS_IDS[row["status"]], "description": row["status"]},
                 "sms_type": {"id": _TYPE_IDS[row["direction"]], "description": row["direction"]},
                 "retry_count": str(row["attempts"])}
    for key, column in (("delivery_date", "delivery_ms"), ("expiry_date", "expiry_ms"), ("final_date", "final_ms"),
                        ("last_delivery_attempt", "last_attempt_ms")):
        if row[column] is not None:
            out[key] = format_time(row[column])
    if row["next_attempt_ms"] and row["status"] == repo.QUEUED:
        out["retry_date"] = format_time(row["next_attempt_ms"])
    if row["msisdn"]:
        out["msisdn"] = row["msisdn"]
    if imsi:
        out["imsi"] = imsi
    if row["source_address"]:
        out["source_address"] = row["source_address"]
    if row["source_address_type"] is not None:
        out["source_address_type"] = {"id": row["source_address_type"]}
    if row["udh"]:
        out["udh"] = row["udh"]
    if row["error"] and row["status"] in (repo.FAILED, repo.EXPIRED, repo.QUEUED):
        out["error"] = row["error"]  # nce-gateway: why it failed or is being retried
    return out


def _sim(request: web.Request):
    gateway = gateway_of(request)
    iccid = params_of(request)["iccid"]
    sim = gateway.registry.by_iccid.get(iccid)
    if sim is None:
        raise not_found(f"no SIM with ICCID {iccid}")
    return gateway, sim


async def send_sms(request: web.Request) -> web.Response:
    gateway, sim = _sim(request)
    cfg = gateway.config.sms
    now = now_ms()
    try:
        new = build_mt(sim, body_of(request), default_source=cfg.source_address, validity_hours=cfg.validity_hours,
                       now_ms=now)
    except SmsRequestError as exc:
        raise bad_request(str(exc), exc.field) from None
    if not sim.enabled:
        raise ApiError(422, f"SIM {sim.iccid} is {sim.status}: a disabled SIM cannot receive SMS")
    if gateway.sms is None:  # 409, not 503: nothing will change until the operator configures it
        raise conflict("SMS is not configured on this gateway: set [sms] enabled = true and the SMSC's "
                       "host, port, system_id and password (docs/sms.md)")
    charge = sms_charge(gateway.connectivity.defaults, sim.iccid, MT, now)
    try:
        sms_id = await gateway.committer.write(repo.queue_mt, gateway.store, new, now, charge)
    except SmsRefused as exc:
        gateway.sms.metrics.mt.labels(REFUSAL_LABELS[exc.reason]).inc()
        log.info("MT SMS refused: %s", exc, extra={"event": "sms_mt_refused_quota", "iccid": sim.iccid,
                                                     "reason": exc.reason})
        raise ApiError(422, f"{exc.reason}: {exc}", field="payload") from None
    if charge.used_up:
        gateway.connectivity.emit(sms_used_up_event(sim, now, gateway.integrations.routes("NETWORK_EVENT")))
    gateway.sms.metrics.mt.labels("queued").inc()
    gateway.sms.wake()
    log.info("MT SMS queued", extra={"event": "sms_mt_queued", "sms_id": sms_id, "iccid": sim.iccid,
                                     "parts": len(new.parts), "by": principal_of(request).username})
    return web.Response(status=201, headers={"Location": f"/management-api/v1/sims/{sim.iccid}/sms/{sms_id}"})


async def list_sms(request: web.Request) -> web.Response:
    gateway, sim = _sim(request)
    params = params_of(request)
    page, size = params["page"], params["pageSize"]
    sort = parse_sort(params.get("sort"), SORT_KEYS)
    total, rows = await gateway.read(lambda: repo.list_sms(gateway.store, sim.iccid, offset=(page - 1) * size,
                                                           limit=size, sort=sort))
    return json_response([sms_data(r, sim.imsi) for r in rows], headers=paging_headers(total, page, size))


def _sms_id(request: web.Request) -> int:
    value = params_of(request)["id"]
    if value != int(value) or value < 1:
        raise bad_request(f"id: {value} is not an SMS id", "id")
    return int(value)


async def get_sms(request: web.Request) -> web.Response:
    gateway, sim = _sim(request)
    sms_id = _sms_id(request)
    row = await gateway.read(repo.get_sms, gateway.store, sim.iccid, sms_id)
    if row is None:
        raise not_found(f"SIM {sim.iccid} has no SMS {sms_id}")
    return json_response(sms_data(row, sim.imsi))


async def cancel_sms(request: web.Request) -> web.Response:
    gateway, sim = _sim(request)
    sms_id = _sms_id(request)
    status = await gateway.committer.write(repo.cancel_mt, gateway.store, sim.iccid, sms_id, now_ms(),
                                           sms_refund(sim.iccid))
    if status is None:
        raise not_found(f"SIM {sim.iccid} has no SMS {sms_id}")
    if status != repo.CANCELED:
        raise conflict(f"SMS {sms_id} cannot be canceled: it is {status} (only an MT SMS none of whose parts "
                       "reached the SMSC can be)")
    if gateway.sms is not None:
        gateway.sms.metrics.mt.labels("canceled").inc()
    log.info("MT SMS canceled", extra={"event": "sms_mt_canceled", "sms_id": sms_id, "iccid": sim.iccid,
                                       "by": principal_of(request).username})
    return web.Response(status=204)


def _drop_422(operation: dict) -> None:
    operation["responses"].pop("422", None)


def _patch_post(operation: dict) -> None:
    operation["description"] += (
        " nce-gateway: answered 201 once the SMS is stored (it is then sent even across a restart or an SMSC "
        "outage), with its URL in the Location header. payload is text (dcs 0 GSM 7-bit, 8 UCS-2; without dcs "
        "GSM when possible, else UCS-2) or hex octets with dcs 4; long texts are concatenated; a udh is sent as "
        "given. 422: the SIM has no SMS left (SMS_QUOTA_EXHAUSTED), its quota expired (QUOTA_EXPIRED), the monthly "
        "MT-SMS limit is reached (SMS_LIMIT_REACHED), or it is disabled; 409: SMS is not configured on this gateway.")
    operation["responses"]["400"] = {"description": "Bad Request (payload, dcs, udh, expiry_date)", "content": {}}
    operation["responses"]["422"] = {"description": "The SIM has no SMS left of its quota, or is disabled",
                                     "content": {}}
    operation["responses"]["409"] = {"description": "SMS is not configured ([sms] enabled = false)", "content": {}}


def _patch_list(operation: dict) -> None:
    _drop_422(operation)
    for param in operation.get("parameters", []):
        if param.get("name") == "sort":
            param["description"] = ("Sort keys: id, status, submit_date, delivery_date, sms_type; prepend '-' for "
                                    "descending. Default: newest first.")
            param.pop("example", None)


def _patch_delete(operation: dict) -> None:
    _drop_422(operation)
    operation["responses"].pop("200", None)
    operation["responses"]["404"] = {"description": "No such SMS", "content": {}}
    operation["responses"]["409"] = {"description": "The SMS already reached the SMSC, or is not an MT SMS",
                                     "content": {}}


def routes() -> list[ApiRoute]:
    path = "/v1/sims/{iccid}/sms"
    return [
        ApiRoute("GET", path, list_sms, READ, spec="sim-management", patch=_patch_list),
        ApiRoute("POST", path, send_sms, MANAGE, spec="sim-management", patch=_patch_post),
        ApiRoute("GET", path + "/{id}", get_sms, READ, spec="sim-management", patch=_drop_422),
        ApiRoute("DELETE", path + "/{id}", cancel_sms, MANAGE, spec="sim-management", patch=_patch_delete),
    ]
