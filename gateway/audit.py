"""Administration logs: who changed what through the management API or the CLI, and when.

Every successful change (POST, PUT, PATCH, DELETE) of the management API is written to the store
before its answer leaves, with the caller's name, role and address, the route, and the request
body with its secrets replaced by ``"***"`` (:func:`redact`). Reads, logins and tests that change
nothing (``.../test``) are not logged. The CLI records its changing commands the same way with
the operating-system user. The logs are served by ``/v1/administrationLogs`` and kept for the
retention period like messages.
"""

from __future__ import annotations

import getpass
import os
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
                    integration_id=integration,
                    message=route_path if source == "CLI" else f"{method} {route_path}",
                    description=f"{actor} (CLI) {path}" if source == "CLI" else f"{actor} ({role}) {method} {path}: {status}")


def cli_entry(args: Any) -> tuple[AdminLog, dict[str, Any]]:
    """The log row and redacted arguments of a changing CLI command (``args`` from argparse)."""
    command = getattr(args, "command", "") or ""
    action = getattr(args, f"{command}_command", "") or ""
    name = f"nce-gateway {command} {action}".strip()
    values = {k: v for k, v in vars(args).items()
              if k not in ("func", "command", f"{command}_command") and isinstance(v, (str, int, float, bool, list))}
    iccid = values.get("iccid") if isinstance(values.get("iccid"), str) else None
    entry = entry_for(source="CLI", actor=_os_user(), role="CLI", ip=None, method="CLI", route_path=name, path=name,
                      params={"iccid": iccid} if iccid else {}, status=0)
    if command == "integrations":
        entry = _with_type(entry, "INTEGRATION")
    return entry, redact(values)


def _with_type(entry: AdminLog, kind: str) -> AdminLog:
    return AdminLog(*(kind if f == "type" else getattr(entry, f) for f in AdminLog.__slots__))


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"uid {os.getuid()}"


def record_cli_change(store: Any, args: Any) -> None:
    entry, values = cli_entry(args)
    admin_logs.record(store, entry, values)


async def record_api_change(gateway: Any, request: Any, route_path: str, principal: Any, ip: str, body: Any,
                            status: int) -> None:
    entry = entry_for(source="API", actor=principal.username, role=principal.role, ip=ip, method=request.method,
                      route_path=route_path, path=request.path.removeprefix("/management-api"),
                      params=dict(request.match_info), status=status)
    await gateway.committer.write(admin_logs.record, gateway.store, entry, redact(body))
