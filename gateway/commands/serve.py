"""``nce-gateway serve``: run the gateway."""

from __future__ import annotations

import argparse
import asyncio

from ..app import serve
from ..cli import CommandError, add_config_argument
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
    try:
        asyncio.run(serve(config))
    except OSError as exc:  # a port in use, an address this host does not have
        raise CommandError(f"cannot start: {exc.strerror or exc}; check the bind addresses and ports "
                           "in the config (or NCE_UDP_PORT, NCE_COAP_PORT, NCE_COAPS_PORT, NCE_API_PORT)") from None
    return 0
