"""``nce-gateway``: the command line.

Each command group lives in its own module under ``gateway/commands`` and registers its
sub-commands here; this module only builds the parser and reports errors the same way for all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .config import ConfigError

COMMAND_MODULES = (
    "gateway.commands.serve",
    "gateway.commands.sims",
    "gateway.commands.integrations",
    "gateway.commands.lwm2m",
    "gateway.commands.psk",
    "gateway.commands.template",
    "gateway.commands.users",
    "gateway.commands.demo",
    "gateway.commands.sms",
)


class CommandError(Exception):
    """A command cannot do what was asked; printed without a traceback, exit code 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nce-gateway",
        description="Self-hosted device gateway compatible with 1NCE OS.",
        epilog="Every command reads the same TOML file (--config) and NCE_SECTION_KEY environment overrides.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", help="TOML configuration file (default: built-in defaults)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CommandError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
