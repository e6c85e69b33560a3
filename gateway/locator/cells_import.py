"""Reading OpenCelliD's CSV (plain or gzip) into cell rows: every row checked, bad rows counted
with their line numbers and skipped, good rows handed on in batches for an idempotent upsert.

Columns (with or without a header row): radio, mcc, net, area, cell, unit, lon, lat, range,
samples, changeable, created, updated, averageSignal.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

HEADER = ("radio", "mcc", "net", "area", "cell", "unit", "lon", "lat", "range", "samples", "changeable",
          "created", "updated", "averageSignal")
RADIOS = ("GSM", "UMTS", "CDMA", "LTE", "NR")
BATCH = 5000


class CellRowError(ValueError):
    """One row that cannot be a cell; the message names the column."""


@dataclass
class ImportSummary:
    rows: int = 0
    imported: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


def open_text(path: str) -> IO[str]:
    """The file as text; gzip is recognised by its magic bytes, whatever the name."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _int(value: str, name: str, low: int, high: int, optional: bool = False) -> int | None:
    if value == "" and optional:
        return None
    try:
        number = int(value)
    except ValueError:
        raise CellRowError(f"{name} {value!r} is not an integer") from None
    if not low <= number <= high:
        raise CellRowError(f"{name} {number} is out of range {low}..{high}")
    return number


def _float(value: str, name: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise CellRowError(f"{name} {value!r} is not a number") from None
    if not low <= number <= high:  # also false for NaN
        raise CellRowError(f"{name} {value} is out of range {low:g}..{high:g}")
    return number


def parse_row(fields: list[str]) -> tuple:
    """One CSV row → a tuple in ``inspector.cells.COLUMNS`` order."""
    if len(fields) != len(HEADER):
        raise CellRowError(f"{len(fields)} columns, expected {len(HEADER)}")
    f = [x.strip() for x in fields]
    radio = f[0].upper()
    if radio not in RADIOS:
        raise CellRowError(f"radio {f[0]!r} is not one of {', '.join(RADIOS)}")
    return (radio, _int(f[1], "mcc", 0, 999), _int(f[2], "net", 0, 999), _int(f[3], "area", 0, 2**32 - 1),
            _int(f[4], "cell", 0, 2**40), _int(f[5], "unit", -1, 2**31, optional=True),
            _float(f[6], "lon", -180, 180), _float(f[7], "lat", -90, 90), _int(f[8], "range", 0, 10**7),
            _int(f[9], "samples", 0, 2**31, optional=True), _int(f[10], "changeable", 0, 1, optional=True),
            _int(f[11], "created", 0, 2**40, optional=True), _int(f[12], "updated", 0, 2**40, optional=True),
            _int(f[13], "averageSignal", -200, 200, optional=True))


def read_cells(text: IO[str], summary: ImportSummary) -> Iterator[list[tuple]]:
    """Batches of good rows; bad rows go into ``summary.bad`` with their line number."""
    batch: list[tuple] = []
    reader = csv.reader(text)
    for fields in reader:
        line = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if line == 1 and fields[0].strip().lower() == "radio":
            continue  # the header row
        summary.rows += 1
        try:
            batch.append(parse_row(fields))
        except CellRowError as exc:
            summary.bad.append((line, str(exc)))
            continue
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def import_cells(path: str, write: Callable[[list[tuple]], None],
                 progress: Callable[[ImportSummary], None] | None = None) -> ImportSummary:
    """Read ``path`` and hand each batch of good rows to ``write`` (one transaction each)."""
    summary = ImportSummary()
    with open_text(path) as text:
        try:
            for batch in read_cells(text, summary):
                write(batch)
                summary.imported += len(batch)
                if progress is not None:
                    progress(summary)
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error) as exc:
            raise CellRowError(f"{path}: unreadable after {summary.rows} row(s): {exc}") from None
    return summary
