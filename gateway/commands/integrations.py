"""``nce-gateway integrations``: list delivery targets and restart a failed one."""

from __future__ import annotations

import argparse

from integrators.base import INTEGRATION_ACTIVE

from ..cli import CommandError, add_config_argument
from . import in_force, store_of
from .output import add_format_argument, emit


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("integrations", help="webhook and cloud integrations")
    sub = parser.add_subparsers(dest="integrations_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="list integrations with their state and queue depth")
    add_format_argument(p)
    add_config_argument(p)
    p.set_defaults(func=list_integrations)
    p = sub.add_parser("restart", help="resume a failed integration (in force in the running gateway when the command returns)")
    p.add_argument("name")
    add_config_argument(p)
    p.set_defaults(func=restart)


def list_integrations(args: argparse.Namespace) -> int:
    store = store_of(args)
    rows = [{"name": row["name"], "kind": row["kind"], "origin": row["origin"], "state": row["state"],
             "queued": store.outbox_depth(row["id"]),
             "target": row["config"].get("url") or row["config"].get("endpoint") or row["config"].get("host") or ""}
            for row in store.list_integrations()]
    columns = [("name", "Name"), ("kind", "Kind"), ("origin", "Origin"), ("state", "State"), ("queued", "Queued"),
               ("target", "Target")]
    emit(args.format, columns, rows, footer=f"{len(rows)} integration(s)")
    return 0


def restart(args: argparse.Namespace) -> int:
    store = store_of(args)
    row = next((r for r in store.list_integrations() if r["name"] == args.name), None)
    if row is None:
        raise CommandError(f"no integration named {args.name!r}")
    store.set_integration_state(row["id"], INTEGRATION_ACTIVE, True)
    in_force(args)
    print(f"{args.name}: {INTEGRATION_ACTIVE} (was {row['state']}); "
          f"{store.outbox_depth(row['id'])} event(s) queued for delivery")
    return 0
