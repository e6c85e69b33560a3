"""``nce-gateway sims``: the SIM registry (import, list, export, enable/disable)."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from ..cli import CommandError, add_config_argument
from ..sims_import import SimImportError, read_rows, validate_rows, write_csv
from . import store_of


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("sims", help="manage the SIM registry", description="Manage the SIM registry.")
    sub = parser.add_subparsers(dest="sims_command", metavar="ACTION", required=True)

    p = sub.add_parser("import", help="import SIMs from a CSV (header row) or JSON list file",
                       description="Import SIMs: all rows are validated first; nothing is written if any row is bad. "
                                   "Columns: iccid, imsi, ip_address, msisdn, imei, label, status.")
    p.add_argument("file")
    add_config_argument(p)
    p.set_defaults(func=import_sims)

    p = sub.add_parser("list", help="list SIMs")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    add_config_argument(p)
    p.set_defaults(func=list_sims)

    p = sub.add_parser("set-status", help="enable or disable a SIM (takes effect without restart)")
    p.add_argument("iccid")
    p.add_argument("status", choices=("Enabled", "Disabled"))
    add_config_argument(p)
    p.set_defaults(func=set_status)

    from . import sims_connectivity  # status, usage, events, topup, imei-lock (docs/connectivity.md)

    sims_connectivity.register(sub)


def import_sims(args: argparse.Namespace) -> int:
    store = store_of(args)
    try:
        sims = validate_rows(read_rows(args.file), store.all_sims())
    except FileNotFoundError:
        raise CommandError(f"{args.file} does not exist") from None
    except SimImportError as exc:
        print(f"error: {args.file}: nothing imported, {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    count = store.upsert_sims(sims)
    print(f"imported {count} SIM(s) from {args.file}")
    return 0


def list_sims(args: argparse.Namespace) -> int:
    sims = store_of(args).all_sims()
    if args.format == "csv":
        write_csv(sims, sys.stdout)
    elif args.format == "json":
        print(json.dumps([{"iccid": s.iccid, "imsi": s.imsi, "ip_address": s.ip_address, "msisdn": s.msisdn,
                           "imei": s.imei, "label": s.label, "status": s.status} for s in sims], indent=2))
    else:
        table = Table("ICCID", "IMSI", "IP address", "MSISDN", "IMEI", "Label", "Status")
        for s in sims:
            table.add_row(s.iccid, s.imsi, s.ip_address, s.msisdn or "", s.imei or "", s.label or "", s.status)
        Console().print(table)
        print(f"{len(sims)} SIM(s)")
    return 0


def set_status(args: argparse.Namespace) -> int:
    sim = store_of(args).update_sim(args.iccid, status=args.status)
    if sim is None:
        raise CommandError(f"no SIM with ICCID {args.iccid}")
    print(f"{sim.iccid}: {sim.status}")
    return 0
