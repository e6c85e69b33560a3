"""``POST /v1/integrate/clouds/{integrationId}/replay``: queue stored events of a time window for
delivery again (the gateway's own route; Owner and Admin). See docs/delivery.md#replay."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from inspector import replay as store_replay

from ...replay import REPLAYABLE, ReplayRefused, replay_window
from ..errors import bad_request
from ..routes import OPERATE, ApiRoute, body_of, gateway_of, json_response, principal_of
from ..timefmt import format_time, parse_time
from .integrations import find_integration

log = logging.getLogger("nce.api.replay")


async def replay(request: web.Request) -> web.Response:
    gateway = gateway_of(request)
    body = body_of(request)
    row = await find_integration(request)
    now = time.time_ns() // 1_000_000
    since = parse_time(body["since"], "since")[0]
    until = parse_time(body["until"], "until")[0] if body.get("until") else None
    try:
        window = await gateway.read(lambda: replay_window(
            gateway.store, row, since_ms=since, until_ms=until, now_ms=now,
            retention_days=gateway.config.store.retention_days, iccid=body.get("iccid"),
            event_type=body.get("eventType")))
    except ReplayRefused as exc:
        raise bad_request(f"replay refused: {exc}", "since") from None
    # Chunk by chunk in the store's writer, between group commits: live traffic goes on.
    first = await gateway.read(store_replay.first_seq, gateway.store, window)
    queued, after = 0, (first - 1 if first is not None else -1)
    while after >= 0:
        n, after = await gateway.committer.write(store_replay.replay_chunk, gateway.store, window, after)
        queued += n
        worker = gateway.integrations.workers.get(row["id"])
        if worker is not None and n:
            worker.notify()
    gateway.metrics.replayed.labels(row["name"]).inc(queued)
    log.info("integration replay", extra={"event": "integration_replay", "integration": row["name"],
                                          "queued": queued, "by": principal_of(request).username})
    answer = {"integrationId": row["uuid"], "name": row["name"], "queued": queued,
              "since": format_time(window.since_ms), "until": format_time(window.until_ms),
              "eventTypes": list(window.event_types)}
    if window.iccid is not None:
        answer["iccid"] = window.iccid
    return json_response(answer)


_OPERATION = {
    "tags": ["Cloud Integrations"],
    "summary": "Replay Stored Events",
    "description": "Queues the stored events of a time window (within the store's retention) for delivery to "
                   "this integration again: in their original order per SIM, each marked `\"replayed\": true` "
                   "with its original `id` (so a receiver can drop what it already has). Only event types the "
                   "integration receives, never TEST_MESSAGE. Events arriving during the replay are delivered "
                   "as usual. Owner and Admin only. See docs/delivery.md (Replay).",
    "parameters": [{"name": "integrationId", "in": "path", "required": True, "schema": {"type": "string"}}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/ReplayRequest"}}}},
    "responses": {
        "200": {"description": "The events were queued", "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/ReplayResponse"}}}},
        "400": {"description": "A window outside retention, an empty window, or an event type the "
                               "integration does not receive"},
        "404": {"description": "No integration with this id"},
    },
}
_SCHEMAS = {
    "ReplayRequest": {"type": "object", "required": ["since"], "additionalProperties": False, "properties": {
        "since": {"type": "string", "description": "ISO 8601 start of the window (inclusive)"},
        "until": {"type": "string", "description": "ISO 8601 end of the window (exclusive; default now)"},
        "iccid": {"type": "string", "description": "only events of this SIM"},
        "eventType": {"type": "string", "enum": list(REPLAYABLE), "description": "only events of this type"}}},
    "ReplayResponse": {"type": "object", "required": ["integrationId", "name", "queued", "since", "until"],
                       "properties": {
                           "integrationId": {"type": "string"}, "name": {"type": "string"},
                           "queued": {"type": "integer", "description": "events queued for delivery"},
                           "since": {"type": "string"}, "until": {"type": "string"},
                           "eventTypes": {"type": "array", "items": {"type": "string"}},
                           "iccid": {"type": "string", "description": "when the replay was for one SIM"}}},
}


def routes() -> list[ApiRoute]:
    return [ApiRoute("POST", "/v1/integrate/clouds/{integrationId}/replay", replay, OPERATE, operation=_OPERATION,
                     schemas=_SCHEMAS)]
