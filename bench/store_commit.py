"""The group commit's writer thread alone: uplinks per CPU-second of ``store.commit``.

    python -m bench.store_commit [--batches 40] [--batch 2500] [--sims 500] [--repeats 3] [--fill-every 2]

Batches of ``--batch`` uplinks (a message and its TELEMETRY_DATA event each, as the gateway
commits them) from ``--sims`` SIMs, ``synchronous=full``, into a new SQLite store, in two layouts,
interleaved ``--repeats`` times:

* ``index in the commit``: the layout before migration 0048, the ``messages_by_device`` index
  on ``messages (iccid, received_ms)`` written inside every commit;
* ``device_messages filled after``: no such index; ``fill_device_index`` (in its own transaction)
  every ``--fill-every`` commits, its CPU counted with the commits'.

CPU is the calling thread's (``time.thread_time``), which is what the gateway's writer thread
spends; the fsync wait is not CPU.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from inspector.records import EventRecord, MessageRecord, Pending
from inspector.sqlite import SqliteStore

from .common import print_table


def batches(count: int, size: int, sims: int, seed: int) -> list[list[Pending]]:
    rng = random.Random(seed)
    iccids = [f"8988280670{i:09d}" for i in range(sims)]
    now = time.time_ns() // 1_000_000
    out = []
    n = 0
    for b in range(count):
        batch = []
        for _ in range(size):
            n += 1
            iccid = rng.choice(iccids)
            ms = now + b * 250 + rng.randrange(250)
            event_id = f"ev-{n:012d}"
            body = ('{"id":"%s","type":"TELEMETRY_DATA","iccid":"%s","payload":"aGVsbG8gd29ybGQ=","time":%d}'
                    % (event_id, iccid, ms))
            batch.append(Pending(message=MessageRecord(iccid=iccid, protocol="COAP", received_ms=ms,
                                                       payload=b"hello world %d" % n, event_id=event_id),
                                 events=[EventRecord(event_id=event_id, type="TELEMETRY_DATA", iccid=iccid,
                                                     created_ms=ms, body=body)]))
        out.append(batch)
    return out


def run(layout: str, work: list[list[Pending]], fill_every: int) -> tuple[float, float, float]:
    """(uplinks per CPU-s, CPU s of the commits, CPU s of the fills)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "commit.db", "full")
        if layout == "index":
            store.connection().execute("CREATE INDEX messages_by_device ON messages (iccid, received_ms)")
        commit_cpu = fill_cpu = 0.0
        for i, batch in enumerate(work, 1):
            started = time.thread_time()
            store.commit(batch)
            commit_cpu += time.thread_time() - started
            if layout == "deferred" and i % fill_every == 0:
                started = time.thread_time()
                store.fill_device_index()
                fill_cpu += time.thread_time() - started
        if layout == "deferred":
            started = time.thread_time()
            store.fill_device_index()
            fill_cpu += time.thread_time() - started
        store.close()
    uplinks = sum(len(b) for b in work)
    return uplinks / (commit_cpu + fill_cpu), commit_cpu, fill_cpu


def main(argv: list[str] | None = None) -> list[tuple]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=2500)
    parser.add_argument("--sims", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fill-every", type=int, default=2, help="commits between two fills")
    args = parser.parse_args(argv)
    work = batches(args.batches, args.batch, args.sims, 1)
    rows = []
    names = {"index": "index in the commit (before 0048)", "deferred": f"device_messages filled after "
                                                                       f"(every {args.fill_every} commits)"}
    for round_ in range(1, args.repeats + 1):
        results = {layout: run(layout, work, args.fill_every) for layout in ("index", "deferred")}
        base = results["index"][0]
        for layout, (rate, commit_cpu, fill_cpu) in results.items():
            rows.append((f"#{round_} {names[layout]}", f"{rate:,.0f}", f"{commit_cpu:.2f}", f"{fill_cpu:.2f}",
                         f"{rate / base:.2f}"))
    print_table(f"store.commit: {args.batches} batches of {args.batch} uplinks from {args.sims} SIMs, "
                "synchronous=full", ["layout", "uplinks per writer CPU-s", "commit CPU s", "fill CPU s",
                                     "÷ index in the commit"], rows)
    return rows


if __name__ == "__main__":
    main()
