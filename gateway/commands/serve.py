"""``nce-gateway serve``: run the gateway (one process, or a supervisor and N workers)."""

from __future__ import annotations

import argparse

from .. import runtime
from ..app import serve
from ..cli import CommandError, add_config_argument
from ..config import worker_count
from ..logs import setup_logging
from ..workers import slot_from_environ
from . import config_of, config_path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="run the gateway (UDP, CoAP, API) until Ctrl-C",
                                 description="Run the gateway with the given configuration.")
    add_config_argument(parser)
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes sharing the ports (default: [process] workers; 0: one per "
                             "CPU core; 1: a single process)")
    parser.add_argument("--loop", choices=runtime.LOOPS, default="asyncio",
                        help="event loop: asyncio (default) or uvloop (optional package; measured no faster "
                             "on the uplink path, see docs/performance.md)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    if args.workers is not None:
        if not 0 <= args.workers <= 256:
            raise CommandError(f"--workers {args.workers}: not between 0 (one per core) and 256")
        config.process.workers = args.workers
    setup_logging(config.log.level, config.log.format)
    workers = worker_count(config.process)
    try:
        factory = runtime.loop_factory(args.loop)
    except ValueError as exc:  # --loop uvloop without uvloop installed
        raise CommandError(str(exc)) from None
    try:
        if workers > 1 and not slot_from_environ().several:
            from ..supervisor import Supervisor
            return Supervisor(config, workers, config_path(args)).run()
        runtime.run(serve(config, tune_gc=True), factory)
    except OSError as exc:  # a port in use, an address this host does not have
        raise CommandError(f"cannot start: {exc.strerror or exc}; check the bind addresses and ports "
                           "in the config (or NCE_UDP_PORT, NCE_COAP_PORT, NCE_COAPS_PORT, NCE_API_PORT)") from None
    return 0
