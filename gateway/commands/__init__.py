"""Sub-commands of ``nce-gateway``, one module per group."""

from __future__ import annotations

import argparse
import os
import sys

from inspector.sqlite import SqliteStore

from .. import audit
from ..config import GatewayConfig, load_config
from ..control import apply_now


def config_path(args: argparse.Namespace) -> str | None:
    """--config (before or after the command), else $NCE_CONFIG, else none (built-in defaults)."""
    return getattr(args, "config", None) or os.environ.get("NCE_CONFIG") or None


def config_of(args: argparse.Namespace) -> GatewayConfig:
    return load_config(config_path(args))


def store_of(args: argparse.Namespace) -> SqliteStore:
    config = config_of(args)
    return config.store.open()


def in_force(args: argparse.Namespace) -> None:
    """After a command changed the store: log the change (administration log), then return once
    the running gateway applies it (gateway/control.py), so the next line of a script can rely on it."""
    config = config_of(args)
    store = config.store.open()
    try:
        audit.record_cli_change(store, args)  # the administration log (gateway/audit.py)
    finally:
        store.close()
    if apply_now(config.store.identity()) is False:
        print(f"warning: the gateway running on {config.store.identity()} did not confirm the change; it applies it "
              f"within registry.poll_interval_seconds ({config.registry.poll_interval_seconds:g} s)", file=sys.stderr)
