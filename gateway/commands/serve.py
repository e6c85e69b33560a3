"""``nce-gateway serve``: run the gateway."""

from __future__ import annotations

import argparse
import asyncio

from ..app import serve
from ..cli import add_config_argument
from ..logs import setup_logging
from . import config_of


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="run the gateway (UDP, CoAP, API) until Ctrl-C",
                                 description="Run the gateway with the given configuration.")
    add_config_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    setup_logging(config.log.level, config.log.format)
    asyncio.run(serve(config))
    return 0
