"""``nce-gateway cells``: the cell table the Device Locator resolves cell ids with
(OpenCelliD's CSV format; docs/locator.md)."""

from __future__ import annotations

import argparse
import sys

from inspector import cells as sql

from .. import audit
from ..cli import CommandError, add_config_argument
from ..locator.cells_import import CellRowError, ImportSummary, import_cells
from . import store_of

SHOWN_BAD_ROWS = 20
PROGRESS_EVERY = 100_000


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("cells", help="the cell table of the Device Locator",
                                 description="The cell table of the Device Locator (OpenCelliD's CSV format).")
    sub = parser.add_subparsers(dest="cells_command", metavar="ACTION", required=True)
    p = sub.add_parser("import", help="import cells from an OpenCelliD CSV file (gzip accepted)",
                       description="Import cells: columns radio, mcc, net, area, cell, unit, lon, lat, range, samples, "
                                   "changeable, created, updated, averageSignal (header row optional; .gz accepted). "
                                   "A cell already in the table is replaced by the file's row (importing the same "
                                   "file twice changes nothing). Bad rows are skipped and reported with their line "
                                   "numbers; the exit status is 1 if there was any.")
    p.add_argument("file")
    add_config_argument(p)
    p.set_defaults(func=import_file)
    p = sub.add_parser("count", help="cells in the table, per radio")
    add_config_argument(p)
    p.set_defaults(func=count_cells)


def import_file(args: argparse.Namespace) -> int:
    store = store_of(args)

    def write(batch: list[tuple]) -> None:
        store.write_with(sql.upsert, batch)

    tty = sys.stderr.isatty()
    shown = [0]  # the last multiple of PROGRESS_EVERY reported

    def progress(summary: ImportSummary) -> None:
        """On a terminal one line kept up to date; elsewhere (a log) a line per 100,000 cells."""
        text = f"{summary.imported} cell(s) imported, {len(summary.bad)} bad row(s)"
        if tty:
            print(f"\r{text}", end="", file=sys.stderr)
        elif summary.imported // PROGRESS_EVERY > shown[0]:
            shown[0] = summary.imported // PROGRESS_EVERY
            print(text, file=sys.stderr)

    try:
        summary = import_cells(args.file, write, progress)
        audit.record_cli_change(store, args)  # the administration log
    except FileNotFoundError:
        raise CommandError(f"{args.file} does not exist") from None
    except CellRowError as exc:
        raise CommandError(str(exc)) from None
    finally:
        store.close()
    if tty:
        print(file=sys.stderr)
    for line, reason in summary.bad[:SHOWN_BAD_ROWS]:
        print(f"  line {line}: {reason}", file=sys.stderr)
    if len(summary.bad) > SHOWN_BAD_ROWS:
        print(f"  ... and {len(summary.bad) - SHOWN_BAD_ROWS} more bad row(s)", file=sys.stderr)
    print(f"{args.file}: {summary.rows} row(s), {summary.imported} cell(s) imported, {len(summary.bad)} bad row(s) "
          "skipped", file=sys.stderr)
    return 1 if summary.bad else 0


def count_cells(args: argparse.Namespace) -> int:
    store = store_of(args)
    try:
        per_radio = store.read_with(sql.count)
    finally:
        store.close()
    for radio, n in per_radio.items():
        print(f"{radio}\t{n}")
    print(f"total\t{sum(per_radio.values())}")
    return 0
