"""Bulk PSK import: many devices' keys in one job, from the API's JSON body or a CSV file.

Shared by ``POST /v1/integrate/devices/psk/jobs`` and ``nce-gateway psk import FILE``. Every row
is checked on its own (the SIM exists, protocol COAP or LWM2M, the key valid for DTLS: at most 32
bytes, :func:`gateway.psk.parse_key`); good rows are written in chunks of :data:`CHUNK`, each
chunk's keys and its rows' results in ONE transaction, so the job's counters always match the
keys stored. A row's result is ok or a reason; the key itself is never stored in the job, logged
or answered. Keys replace a SIM's DTLS key with the configured grace period, as ``psk set`` does.

CSV: a header row naming the columns (any order, case-insensitive): ``deviceId`` (or ``iccid``),
``secretKey`` (or ``psk``), optional ``protocol`` (default COAP) and ``format`` (STRING or HEX,
default STRING) — the fields of 1NCE's JSON body.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from inspector import os_state
from inspector.os_state import PskJobRow
from inspector.sqlite import transaction

from .psk import PROTOCOLS, PskError, parse_key

CHUNK = 500
MAX_ROWS = 5000  # 1NCE's limit for one job
_ALIASES = {"deviceid": "deviceId", "iccid": "deviceId", "secretkey": "secretKey", "psk": "secretKey",
            "protocol": "protocol", "format": "format"}


class PskImportError(ValueError):
    """The file or body as a whole cannot be imported (the message says why; no key in it)."""


@dataclass
class ImportRow:
    line: int  # CSV line number, or position in the JSON body (1-based)
    iccid: str | None
    protocol: str | None
    key: bytes | None
    reason: str | None = None  # why the row fails; None: it is set

    def result(self) -> PskJobRow:
        return PskJobRow(self.line, self.iccid, self.protocol, self.reason is None, self.reason)


def _row(line: int, fields: dict[str, Any]) -> ImportRow:
    iccid = str(fields.get("deviceId") or "").strip() or None
    protocol = str(fields.get("protocol") or "COAP").strip().upper()
    row = ImportRow(line, iccid, protocol, None)
    if iccid is None:
        row.reason = "deviceId: missing"
    elif protocol not in PROTOCOLS:
        row.reason = f"protocol: must be one of {', '.join(PROTOCOLS)}"
    elif not fields.get("secretKey"):
        row.reason = "secretKey: missing"
    else:
        try:
            row.key = parse_key(str(fields["secretKey"]), str(fields.get("format") or "STRING").strip().upper())
        except PskError as exc:
            row.reason = f"secretKey: {exc}"
    return row


def rows_from_json(items: Sequence[dict]) -> list[ImportRow]:
    """Rows of the API body (already checked against 1NCE's schema)."""
    return _mark_duplicates([_row(i, item) for i, item in enumerate(items, 1)])


def rows_from_csv(text: str) -> list[ImportRow]:
    """Rows of a CSV file; :class:`PskImportError` when its header lacks a needed column."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise PskImportError("the file is empty (a header row deviceId,secretKey[,protocol,format] is needed)")
    names = [_ALIASES.get(h.strip().lower()) for h in header]
    for needed in ("deviceId", "secretKey"):
        if needed not in names:
            raise PskImportError(f"the header row has no {needed} column (columns: deviceId or iccid, secretKey "
                                 "or psk, optional protocol and format)")
    rows = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        fields = {name: value for name, value in zip(names, values) if name is not None}
        rows.append(_row(reader.line_num, fields))
    if not rows:
        raise PskImportError("the file has no rows below its header")
    if len(rows) > MAX_ROWS:
        raise PskImportError(f"{len(rows)} rows: one import takes at most {MAX_ROWS}")
    return _mark_duplicates(rows)


def _mark_duplicates(rows: list[ImportRow]) -> list[ImportRow]:
    seen: dict[tuple[str | None, str | None], int] = {}
    for row in rows:
        if row.reason is not None:
            continue
        key = (row.iccid, row.protocol)
        if key in seen:
            row.reason = f"duplicate: line {seen[key]} sets the same device and protocol"
        else:
            seen[key] = row.line
    return rows


def check_sims(store: Any, rows: Iterable[ImportRow]) -> None:
    """Fail rows whose SIM the gateway does not know (blocking: a reader thread or the CLI)."""
    known: dict[str, bool] = {}
    for row in rows:
        if row.reason is None and row.iccid is not None:
            if row.iccid not in known:
                known[row.iccid] = store.get_sim(row.iccid) is not None
            if not known[row.iccid]:
                row.reason = "deviceId: no SIM with this ICCID"


def new_job(store: Any, source: str, amount: int) -> str:
    job_id = str(uuid.uuid4())
    os_state.create_psk_job(store, job_id, source, amount)
    return job_id


def chunks(rows: Sequence[ImportRow]) -> Iterator[tuple[Sequence[ImportRow], bool]]:
    """(chunk, last) pairs."""
    for start in range(0, len(rows), CHUNK):
        yield rows[start:start + CHUNK], start + CHUNK >= len(rows)


def write_chunk(store: Any, job_id: str, rows: Sequence[ImportRow], grace_ms: int, finished: bool,
                created_ms: int) -> None:
    """Store a chunk's good keys and every row's result in one transaction (blocking)."""
    conn = store.connection()
    with transaction(conn):
        for row in rows:
            if row.reason is None:
                assert row.iccid is not None and row.protocol is not None and row.key is not None
                store.set_psk_in(conn, row.iccid, row.protocol, row.key, True, created_ms, grace_ms)
        os_state.add_psk_job_rows_in(conn, job_id, [r.result() for r in rows], finished)
