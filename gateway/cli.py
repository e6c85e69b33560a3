"""``nce-gateway``: the command line.

Each command group lives in its own module under ``gateway/commands`` and registers its
sub-commands here; this module only builds the parser and reports errors the same way for all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from inspector.sqlite import StoreError

from .config import ConfigError

COMMAND_MODULES = (
    "gateway.commands.serve",
    "gateway.commands.sims",
    "gateway.commands.integrations",
    "gateway.commands.lwm2m",
    "gateway.commands.actions",
    "gateway.commands.psk",
    "gateway.commands.template",
    "gateway.commands.users",
    "gateway.commands.demo",
    "gateway.commands.secrets",
    "gateway.commands.sms",
    "gateway.commands.cells",
)


class CommandError(Exception):
    """A command cannot do what was asked; printed without a traceback, exit code 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nce-gateway",
        description="Self-hosted device gateway compatible with 1NCE OS.",
        epilog="Every command reads the same TOML file: --config FILE (before or after the command) or the "
               "NCE_CONFIG environment variable, then NCE_SECTION_KEY environment overrides (NCE_UDP_PORT=5000).",
    )
    parser.add_argument("--config", "-c", metavar="FILE", default=None,
                        help="TOML configuration file (default: $NCE_CONFIG, else built-in defaults)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: when not given after the command, the value given before it (or none) stays
    parser.add_argument("--config", "-c", metavar="FILE", default=argparse.SUPPRESS,
                        help="TOML configuration file (default: $NCE_CONFIG, else built-in defaults)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (CommandError, ConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
