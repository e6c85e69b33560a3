"""``nce-gateway sims``: the SIM registry (import, list, export, enable/disable)."""

from __future__ import annotations

import argparse
import sys

from ..cli import CommandError, add_config_argument
from ..sims_import import COLUMNS, SimImportError, read_rows, validate_rows
from . import in_force, store_of
from .output import add_format_argument, emit


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("sims", help="manage the SIM registry", description="Manage the SIM registry.")
    sub = parser.add_subparsers(dest="sims_command", metavar="ACTION", required=True)

    p = sub.add_parser("import", help="import SIMs from a CSV (header row) or JSON list file",
                       description="Import SIMs: all rows are validated first; nothing is written if any row is bad. "
                                   "Columns: iccid, imsi, ip_address, msisdn, imei, label, status. SIMs already "
                                   "in the registry are left as they are (changes made since, such as "
                                   "set-status, stay) unless --replace is given.")
    p.add_argument("file")
    p.add_argument("--replace", action="store_true",
                   help="overwrite SIMs already in the registry with the file's rows")
    add_config_argument(p)
    p.set_defaults(func=import_sims)

    p = sub.add_parser("list", help="list SIMs (--format csv is the import format)")
    add_format_argument(p)
    add_config_argument(p)
    p.set_defaults(func=list_sims)

    p = sub.add_parser("set-status", help="enable or disable a SIM (in force in the running gateway when the command returns)")
    p.add_argument("iccid")
    p.add_argument("status", choices=("Enabled", "Disabled"))
    add_config_argument(p)
    p.set_defaults(func=set_status)

    from . import sims_connectivity  # status, usage, events, topup, imei-lock (docs/connectivity.md)

    sims_connectivity.register(sub)


def import_sims(args: argparse.Namespace) -> int:
    store = store_of(args)
    existing = store.all_sims()
    try:
        sims = validate_rows(read_rows(args.file), existing, replace=args.replace)
    except FileNotFoundError:
        raise CommandError(f"{args.file} does not exist") from None
    except SimImportError as exc:
        print(f"error: {args.file}: nothing imported, {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    registered = {s.iccid for s in existing}
    kept = [s for s in sims if s.iccid in registered]
    if not args.replace:
        sims = [s for s in sims if s.iccid not in registered]
    count = store.upsert_sims(sims)
    in_force(args)
    if args.replace:
        print(f"imported {count} SIM(s) from {args.file} ({len(kept)} replaced)")
    elif kept:
        print(f"imported {count} SIM(s) from {args.file}; {len(kept)} already registered, left as they are "
              "(--replace overwrites them)")
    else:
        print(f"imported {count} SIM(s) from {args.file}")
    return 0


def list_sims(args: argparse.Namespace) -> int:
    sims = store_of(args).all_sims()
    rows = [{key: getattr(s, key) for key in COLUMNS} for s in sims]
    titles = ("ICCID", "IMSI", "IP address", "MSISDN", "IMEI", "Label", "Status")
    emit(args.format, list(zip(COLUMNS, titles)), rows, footer=f"{len(sims)} SIM(s)")
    return 0


def set_status(args: argparse.Namespace) -> int:
    sim = store_of(args).update_sim(args.iccid, status=args.status)
    if sim is None:
        raise CommandError(f"no SIM with ICCID {args.iccid}")
    in_force(args)
    print(f"{sim.iccid}: {sim.status}")
    return 0
