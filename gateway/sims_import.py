"""Reading and validating a SIM file (CSV with a header row, or a JSON list).

All rows are checked before anything is written, and every problem is reported with where it
is (the CSV file's line number, or the JSON list's item number), so an import is all or nothing
and the user can fix the whole file in one go.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from inspector.records import Sim

COLUMNS = ("iccid", "imsi", "ip_address", "msisdn", "imei", "label", "status")
REQUIRED = ("iccid", "imsi", "ip_address")
_DIGITS = re.compile(r"^[0-9]+$")


class SimImportError(ValueError):
    """The file cannot be imported; ``problems`` lists every bad row."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Row(dict):
    """One SIM's fields, with where it is in its file (``line 3``, ``item 2``) for messages."""

    def __init__(self, fields: dict[str, Any], where: str) -> None:
        super().__init__(fields)
        self.where = where


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a CSV (header row required) or JSON (list of objects) file."""
    text = Path(path).read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SimImportError([f"{path}: not valid JSON: {exc}"]) from None
        if not all(isinstance(r, dict) for r in rows):
            raise SimImportError([f"{path}: a JSON SIM file is a list of objects"])
        return [Row(r, f"item {i}") for i, r in enumerate(rows, start=1)]
    reader = csv.DictReader(io.StringIO(text))
    header = [f.strip() for f in reader.fieldnames or ()]
    if "iccid" not in header:
        raise SimImportError([f"{path}: the CSV needs a header row with at least {', '.join(REQUIRED)}"])
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise SimImportError([f"{path}: the header row has no {' or '.join(missing)} column "
                              f"(it has {', '.join(header)}; needed: {', '.join(REQUIRED)})"])
    # reader.line_num is the file line the row ended on (the header is line 1)
    return [Row({(k or "").strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()},
                f"line {reader.line_num}") for row in reader]


def _text(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def validate_rows(rows: Iterable[dict[str, Any]], existing: Iterable[Sim] = (), *,
                  replace: bool = True) -> list[Sim]:
    """Turn rows into SIMs or raise SimImportError naming every bad row.

    ``existing`` is the current registry: an IP held by a SIM that the file does not mention is
    a conflict. A row for an existing ICCID replaces that SIM when ``replace``; otherwise that
    SIM keeps what it has (its IP included) and the caller leaves the row out.
    """
    problems: list[str] = []
    sims: list[Sim] = []
    seen_iccid: dict[str, str] = {}
    seen_ip: dict[str, str] = {}
    rows = list(rows)
    existing = list(existing)
    registered = {s.iccid for s in existing}
    # An existing SIM keeps its IP unless this file gives that SIM a new one.
    in_file = {str(r.get("iccid") or "").strip() for r in rows} if replace else set()
    owner_of_ip = {s.ip_address: s.iccid for s in existing if s.iccid not in in_file}
    for number, row in enumerate(rows, start=1):
        where = getattr(row, "where", f"row {number}")
        row_problems: list[str] = []
        unknown = sorted(set(row) - set(COLUMNS) - {"imei_lock", ""})
        if unknown:
            row_problems.append(f"unknown column(s) {', '.join(unknown)}")
        iccid = _text(row, "iccid")
        imsi = _text(row, "imsi")
        ip = _text(row, "ip_address")
        msisdn = _text(row, "msisdn")
        imei = _text(row, "imei")
        status = _text(row, "status") or "Enabled"
        if iccid is None:
            row_problems.append("iccid is missing")
        elif not _DIGITS.match(iccid) or not 19 <= len(iccid) <= 20:
            row_problems.append(f"iccid {iccid!r} must be 19 or 20 digits")
        elif iccid in seen_iccid:
            row_problems.append(f"iccid {iccid} appears again (first on {seen_iccid[iccid]})")
        if imsi is None:
            row_problems.append("imsi is missing")
        elif not _DIGITS.match(imsi) or len(imsi) != 15:
            row_problems.append(f"imsi {imsi!r} must be 15 digits")
        if ip is None:
            row_problems.append("ip_address is missing")
        else:
            try:
                parsed = ipaddress.ip_address(ip)
                if parsed.version != 4:
                    row_problems.append(f"ip_address {ip!r} must be an IPv4 address")
                ip = str(parsed)
            except ValueError:
                row_problems.append(f"ip_address {ip!r} is not an IP address")
            else:
                if ip in seen_ip:
                    row_problems.append(f"ip_address {ip} is used twice (first on {seen_ip[ip]})")
                elif ip in owner_of_ip and owner_of_ip[ip] != iccid and (replace or iccid not in registered):
                    row_problems.append(f"ip_address {ip} already belongs to SIM {owner_of_ip[ip]}")
        if msisdn is not None and not _DIGITS.match(msisdn.lstrip("+")):
            row_problems.append(f"msisdn {msisdn!r} must be digits")
        if imei is not None and (not _DIGITS.match(imei) or len(imei) not in (14, 15, 16)):
            row_problems.append(f"imei {imei!r} must be 14 to 16 digits")
        if status not in ("Enabled", "Disabled"):
            row_problems.append(f"status {status!r} must be Enabled or Disabled")
        if row_problems:
            problems.extend(f"{where}: {p}" for p in row_problems)
            continue
        assert iccid is not None and imsi is not None and ip is not None
        seen_iccid[iccid] = where
        seen_ip[ip] = where
        lock = str(row.get("imei_lock", "")).strip().lower() in ("1", "true", "yes")
        sims.append(Sim(iccid=iccid, imsi=imsi, ip_address=ip, msisdn=msisdn, imei=imei,
                        label=_text(row, "label"), status=status, imei_lock=lock))
    if problems:
        raise SimImportError(problems)
    return sims


def write_csv(sims: Iterable[Sim], out: io.TextIOBase) -> None:
    """The import format, so an export can be imported again."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for s in sims:
        writer.writerow([s.iccid, s.imsi, s.ip_address, s.msisdn or "", s.imei or "", s.label or "", s.status])
