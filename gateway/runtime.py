"""The process around the event loop: which loop runs, and how the garbage collector behaves.

Why the collector matters here: every uplink allocates a handful of container objects (the
request, its Pending, records, the exchange-cache entry) that live until the group commit a few
milliseconds later. With CPython's default thresholds (700, 10, 10) a generation-0 collection
ran every few hundred datagrams and promoted the still-pending uplinks, and the older
collections then walked everything the gateway loaded at start-up (the SIM directory, the
templates, aiocoap, the API's routes). Two changes, both applied once the gateway is listening:

* ``gc.freeze()`` moves every object that exists after start-up into the permanent generation,
  so no later collection walks it again (start-up state is long-lived by construction);
* a larger generation-0 threshold, so young collections run less often over a batch that has
  mostly been freed by reference counting already.

Reference cycles are still collected (only less often); ``python_gc_*`` metrics show it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.gc_collector import GCCollector

log = logging.getLogger("nce.runtime")

LOOPS = ("asyncio", "uvloop")
GEN0_THRESHOLD = 50_000  # CPython's default is 700
OLDER_THRESHOLDS = (20, 20)  # CPython's default is (10, 10)


def tune_gc(gen0: int = GEN0_THRESHOLD, older: tuple[int, int] = OLDER_THRESHOLDS) -> int:
    """Collect once, freeze what start-up left, and raise the thresholds; returns the number of
    frozen objects. Call it when start-up is done (the gateway listens)."""
    if gen0 < 1 or min(older) < 1:
        raise ValueError(f"GC thresholds must be positive, not {gen0}, {older}")
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, *older)
    frozen = gc.get_freeze_count()
    log.info("garbage collector tuned", extra={"event": "gc_tuned", "frozen_objects": frozen,
                                               "thresholds": list(gc.get_threshold())})
    return frozen


def register_gc_metrics(registry: CollectorRegistry) -> None:
    """``python_gc_objects_collected_total``, ``python_gc_collections_total`` (by generation)
    and ``nce_gc_frozen_objects`` in the gateway's registry."""
    GCCollector(registry=registry)
    Gauge("nce_gc_frozen_objects", "Objects moved to the permanent generation at start-up (gc.freeze)",
          registry=registry).set_function(gc.get_freeze_count)


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop ``nce-gateway serve --loop`` asks for."""
    if kind == "asyncio":
        return asyncio.new_event_loop
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise ValueError("--loop uvloop needs the uvloop package (pip install 'nce-gateway[bench]')") from None
        return uvloop.new_event_loop
    raise ValueError(f"unknown event loop {kind!r}; choose one of: {', '.join(LOOPS)}")


def run(main: Coroutine[Any, Any, Any], factory: Callable[[], asyncio.AbstractEventLoop]) -> Any:
    """``asyncio.run`` on a loop from ``factory`` (see :func:`loop_factory`)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
