"""``nce-gateway integrations``: list delivery targets, restart a failed one, replay history."""

from __future__ import annotations

import argparse
import re
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from inspector import replay as store_replay
from integrators.base import INTEGRATION_ACTIVE

from ..api.errors import ApiError
from ..api.timefmt import format_time, parse_time
from ..cli import CommandError, add_config_argument
from ..replay import REPLAYABLE, ReplayRefused, replay_window
from . import config_of, in_force, store_of
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
    p = sub.add_parser("replay", help="queue stored events of a time window for delivery again, marked "
                                      "\"replayed\": true (the running gateway sends them within a second)")
    p.add_argument("name")
    p.add_argument("--since", required=True, metavar="TIME",
                   help="start of the window: ISO 8601 (2026-12-01T08:00:00Z) or an age (90m, 6h, 2d)")
    p.add_argument("--until", metavar="TIME", help="end of the window, exclusive (default: now)")
    p.add_argument("--device", metavar="ICCID", help="only events of this SIM")
    p.add_argument("--event-type", choices=REPLAYABLE, help="only events of this type")
    add_config_argument(p)
    p.set_defaults(func=replay)


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


_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_when(text: str, option: str, now_ms: int) -> int:
    """Epoch ms of an ISO 8601 time or of an age such as ``6h`` (that long before now)."""
    age = _AGE.match(text.strip())
    if age:
        return now_ms - int(float(age.group(1)) * _UNIT_MS[age.group(2)])
    try:
        return parse_time(text, option)[0]
    except ApiError:
        raise CommandError(f"{option}: {text!r} is neither an ISO 8601 time (2026-12-01T08:00:00Z) "
                           "nor an age (90m, 6h, 2d)") from None


def replay(args: argparse.Namespace) -> int:
    config = config_of(args)
    store = store_of(args)
    row = next((r for r in store.list_integrations() if r["name"] == args.name), None)
    if row is None:
        raise CommandError(f"no integration named {args.name!r}")
    now = time.time_ns() // 1_000_000
    since = parse_when(args.since, "--since", now)
    until = parse_when(args.until, "--until", now) if args.until else None
    try:
        window = replay_window(store, row, since_ms=since, until_ms=until, now_ms=now,
                               retention_days=config.store.retention_days, iccid=args.device,
                               event_type=args.event_type)
    except ReplayRefused as exc:
        raise CommandError(f"replay refused: {exc}") from None
    total = store_replay.count(store, window)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]replay[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=not console.is_terminal) as progress:
        task = progress.add_task(args.name, total=total)
        queued = store_replay.replay(store, window, lambda n: progress.advance(task, n))
    print(f"{args.name}: queued {queued} event(s) from {format_time(window.since_ms)} to "
          f"{format_time(window.until_ms)} for delivery again, marked \"replayed\": true; "
          f"{store.outbox_depth(row['id'])} event(s) now queued")
    return 0
