"""Energy Saver: translation templates in the store, applied to every message of a protocol.

At most one template is ACTIVE per protocol (UDP, COAP). Creating or changing a template so
that two would be active for a protocol is refused, naming the other template: switching
templates is an explicit deactivate-then-activate, so a payload is never translated by a
template nobody meant to use. Active templates are compiled once (``bcl.compile_template``)
and kept in memory; the pipeline asks :meth:`TemplateService.translate` for every message.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bcl import TemplateError, TranslationError, compile_template, parse_template
from bcl import translate as bcl_translate
from bcl.compile import CompiledTemplate
from bcl.model import Switch, Template
from bcl.reference import branch_for, read_selector

from .pipeline import Translation

log = logging.getLogger("nce.templates")

PROTOCOLS = ("UDP", "COAP")
STATUSES = ("ACTIVE", "INACTIVE")


class TemplateRefused(ValueError):
    """A template request that cannot be done; ``status`` is the HTTP answer, ``field`` what failed."""

    def __init__(self, message: str, *, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


#: the largest template taken (characters of JSON); real BCL templates are a few KiB, and
#: compiling costs time and memory in proportion (see gateway.template_worker)
MAX_TEMPLATE_CHARS = 64 * 1024


def template_text(template: str | dict) -> tuple[str, dict]:
    """(JSON text, parsed object) of a template given as text (API) or object (CLI, demo);
    refused with every problem when it breaks a rule of the language."""
    size = len(template) if isinstance(template, str) else len(json.dumps(template))
    if size > MAX_TEMPLATE_CHARS:
        raise TemplateRefused(f"template: {size} characters; at most {MAX_TEMPLATE_CHARS} are taken",
                              field="template")
    try:
        parsed = json.loads(template) if isinstance(template, str) else template
        parse_template(parsed)
    except json.JSONDecodeError as exc:
        raise TemplateRefused(f"template is not valid JSON: {exc}", field="template") from None
    except TemplateError as exc:
        raise TemplateRefused(f"template is not valid BCL: {exc}", field="template") from None
    return (template if isinstance(template, str) else json.dumps(template)), parsed


def why_nothing(template: Template, payload: bytes) -> str:
    """Why a template made nothing of a payload, in 1NCE's ``Asset path:..., Error: ...`` form.

    Only switches can run no mapping: name the first one that had no branch for the payload
    (the reference decoder's rules, so the answer matches what the fast decoder did).
    """
    pending = list(template.sense)
    while pending:
        statement = pending.pop(0)
        if not isinstance(statement, Switch):
            continue
        key = read_selector(statement.selector, payload, statement.selector_pointer)
        branch = branch_for(statement, key)
        if branch is not None:
            pending[:0] = branch.do
            continue
        cases = ", ".join(json.dumps(case.value) for case in statement.cases)
        return (f"Asset path:{statement.selector_pointer}, Error: no case matches {json.dumps(key)} "
                f"(cases: {cases or 'none'}) and there is no default; the template translated nothing")
    return "Asset path:/sense, Error: the template translated nothing from this payload"


class TemplateService:
    def __init__(self, store: Any, *, write: Callable[..., Awaitable[Any]], read: Callable[..., Awaitable[Any]]) -> None:
        self.store = store
        self.write = write
        self.read = read
        self._rows: dict[str, dict] = {}
        self._active: dict[str, tuple[str, CompiledTemplate]] = {}
        self.version = -1

    # the pipeline's question ---------------------------------------------------------------

    def translate(self, protocol: str, payload: bytes) -> Translation | None:
        active = self._active.get(protocol)
        if active is None:
            return None
        try:
            result = bcl_translate(active[1], payload)
        except TranslationError as exc:
            return Translation(error=str(exc))
        if not result.value:  # no mapping ran: an empty object would hide the payload (issue 17)
            return Translation(error=why_nothing(active[1].template, payload))
        return Translation(value=result.value, locations=result.locations)

    def active_for(self, protocol: str) -> str | None:
        active = self._active.get(protocol)
        return active[0] if active else None

    # state ---------------------------------------------------------------------------------

    def reload(self) -> None:
        """Rebuild from the store (blocking: run in a reader thread). A stored template that no
        longer compiles (written by a newer gateway, say) is logged and left inactive."""
        version = self.store.templates_version()
        rows = {row["id"]: row for row in self.store.all_templates()}
        active: dict[str, tuple[str, CompiledTemplate]] = {}
        for row in rows.values():
            if row["status"] != "ACTIVE":
                continue
            try:
                compiled = compile_template(row["template"])
            except TemplateError as exc:
                log.error("active template %s does not compile; not applied: %s", row["id"], exc,
                          extra={"event": "template_broken", "template": row["id"]})
                continue
            for protocol in row["protocols"]:
                active[protocol] = (row["id"], compiled)
        self._rows, self._active, self.version = rows, active, version

    def list(self) -> list[dict]:
        return list(self._rows.values())

    def get(self, template_id: str) -> dict | None:
        return self._rows.get(template_id)

    # changes -------------------------------------------------------------------------------

    def _check(self, row: dict) -> None:
        protocols = row["protocols"]
        if not protocols or any(p not in PROTOCOLS for p in protocols) or len(set(protocols)) != len(protocols):
            raise TemplateRefused(f"protocolFilter must be a non-empty list of {', '.join(PROTOCOLS)}",
                                  field="protocolFilter")
        if row["status"] not in STATUSES:
            raise TemplateRefused("status must be ACTIVE or INACTIVE", field="status")
        if row["status"] == "ACTIVE":
            for other in self._rows.values():
                overlap = set(other["protocols"]) & set(protocols)
                if other["id"] != row["id"] and other["status"] == "ACTIVE" and overlap:
                    raise TemplateRefused(
                        f"template {other['id']} ({other['name']}) is already ACTIVE for {', '.join(sorted(overlap))}; "
                        "deactivate it first (at most one active template per protocol)", status=409, field="status")

    async def _save(self, row: dict) -> dict:
        self._check(row)
        await self.write(self.store.save_template, row)
        await self.read(self.reload)
        log.info("template saved", extra={"event": "template_saved", "template": row["id"], "status": row["status"],
                                          "protocols": row["protocols"]})
        return self._rows[row["id"]]

    async def create(self, *, name: str, template: str | dict, protocols: list[str], status: str = "INACTIVE") -> dict:
        text, _ = template_text(template)
        now = time.time_ns() // 1_000_000
        return await self._save({"id": str(uuid.uuid4()), "name": name, "template": text, "protocols": list(protocols),
                                 "status": status, "created_ms": now, "updated_ms": now})

    async def update(self, template_id: str, **changes: Any) -> dict:
        row = self._rows.get(template_id)
        if row is None:
            raise TemplateRefused(f"no template {template_id}", status=404)
        updated = dict(row)
        if "template" in changes:
            updated["template"], _ = template_text(changes.pop("template"))
        unknown = set(changes) - {"name", "protocols", "status"}
        if unknown:
            raise TemplateRefused(f"unknown field(s) {', '.join(sorted(unknown))}")
        updated.update(changes)
        updated["updated_ms"] = time.time_ns() // 1_000_000
        return await self._save(updated)

    async def delete(self, template_id: str) -> None:
        if not await self.write(self.store.delete_template, template_id):
            raise TemplateRefused(f"no template {template_id}", status=404)
        await self.read(self.reload)
