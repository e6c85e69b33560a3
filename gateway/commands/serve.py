"""``nce-gateway serve``: run the gateway."""

from __future__ import annotations

import argparse

from .. import runtime
from ..app import serve
from ..cli import CommandError, add_config_argument
from ..logs import setup_logging
from . import config_of


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="run the gateway (UDP, CoAP, API) until Ctrl-C",
                                 description="Run the gateway with the given configuration.")
    add_config_argument(parser)
    parser.add_argument("--loop", choices=runtime.LOOPS, default="asyncio",
                        help="event loop: asyncio (default) or uvloop (optional package; measured no faster "
                             "on the uplink path, see docs/performance.md)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    setup_logging(config.log.level, config.log.format)
    try:
        factory = runtime.loop_factory(args.loop)
    except ValueError as exc:  # --loop uvloop without uvloop installed
        raise CommandError(str(exc)) from None
    try:
        runtime.run(serve(config, tune_gc=True), factory)
    except OSError as exc:  # a port in use, an address this host does not have
        raise CommandError(f"cannot start: {exc.strerror or exc}; check the bind addresses and ports "
                           "in the config (or NCE_UDP_PORT, NCE_COAP_PORT, NCE_COAPS_PORT, NCE_API_PORT)") from None
    return 0
