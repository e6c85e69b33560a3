"""``nce-gateway demo``: a gateway, a webhook sink and an emulated fleet, with a live view."""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console

from ..demo import run_demo


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="run a gateway, a webhook sink and an emulated fleet with a live view",
        description="Start a gateway with a temporary store, a local HTTPS webhook sink, an active translation "
                    "template and emulated devices on every protocol; show what happens until Ctrl-C.")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--period", type=float, default=1.0, help="seconds between two messages of a device")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(run_demo(args.duration, args.period, Console()))
