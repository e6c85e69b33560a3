"""Uplink benchmark: CON POSTs from many emulated SIMs, acknowledged only after commit.

    python -m bench.uplink [--seconds 10] [--sims 200] [--window 256] [--loop uvloop] [--workers 1,2]
    python -m bench.uplink --compare --repeats 3 --ab /work/main   # interleaved A/B rounds
    python -m bench.uplink --postgres URL   # the gateway on PostgreSQL beside SQLite
    python -m bench.uplink --workers 1,2 --postgres URL   # each worker count on both stores

Measured in the same run, with the same load generator: a bare asyncio UDP echo and a bare
aiocoap server answering 2.04 (no work at all). The gateway runs as its own process with its
default durability (``store.synchronous = "full"``: one WAL fsync per group commit).

``--postgres postgresql://user@host/db`` adds the gateway on PostgreSQL (``store.url``): the
benchmark creates a database of its own on that server (the user needs CREATEDB) and drops it
afterwards. The server's CPU (processes called ``postgres`` on this machine) is shown apart.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
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


def run_echo(ips: list[str], args: argparse.Namespace, loop: str) -> tuple[LoadStats, float]:
    port = free_port()
    with child(["-m", "bench.servers", "echo", str(port), *(["uvloop"] if loop == "uvloop" else [])]) as process:
        return measure(process.pid, port, ips, args.seconds, args.window)


def run_gateway(ips: list[str], args: argparse.Namespace, synchronous: str, loop: str,
                code: str | None = None, workers: int = 1) -> tuple[LoadStats, float, int]:
    """One gateway (``workers`` processes under a supervisor when more than 1); ``code`` runs the
    gateway package of another checkout (A/B)."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = gateway_config(Path(tmp), port, synchronous)
        seed_sims(Path(tmp) / "bench.db", ips, code)
        command = ["-m", "gateway", "serve", "--config", str(config)]
        if loop != "asyncio":
            command += ["--loop", loop]
        env = {"NCE_PROCESS_WORKERS": str(workers), **({"PYTHONPATH": code} if code else {})}
        with child(command, ready="listening", env=env, cwd=code) as process:
            stats, cpu = measure(process.pid, port, ips, args.seconds, args.window)
        with closing(sqlite3.connect(Path(tmp) / "bench.db")) as conn:  # not migrated by this checkout
            stored = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    return stats, cpu, stored


def seed_sims(path: Path, ips: list[str], code: str | None) -> None:
    """The bench SIMs in a new store at ``path``, made by the checkout that will serve it (``code``:
    another checkout's store may not know this one's newest migrations, and would refuse the file)."""
    if code is None:
        SqliteStore(path).upsert_sims(bench_sims(ips))
        return
    script = ("import json, sys\nfrom inspector.records import Sim\nfrom inspector.sqlite import SqliteStore\n"
              "SqliteStore(sys.argv[1]).upsert_sims([Sim(**s) for s in json.load(sys.stdin)])\n")
    sims = [{"iccid": s.iccid, "imsi": s.imsi, "ip_address": s.ip_address} for s in bench_sims(ips)]
    subprocess.run([sys.executable, "-c", script, str(path)], input=json.dumps(sims), text=True, check=True,
                   env={**os.environ, "PYTHONPATH": code}, cwd=code)


def run_gateway_on_postgres(ips: list[str], args: argparse.Namespace,
                            workers: int = 1) -> tuple[LoadStats, float, int, float]:
    """The gateway (``workers`` processes) on a new database of the server at ``--postgres``;
    also returns the CPU seconds the server's ``postgres`` processes used meanwhile."""
    with bench_database(args.postgres) as url, tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = gateway_config(Path(tmp), port, "full", store_url=url)
        store = open_store(url)
        store.upsert_sims(bench_sims(ips))
        command = ["-m", "gateway", "serve", "--config", str(config)]
        if args.loop != "asyncio":
            command += ["--loop", args.loop]
        with child(command, ready="listening", env={"NCE_PROCESS_WORKERS": str(workers)}) as process:
            before = processes_cpu("postgres")
            stats, cpu = measure(process.pid, port, ips, args.seconds, args.window)
            used = processes_cpu("postgres") - before
        stored = store.connection().execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        store.close()
    return stats, cpu, stored, used


def per_core(stats: LoadStats, cpu: float) -> float:
    return stats.acknowledged / cpu if cpu else float("nan")


def main(argv: list[str] | None = None) -> list[tuple]:
    """Run the rounds, print the table, return its rows (for tests)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--window", type=int, default=256, help="requests in flight in total")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="event loop of the echo and the gateway (uvloop: optional extra 'bench')")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds of echo then gateway(full), interleaved; the ratio is per round")
    parser.add_argument("--compare", action="store_true",
                        help="only the echo and the gateway with synchronous=full (no aiocoap, no normal)")
    parser.add_argument("--ab", metavar="CHECKOUT",
                        help="also run the gateway of another checkout (e.g. /work/main) in every round")
    parser.add_argument("--workers", default="", metavar="N,M",
                        help="gateway worker processes to compare, e.g. 1,2 (synchronous=full each)")
    parser.add_argument("--postgres", metavar="URL", default="",
                        help="also measure the gateway on PostgreSQL (a database of its own on this server)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        worker_counts = [int(n) for n in args.workers.split(",") if n.strip()]
    except ValueError:
        parser.error("--workers: a comma-separated list of numbers, e.g. 1,2")
    if any(n < 1 for n in worker_counts):
        parser.error("--workers: each count must be at least 1")
    ips = source_ips(args.sims)
    rows = []
    db_cpu: dict[str, float] = {}
    for round_ in range(1, args.repeats + 1):
        tag = f"#{round_} " if args.repeats > 1 else ""
        results: list[tuple[str, LoadStats, float]] = [
            (f"{tag}bare UDP echo ({args.loop})", *run_echo(ips, args, args.loop))]
        if not args.compare:
            port = free_port()
            with child(["-m", "bench.servers", "aiocoap", str(port)]) as process:
                results.append((f"{tag}bare aiocoap server (2.04, no work)",
                                *measure(process.pid, port, ips, args.seconds, args.window)))
        runs = [("full", n) for n in worker_counts] or (
            [("full", 1)] if args.compare else [("full", 1), ("normal", 1)])
        for synchronous, workers in runs:
            stats, cpu, stored = run_gateway(ips, args, synchronous, args.loop, workers=workers)
            processes = f", {workers} workers" if worker_counts else ""
            results.append((f"{tag}gateway ({args.loop}, {synchronous}{processes}, {stored:,} stored)",
                            stats, cpu))
        if args.ab:
            stats, cpu, stored = run_gateway(ips, args, "full", args.loop, args.ab)
            results.append((f"{tag}gateway of {args.ab} (full, {stored:,} stored)", stats, cpu))
        for workers in (worker_counts or [1]) if args.postgres else []:  # --workers counts on PostgreSQL too
            stats, cpu, stored, used = run_gateway_on_postgres(ips, args, workers)
            processes = f", {workers} workers" if worker_counts else ""
            name = f"{tag}gateway on PostgreSQL ({args.loop}{processes}, {stored:,} stored)"
            results.append((name, stats, cpu))
            db_cpu[name] = used
        echo = per_core(*results[0][1:])
        rows += [(name, s.rate, s.percentile(50) * 1000, s.percentile(99) * 1000, sum(s.failed.values()),
                  f"{cpu / s.seconds:.0%}" + (f" (+ db {db_cpu[name] / s.seconds:.0%})" if name in db_cpu else ""),
                  per_core(s, cpu), f"{per_core(s, cpu) / echo:.2f}" if cpu and echo else "-")
                 for name, s, cpu in results]
    print_table(f"Uplink: CoAP CON POST, {args.sims} SIMs, {args.window} in flight, {args.seconds:g} s, "
                f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
                ["server", "msgs/s", "p50 ms", "p99 ms", "failed", "server busy", "msgs per server CPU-s",
                 "÷ echo of its round, per CPU-s"], rows,
                note="msgs/s: answers per second as the load generator saw them (on 2 cores the single-process "
                     "generator shares the machine with the server). server busy: the server process's CPU time "
                     "(all threads) over the run's wall time. msgs per server CPU-s: answered messages per second "
                     "of server CPU, the figure the 'per gateway core' target is about; the last column divides it "
                     "by the bare echo's figure measured in the same round (the issue's 1.0x target); "
                     "on PostgreSQL the database's own CPU (+ db) is not in it.")
    return rows


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
