"""How every list command prints: ``--format table|json|csv``, full values when piped.

A rich table fits itself into the terminal; when the output is not a terminal (a pipe, a file)
there is no width to fit, and rich's default of 80 columns would cut values (an ICCID became
``89882806…`` and ``grep`` found nothing). So off a terminal the table gets all the width it
needs. ``json`` prints a list of objects, ``csv`` a header row of the field names.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

FORMATS = ("table", "json", "csv")
UNLIMITED_WIDTH = 10_000


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="table (default), json (a list of objects) or csv (a header row of field names)")


def console() -> Console:
    """rich's console, without cutting anything when stdout is not a terminal."""
    return Console() if sys.stdout.isatty() else Console(width=UNLIMITED_WIDTH)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def emit(fmt: str, columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]],
         records: Sequence[Any] | None = None, footer: str | None = None) -> None:
    """Print ``rows`` (dicts keyed by the first item of each column) in ``fmt``.

    ``columns`` are (key, table title) pairs; ``records`` is what ``json`` prints when it is
    not the rows themselves; ``footer`` (a count) follows the table only.
    """
    if fmt == "json":
        print(json.dumps(list(rows if records is None else records), indent=2))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([key for key, _ in columns])
        for row in rows:
            writer.writerow([_cell(row.get(key)) for key, _ in columns])
    else:
        table = Table(*(title for _, title in columns))
        for row in rows:
            table.add_row(*(_cell(row.get(key)) for key, _ in columns))
        console().print(table)
        if footer is not None:
            print(footer)
