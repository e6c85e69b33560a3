"""Uplink benchmark: CON POSTs from many emulated SIMs, acknowledged only after commit.

    python -m bench.uplink [--seconds 10] [--sims 200] [--window 256] [--workers 1,2]

Measured in the same run, with the same load generator: a bare asyncio UDP echo and a bare
aiocoap server answering 2.04 (no work at all). The gateway runs as its own process with its
default durability (``store.synchronous = "full"``: one WAL fsync per group commit).
``--workers 1,2`` runs the gateway (``synchronous = "full"``) once per worker count instead
(``[process] workers``: a supervisor and N processes sharing the port), its CPU counted over
the supervisor and all its workers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from firmware_examples.loadgen import LoadStats, run_coap_load, source_ips
from inspector.records import Sim
from inspector.sqlite import SqliteStore

from .common import child, coap_gateway_config, free_port, print_table, process_cpu


def gateway_config(directory: Path, coap_port: int, synchronous: str) -> Path:
    return coap_gateway_config(directory, coap_port, '[log]\nlevel = "WARNING"\n', synchronous=synchronous)


def bench_sims(ips: list[str]) -> list[Sim]:
    return [Sim(iccid=f"8988280670{i:09d}", imsi=f"90140520{i:07d}", ip_address=ip) for i, ip in enumerate(ips)]


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and of its children (a supervisor's workers), so far."""
    total = process_cpu(pid)
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            children = open(f"/proc/{pid}/task/{task}/children").read().split()
        except OSError:
            continue
        for child_pid in children:
            try:
                total += process_cpu(int(child_pid))
            except OSError:
                pass
    return total


def measure(pid: int, port: int, ips: list[str], seconds: float, window: int) -> tuple[LoadStats, float]:
    """The load for ``seconds`` after a warm-up; returns the stats and the server's CPU seconds."""
    deadline = time.monotonic() + 30
    while True:  # warm-up, until every source is answered (a supervisor's workers start after it)
        warm = run_coap_load(("127.0.0.1", port), ips, duration=min(2.0, seconds / 3), window=window)
        if not sum(warm.failed.values()) or time.monotonic() > deadline:
            break
    cpu = tree_cpu(pid)
    stats = run_coap_load(("127.0.0.1", port), ips, duration=seconds, window=window)
    return stats, tree_cpu(pid) - cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--window", type=int, default=256, help="requests in flight in total")
    parser.add_argument("--workers", default="", metavar="N,M",
                        help="gateway worker processes to compare, e.g. 1,2 (default: one process, "
                             "synchronous full and normal)")
    args = parser.parse_args(argv)
    try:
        worker_counts = [int(n) for n in args.workers.split(",") if n.strip()]
    except ValueError:
        parser.error("--workers: a comma-separated list of numbers, e.g. 1,2")
    if any(n < 1 for n in worker_counts):
        parser.error("--workers: each count must be at least 1")
    runs = [("full", n) for n in worker_counts] or [("full", 1), ("normal", 1)]
    ips = source_ips(args.sims)
    results: list[tuple[str, LoadStats, float]] = []

    port = free_port()
    with child(["-m", "bench.servers", "echo", str(port)]) as process:
        results.append(("bare asyncio UDP echo", *measure(process.pid, port, ips, args.seconds, args.window)))
    port = free_port()
    with child(["-m", "bench.servers", "aiocoap", str(port)]) as process:
        results.append(("bare aiocoap server (2.04, no work)",
                        *measure(process.pid, port, ips, args.seconds, args.window)))
    for synchronous, workers in runs:
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            config = gateway_config(Path(tmp), port, synchronous)
            SqliteStore(Path(tmp) / "bench.db").upsert_sims(bench_sims(ips))
            with child(["-m", "gateway", "serve", "--config", str(config)], ready="listening",
                       env={"NCE_PROCESS_WORKERS": str(workers)}) as process:
                stats, cpu = measure(process.pid, port, ips, args.seconds, args.window)
            stored = SqliteStore(Path(tmp) / "bench.db").connection().execute(
                "SELECT COUNT(*) FROM messages").fetchone()[0]
        processes = f", {workers} workers" if worker_counts else ""
        results.append((f"nce-gateway, acked after commit (synchronous={synchronous}{processes}, {stored:,} stored)",
                        stats, cpu))

    def per_core(stats: LoadStats, cpu: float) -> float:
        return stats.acknowledged / cpu if cpu else float("nan")

    ours = per_core(*results[2][1:])
    rows = [(name, s.rate, s.percentile(50) * 1000, s.percentile(99) * 1000, sum(s.failed.values()),
             f"{cpu / s.seconds:.0%}", per_core(s, cpu), f"{ours / per_core(s, cpu):.2f}" if cpu else "-")
            for name, s, cpu in results]
    print_table(f"Uplink: CoAP CON POST, {args.sims} SIMs, {args.window} in flight, {args.seconds:g} s, "
                f"{os.cpu_count()} cores",
                ["server", "msgs/s", "p50 ms", "p99 ms", "failed", "server busy", "msgs per server CPU-s",
                 "gateway(full) ÷ this, per CPU-s"], rows,
                note="msgs/s: answers per second as the load generator saw them (on 2 cores the single-process "
                     "generator shares the machine with the server). server busy: the server process's CPU time "
                     "(all threads) over the run's wall time. msgs per server CPU-s: answered messages per second "
                     "of server CPU, the figure the 'per gateway core' target is about.")


if __name__ == "__main__":
    main()
