"""``nce-gateway integrations``: list delivery targets and restart a failed one."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from integrators.base import INTEGRATION_ACTIVE

from ..cli import CommandError, add_config_argument
from . import store_of


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("integrations", help="webhook and cloud integrations")
    sub = parser.add_subparsers(dest="integrations_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="list integrations with their state and queue depth")
    add_config_argument(p)
    p.set_defaults(func=list_integrations)
    p = sub.add_parser("restart", help="resume a failed integration (the running gateway picks it up)")
    p.add_argument("name")
    add_config_argument(p)
    p.set_defaults(func=restart)


def list_integrations(args: argparse.Namespace) -> int:
    store = store_of(args)
    table = Table("Name", "Kind", "Origin", "State", "Queued", "Target")
    rows = store.list_integrations()
    for row in rows:
        target = row["config"].get("url") or row["config"].get("endpoint") or row["config"].get("host") or ""
        table.add_row(row["name"], row["kind"], row["origin"], row["state"], str(store.outbox_depth(row["id"])),
                      target)
    Console().print(table)
    return 0


def restart(args: argparse.Namespace) -> int:
    store = store_of(args)
    row = next((r for r in store.list_integrations() if r["name"] == args.name), None)
    if row is None:
        raise CommandError(f"no integration named {args.name!r}")
    store.set_integration_state(row["id"], INTEGRATION_ACTIVE, True)
    print(f"{args.name}: {INTEGRATION_ACTIVE} (was {row['state']}); "
          f"{store.outbox_depth(row['id'])} event(s) queued for delivery")
    return 0
