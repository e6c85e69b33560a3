"""Replay benchmark: how fast stored events are queued again (inspector/replay.py).

    python -m bench.replay [--events 200000] [--sims 1000]

A store is filled with TELEMETRY_DATA events (``store.commit`` in batches of 5000, each event
routed to one integration: the live path's own write, measured as the baseline), then half of
them (a window over the newer half) are replayed into the same integration, and the outbox
rows of a replay are loaded as the delivery worker loads them (with the ``replayed`` mark)
against loading the live rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from gateway import events
from inspector import replay
from inspector.records import Pending, Sim
from inspector.sqlite import SqliteStore

from .common import print_table


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--sims", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(str(Path(directory) / "bench.db"), "normal")
        iid = store.upsert_integration(uuid="u", name="hook", kind="webhook", origin="api", config={"url": "x"},
                                       state="INTEGRATION_ACTIVE")
        sims = [Sim(iccid=f"8988{i:015d}", imsi=f"90140{i:010d}", ip_address=f"10.0.{i // 250}.{i % 250 + 1}")
                for i in range(args.sims)]
        now = int(time.time() * 1000)
        n = args.events
        prepared = [Pending(message=None, events=[events.raw_telemetry(sims[i % len(sims)], now - n + i, "UDP",
                                                                          b"reading %d" % i, None, routes=(iid,))])
                    for i in range(n)]
        started = time.perf_counter()
        for k in range(0, n, 5000):
            store.commit(prepared[k:k + 5000])
        live = time.perf_counter() - started
        last_live = store.connection().execute("SELECT MAX(seq) FROM outbox").fetchone()[0]

        w = replay.window(store, iid, since_ms=now - n // 2, until_ms=None, now_ms=now + 1, retention_days=7,
                          iccid=None, event_types=["TELEMETRY_DATA"])
        started = time.perf_counter()
        queued = replay.replay(store, w)
        took = time.perf_counter() - started
        load_live = load_replayed = float("inf")
        for _ in range(3):  # interleaved rounds, best of 3: the machine is shared
            started = time.perf_counter()
            live_rows = store.load_outbox(iid, 0, 20_000)
            load_live = min(load_live, time.perf_counter() - started)
            started = time.perf_counter()
            replayed_rows = store.load_outbox(iid, last_live, 20_000)
            load_replayed = min(load_replayed, time.perf_counter() - started)
        one = replay.window(store, iid, since_ms=now - n // 2, until_ms=None, now_ms=now + 1, retention_days=7,
                            iccid=sims[7].iccid, event_types=["TELEMETRY_DATA"])
        started = time.perf_counter()
        one_queued = replay.replay(store, one)
        one_took = time.perf_counter() - started
    rows = [
        ("baseline: live group commit (event + outbox row)", n, f"{n / live:,.0f}", 1.0),
        ("replay: queue a window (all SIMs)", queued, f"{queued / took:,.0f}", (queued / took) / (n / live)),
        ("replay: one SIM's window", one_queued, f"{one_took * 1000:.0f} ms", ""),
        ("baseline: load 20,000 live outbox rows", len(live_rows), f"{len(live_rows) / load_live:,.0f}", 1.0),
        ("load 20,000 replayed rows (marked)", len(replayed_rows), f"{len(replayed_rows) / load_replayed:,.0f}",
         (len(replayed_rows) / load_replayed) / (len(live_rows) / load_live)),
    ]
    print_table("replay", ["what", "events", "events/s (or time)", "× baseline"], rows,
                note=f"{n} stored events of {args.sims} SIMs; one SQLite file, synchronous=NORMAL")


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
