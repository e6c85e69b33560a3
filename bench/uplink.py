"""Uplink benchmark: CON POSTs from many emulated SIMs, acknowledged only after commit.

    python -m bench.uplink [--seconds 10] [--sims 200] [--window 256] [--postgres URL]

Measured in the same run, with the same load generator: a bare asyncio UDP echo and a bare
aiocoap server answering 2.04 (no work at all). The gateway runs as its own process with its
default durability (``store.synchronous = "full"``: one WAL fsync per group commit).

``--postgres postgresql://user@host/db`` adds the gateway on PostgreSQL (``store.url``): the
benchmark creates a database of its own on that server (the user needs CREATEDB) and drops it
afterwards. The server's CPU (processes called ``postgres`` on this machine) is shown apart.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from firmware_examples.loadgen import LoadStats, run_coap_load, source_ips
from inspector.records import Sim
from inspector.sqlite import SqliteStore
from inspector.store import open_store

from .common import child, coap_gateway_config, free_port, print_table, process_cpu, processes_cpu


def gateway_config(directory: Path, coap_port: int, synchronous: str, store_url: str = "") -> Path:
    return coap_gateway_config(directory, coap_port, '[log]\nlevel = "WARNING"\n', synchronous=synchronous,
                               store_url=store_url)


def bench_sims(ips: list[str]) -> list[Sim]:
    return [Sim(iccid=f"8988280670{i:09d}", imsi=f"90140520{i:07d}", ip_address=ip) for i, ip in enumerate(ips)]


def measure(pid: int, port: int, ips: list[str], seconds: float, window: int) -> tuple[LoadStats, float]:
    """The load for ``seconds`` after a warm-up; returns the stats and the server's CPU seconds."""
    run_coap_load(("127.0.0.1", port), ips, duration=min(2.0, seconds / 3), window=window)  # warm-up
    cpu = process_cpu(pid)
    stats = run_coap_load(("127.0.0.1", port), ips, duration=seconds, window=window)
    return stats, process_cpu(pid) - cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--window", type=int, default=256, help="requests in flight in total")
    parser.add_argument("--postgres", metavar="URL", default="",
                        help="also measure the gateway on PostgreSQL (a database of its own on this server)")
    args = parser.parse_args(argv)
    ips = source_ips(args.sims)
    results: list[tuple[str, LoadStats, float]] = []
    db_cpu: dict[str, float] = {}

    port = free_port()
    with child(["-m", "bench.servers", "echo", str(port)]) as process:
        results.append(("bare asyncio UDP echo", *measure(process.pid, port, ips, args.seconds, args.window)))
    port = free_port()
    with child(["-m", "bench.servers", "aiocoap", str(port)]) as process:
        results.append(("bare aiocoap server (2.04, no work)",
                        *measure(process.pid, port, ips, args.seconds, args.window)))
    for synchronous in ("full", "normal"):
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            config = gateway_config(Path(tmp), port, synchronous)
            SqliteStore(Path(tmp) / "bench.db").upsert_sims(bench_sims(ips))
            with child(["-m", "gateway", "serve", "--config", str(config)], ready="listening") as process:
                stats, cpu = measure(process.pid, port, ips, args.seconds, args.window)
            stored = SqliteStore(Path(tmp) / "bench.db").connection().execute(
                "SELECT COUNT(*) FROM messages").fetchone()[0]
        results.append((f"nce-gateway, acked after commit (synchronous={synchronous}, {stored:,} stored)", stats, cpu))
    if args.postgres:
        with bench_database(args.postgres) as url, tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            config = gateway_config(Path(tmp), port, "full", store_url=url)
            store = open_store(url)
            store.upsert_sims(bench_sims(ips))
            with child(["-m", "gateway", "serve", "--config", str(config)], ready="listening") as process:
                before = processes_cpu("postgres")
                stats, cpu = measure(process.pid, port, ips, args.seconds, args.window)
                used = processes_cpu("postgres") - before
            stored = store.connection().execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            store.close()
        name = f"nce-gateway on PostgreSQL, acked after commit ({stored:,} stored)"
        results.append((name, stats, cpu))
        db_cpu[name] = used

    def per_core(stats: LoadStats, cpu: float) -> float:
        return stats.acknowledged / cpu if cpu else float("nan")

    echo = per_core(*results[0][1:])
    rows = [(name, s.rate, s.percentile(50) * 1000, s.percentile(99) * 1000, sum(s.failed.values()),
             f"{cpu / s.seconds:.0%}" + (f" (+ db {db_cpu[name] / s.seconds:.0%})" if name in db_cpu else ""),
             per_core(s, cpu), f"{per_core(s, cpu) / echo:.2f}" if cpu and echo else "-")
            for name, s, cpu in results]
    print_table(f"Uplink: CoAP CON POST, {args.sims} SIMs, {args.window} in flight, {args.seconds:g} s, "
                f"{os.cpu_count()} cores",
                ["server", "msgs/s", "p50 ms", "p99 ms", "failed", "server busy", "msgs per server CPU-s",
                 "this ÷ echo, per CPU-s"], rows,
                note="msgs/s: answers per second as the load generator saw them (on 2 cores the single-process "
                     "generator shares the machine with the server). server busy: the server process's CPU time "
                     "(all threads) over the run's wall time. msgs per server CPU-s: answered messages per second "
                     "of server CPU, the figure the 'per gateway core' target is about; on PostgreSQL the "
                     "database's own CPU (+ db) is not in it. this ÷ echo: that figure over the bare echo's.")


@contextmanager
def bench_database(server_url: str) -> Iterator[str]:
    """A new database on the server at ``server_url`` for one run, dropped afterwards."""
    import psycopg

    name = f"nce_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base, _, rest = server_url.partition("?")
    url = base.rsplit("/", 1)[0] + "/" + name + (f"?{rest}" if rest else "")
    try:
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
