"""PSK import jobs (1nce-os.json, ``/v1/integrate/devices/psk/jobs`` and its twin
``/v1/integrate/devices/presharedkey/jobs``).

``POST`` takes 1NCE's body (1 to 5000 ``{deviceId, protocol, secretKey, format}``), imports it
through :mod:`gateway.psk_import` (the path ``nce-gateway psk import FILE`` uses) and answers 202
once every key is stored: the job is DONE by then (acknowledged means durable), and ``Location``
names the job. ``GET`` lists the jobs, newest first; ``GET .../psk/jobs/{jobId}`` (the gateway's
own) shows a job's rows: ok, or the reason a row failed. No key is answered or logged.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from inspector import os_state
from inspector.os_state import PskJob

from ... import psk_import
from ..errors import not_found
from ..openapi import PREFIX
from ..routes import MANAGE, READ, ApiRoute, body_of, gateway_of, json_response, params_of, principal_of
from ..timefmt import format_time
from ._common import page_count, page_offset

log = logging.getLogger("nce.api.psk_jobs")


def job_json(job: PskJob) -> dict:
    return {"id": job.id, "createdAt": format_time(job.created_ms), "updatedAt": format_time(job.updated_ms),
            "status": job.status, "amount": job.amount, "done": job.done, "failed": job.failed}


async def run_import(g: Any, rows: list[psk_import.ImportRow], source: str) -> str:
    """Check, create the job, write every chunk and put the keys in use (``g``: the Gateway); the job id."""
    await g.read(psk_import.check_sims, g.store, rows)
    job_id = await g.committer.write(psk_import.new_job, g.store, source, len(rows))
    grace_ms = int(g.config.psk.rotation_grace_seconds * 1000)
    for chunk, last in psk_import.chunks(rows):
        created = os_state.now_ms()
        await g.committer.write(psk_import.write_chunk, g.store, job_id, chunk, grace_ms, last, created)
        for row in chunk:
            if row.reason is None:
                g.psks.remember(row.iccid, row.protocol, row.key, True, created, grace_ms, g.psks.dtls_key(row.iccid))
    return job_id


async def create_job(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    rows = psk_import.rows_from_json(body_of(request))
    job_id = await run_import(gateway, rows, "API")
    failed = sum(1 for r in rows if r.reason is not None)
    log.info("PSK import job done", extra={"event": "psk_import_done", "job": job_id, "amount": len(rows),
                                           "failed": failed, "by": principal_of(request).username})
    return web.Response(status=202, headers={"Location": f"{PREFIX}/v1/integrate/devices/psk/jobs/{job_id}"})


async def list_jobs(request: web.Request) -> web.Response:
    params = params_of(request)
    page, size = params.get("page", 1), params.get("pageSize", 10)
    gateway = gateway_of(request)
    total, jobs = await gateway.read(os_state.psk_jobs, gateway.store, page_offset(page, size), size)
    return json_response({"page": page, "pageAmount": page_count(total, size), "items": [job_json(j) for j in jobs]})


async def get_job(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    job_id = params_of(request)["jobId"]
    found = await gateway.read(os_state.psk_job, gateway.store, job_id)
    if found is None:
        raise not_found(f"no PSK import job {job_id}")
    job, rows = found
    answer = job_json(job)
    answer["source"] = job.source
    answer["rows"] = [{"line": r.line, "deviceId": r.iccid, "protocol": r.protocol,
                       "result": "OK" if r.ok else "FAILED", **({"reason": r.reason} if r.reason else {})}
                      for r in rows]
    return json_response(answer)


_PAGING = [{"name": "page", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "default": 1}, "description": "nce-gateway: the page"},
           {"name": "pageSize", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
            "description": "nce-gateway: jobs per page"}]


def _patch_list(operation: dict) -> None:
    operation["parameters"] = [dict(p) for p in _PAGING]
    operation["description"] += (" nce-gateway: newest first, `page`/`pageSize` added; the rows of a job: "
                                 "GET /v1/integrate/devices/psk/jobs/{jobId}.")


def _patch_create(operation: dict) -> None:
    operation["description"] += (" nce-gateway: the keys are stored before the 202 (the job is DONE then); "
                                 "`Location` names the job. A row fails on its own (unknown device, a key longer "
                                 "than 32 bytes or bad hex, the same device and protocol twice); the other rows are "
                                 "set. Keys are never answered or logged.")
    operation["responses"]["202"]["headers"] = {"Location": {"schema": {"type": "string"},
                                                             "description": "the job's own route"}}


JOB_OPERATION = {
    "tags": ["Device Integrator"],
    "summary": "A PSK import job and its rows",
    "description": "The job (as in the list) with `source` (API or CLI) and one entry per row: its line (CSV) "
                   "or position (JSON body), device, protocol, OK or FAILED with the reason. Never a key. "
                   "404 for an unknown job. Not in 1NCE OS.",
    "parameters": [{"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}}],
    "responses": {"200": {"description": "OK", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/pskImportJob"}}}},
                  "404": {"$ref": "#/components/responses/NotFoundError"}},
}
JOB_SCHEMAS = {"pskImportJob": {
    "type": "object", "additionalProperties": False,
    "required": ["id", "createdAt", "updatedAt", "status", "amount", "done", "failed", "source", "rows"],
    "properties": {"id": {"type": "string"}, "createdAt": {"type": "string"}, "updatedAt": {"type": "string"},
                   "status": {"type": "string", "enum": ["IN_PROGRESS", "DONE"]}, "amount": {"type": "number"},
                   "done": {"type": "number"}, "failed": {"type": "number"},
                   "source": {"type": "string", "enum": ["API", "CLI"]},
                   "rows": {"type": "array", "items": {
                       "type": "object", "additionalProperties": False, "required": ["line", "result"],
                       "properties": {"line": {"type": "integer"}, "deviceId": {"type": "string", "nullable": True},
                                      "protocol": {"type": "string", "nullable": True},
                                      "result": {"type": "string", "enum": ["OK", "FAILED"]},
                                      "reason": {"type": "string"}}}}}}}


def routes() -> list[ApiRoute]:
    os_ = "1nce-os"
    table = [ApiRoute("GET", "/v1/integrate/devices/psk/jobs/{jobId}", get_job, READ, operation=JOB_OPERATION,
                      schemas=JOB_SCHEMAS)]
    for path in ("/v1/integrate/devices/psk/jobs", "/v1/integrate/devices/presharedkey/jobs"):
        table += [ApiRoute("GET", path, list_jobs, READ, spec=os_, patch=_patch_list),
                  ApiRoute("POST", path, create_job, MANAGE, spec=os_, patch=_patch_create)]
    return table
