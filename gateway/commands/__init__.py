"""Sub-commands of ``nce-gateway``, one module per group."""

from __future__ import annotations

import argparse

from inspector.sqlite import SqliteStore

from ..config import GatewayConfig, load_config


def config_of(args: argparse.Namespace) -> GatewayConfig:
    return load_config(getattr(args, "config", None))


def store_of(args: argparse.Namespace) -> SqliteStore:
    config = config_of(args)
    return SqliteStore(config.store.path, config.store.synchronous, config.store.secrets_key())
