"""Reading and validating a SIM file (CSV with a header row, or a JSON list).

All rows are checked before anything is written, and every problem is reported with its row,
so an import is all or nothing and the user can fix the whole file in one go.
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
_DIGITS = re.compile(r"^[0-9]+$")


class SimImportError(ValueError):
    """The file cannot be imported; ``problems`` lists every bad row."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


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
        return rows
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "iccid" not in [f.strip() for f in reader.fieldnames]:
        raise SimImportError([f"{path}: the CSV needs a header row with at least iccid, imsi, ip_address"])
    return [{(k or "").strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()} for row in reader]


def _text(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def validate_rows(rows: Iterable[dict[str, Any]], existing: Iterable[Sim] = ()) -> list[Sim]:
    """Turn rows into SIMs or raise SimImportError naming every bad row.

    ``existing`` is the current registry: an IP held by a SIM that the file does not mention is
    a conflict, while a row for an existing ICCID updates that SIM.
    """
    problems: list[str] = []
    sims: list[Sim] = []
    seen_iccid: dict[str, int] = {}
    seen_ip: dict[str, int] = {}
    rows = list(rows)
    # An existing SIM keeps its IP unless this file gives that SIM a new one.
    in_file = {str(r.get("iccid") or "").strip() for r in rows}
    owner_of_ip = {s.ip_address: s.iccid for s in existing if s.iccid not in in_file}
    for number, row in enumerate(rows, start=1):
        where = f"row {number}"
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
        if iccid is None or not _DIGITS.match(iccid) or not 19 <= len(iccid) <= 20:
            row_problems.append(f"iccid {iccid!r} must be 19 or 20 digits")
        elif iccid in seen_iccid:
            row_problems.append(f"iccid {iccid} appears again (first in row {seen_iccid[iccid]})")
        if imsi is None or not _DIGITS.match(imsi) or len(imsi) != 15:
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
                    row_problems.append(f"ip_address {ip} is used twice (first in row {seen_ip[ip]})")
                elif ip in owner_of_ip and owner_of_ip[ip] != iccid:
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
        seen_iccid[iccid] = number
        seen_ip[ip] = number
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
