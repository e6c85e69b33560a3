"""Administration logs: who changed what through the management API or the CLI, and when.

Every successful change (POST, PUT, PATCH, DELETE) of the management API is written to the store
before its answer leaves, with the caller's name, role and address, the route, and the request
body with its secrets replaced by ``"***"`` (:func:`redact`). Reads, logins and tests that change
nothing (``.../test``) are not logged. The CLI records its changing commands the same way with
the operating-system user. The logs are served by ``/v1/administrationLogs`` and kept for the
retention period like messages.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from inspector import admin_logs
from inspector.admin_logs import AdminLog

MASK = "***"
CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SECRET_KEY = re.compile(r"password|secret|token|authori[sz]ation|psk|key|external_?id|credential", re.I)
_NOT_CHANGES = ("/test", "/oauth/")


def redact(value: Any, key: str = "") -> Any:
    """A copy of a JSON value with every secret replaced: values under a key that names a secret,
    and every value of a ``headers`` object (webhook headers often carry credentials)."""
    if isinstance(value, dict):
        if key.lower() == "headers":
            return {k: MASK for k in value}
        return {k: (MASK if _SECRET_KEY.search(k) and v is not None else redact(v, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    return value


def is_change(method: str, path: str) -> bool:
    return method in CHANGING and not any(part in path for part in _NOT_CHANGES)


def entry_for(*, source: str, actor: str, role: str, ip: str | None, method: str, route_path: str, path: str,
              params: dict[str, str], status: int) -> AdminLog:
    """The log row of one change; its type follows what the route changes (a device, an integration)."""
    iccid = params.get("deviceId") or params.get("iccid")
    integration = params.get("integrationId")
    kind = "DEVICE" if iccid else "INTEGRATION" if route_path.startswith("/v1/integrate/clouds") else "GENERAL"
    return AdminLog(id=str(uuid.uuid4()), created_ms=time.time_ns() // 1_000_000, source=source, actor=actor,
                    role=role, ip=ip, type=kind, category="info" if status < 400 else "error", iccid=iccid,
                    integration_id=integration, message=f"{method} {route_path}",
                    description=f"{actor} ({role}) {method} {path}: {status}")


async def record_api_change(gateway: Any, request: Any, route_path: str, principal: Any, ip: str, body: Any,
                            status: int) -> None:
    entry = entry_for(source="API", actor=principal.username, role=principal.role, ip=ip, method=request.method,
                      route_path=route_path, path=request.path.removeprefix("/management-api"),
                      params=dict(request.match_info), status=status)
    await gateway.committer.write(admin_logs.record, gateway.store, entry, redact(body))
