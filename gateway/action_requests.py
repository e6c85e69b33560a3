"""Device action requests of every protocol as the API shows them: LwM2M actions
(``lwm2m_actions``) and the Device Controller's UDP and CoAP requests (``device_actions``),
read through one listing (:func:`inspector.device_actions.page`). Used by the API and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspector import device_actions as controller_store

from .controller import to_api as controller_api
from .lwm2m import storage as lwm2m_store
from .lwm2m.actions import to_api as lwm2m_api

ACTIVE = ("SCHEDULED", "IN_PROGRESS")
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def item(conn: Any, request_id: str) -> dict[str, Any] | None:
    """One request (any protocol) in the API's shape, or None."""
    record = controller_store.get(conn, request_id)
    if record is not None:
        return controller_api(record)
    record = lwm2m_store.get_action(conn, request_id)
    return lwm2m_api(record) if record is not None else None


def page(conn: Any, *, iccid: str | None = None, statuses: Sequence[str] = (), protocols: Sequence[str] = (),
         limit: int = 100, offset: int = 0, newest_first: bool = True,
         order_by: str = "created") -> tuple[list[dict[str, Any]], int]:
    """A page of requests (any protocol) in the API's shape, and the total."""
    refs, total = controller_store.page(conn, iccid=iccid, statuses=statuses, protocols=protocols, limit=limit,
                                        offset=offset, newest_first=newest_first, order_by=order_by)
    items = []
    for protocol, request_id in refs:
        if protocol == "LWM2M":
            record = lwm2m_store.get_action(conn, request_id)
            if record is not None:
                items.append(lwm2m_api(record))
        else:
            record = controller_store.get(conn, request_id)
            if record is not None:
                items.append(controller_api(record))
    return items, total
