"""Management API benchmark: Device Inspector history queries on a full store, token check cost.

    python -m bench.api                  1 million messages, 1,000 SIMs, 7 days (well under a minute)
    python -m bench.api --full           10 million messages, 10,000 SIMs (the issue's size)
    python -m bench.api --messages 3000000 --sims 5000 --keep /tmp/inspector.db

A bulk loader fills a fresh store straight through SQLite (secondary indexes dropped, big
``executemany`` transactions, indexes rebuilt at the end), with messages spread evenly over the
days and SIMs. Then, over many random windows:

* the history page of one device for one day (the target: p99 under 20 ms), first page and a
  page deep into the day, through the store's query (``inspector.history``) and over HTTP;
* the history page of all devices (any window in the 7 days, with and without a protocol);
* insights (counts per interval) for one device over 7 days and for all devices over one day;
* the token check: ``Authenticator.check_token`` alone, and the same trivial handler over HTTP
  with and without authentication (same process, same client, same run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from inspector import history
from inspector.history import HistoryQuery
from inspector.records import Sim
from inspector.sqlite import SqliteStore

from .common import print_table

DAY_MS = 86_400_000
PROTOCOLS = ("UDP", "COAP", "LWM2M")
INDEXES = {
    "messages_by_time": "CREATE INDEX messages_by_time ON messages (received_ms)",
    "messages_by_protocol": "CREATE INDEX messages_by_protocol ON messages (protocol, received_ms)",
}


def bench_sims(count: int) -> list[Sim]:
    return [Sim(iccid=f"8988280680{i:09d}", imsi=f"90140530{i:07d}",
                ip_address=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                label=f"bench-{i}") for i in range(count)]


def load(path: Path, messages: int, sims: list[Sim], days: int, end_ms: int, batch: int = 200_000) -> float:
    """Fill ``path`` with ``messages`` messages over ``days`` days ending at ``end_ms``; seconds taken."""
    store = SqliteStore(path, "normal")
    store.upsert_sims(sims)
    conn = store.connection()
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA threads=2")  # index builds sort in parallel where SQLite allows it
    for name in INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    rng = random.Random(1)
    iccids = [s.iccid for s in sims]
    start_ms = end_ms - days * DAY_MS
    step = days * DAY_MS / messages
    payloads = [os.urandom(rng.randrange(12, 48)) for _ in range(997)]
    translated = ['{"temperature":%d.%d,"humidity":%d,"battery":%d}' % (rng.randrange(-20, 40), rng.randrange(10),
                                                                          rng.randrange(100), rng.randrange(100))
                  for _ in range(101)]
    started = time.perf_counter()
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("messages", total=messages)
        topics = ("sensors/env", None)
        done = 0
        while done < messages:
            count = min(batch, messages - done)
            devices = rng.choices(iccids, k=count)
            rows = [(seq, device, PROTOCOLS[seq % 3], int(start_ms + seq * step),
                     topics[seq % 2] if seq % 3 == 1 else None, payloads[seq % 997],
                     translated[seq % 101] if seq % 5 == 0 else None)
                    for seq, device in zip(range(done + 1, done + count + 1), devices, strict=True)]
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO messages (seq, iccid, protocol, received_ms, topic, payload, translated)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
            done += count
            progress.update(task, advance=count)
        index_task = progress.add_task("indexes", total=len(INDEXES) + 2)
        for sql in INDEXES.values():
            conn.execute(sql)
            progress.update(index_task, advance=1)
        store.fill_device_index(chunk=messages + 1)  # device_messages, as the gateway fills it
        progress.update(index_task, advance=1)
        conn.execute("BEGIN")
        conn.execute("DELETE FROM latest")
        conn.execute("INSERT INTO latest (iccid, protocol, message_seq)"
                     " SELECT iccid, protocol, MAX(seq) FROM messages GROUP BY iccid, protocol")
        conn.execute("COMMIT")
        progress.update(index_task, advance=1)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    """(p50, p99, max) in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000, ordered[-1] * 1000


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def query_benchmarks(path: Path, sims: list[Sim], end_ms: int, days: int, samples: int,
                     page_size: int) -> list[tuple]:
    store = SqliteStore(path, "normal")
    rng = random.Random(2)
    high_water = history.high_water_mark(store)
    rows: list[tuple] = []

    def day_window() -> tuple[int, int]:
        start = end_ms - days * DAY_MS + rng.randrange(0, (days - 1) * DAY_MS)
        return start, start + DAY_MS

    def run(name: str, make_query: Any, count: int) -> None:
        times, sizes = [], []
        for _ in range(count):
            query = make_query()
            seconds, page = timed(history.history_page, store, query, page_size + 1)
            times.append(seconds)
            sizes.append(len(page))
        p50, p99, worst = percentiles(times)
        rows.append((name, count, statistics.mean(sizes), p50, p99, worst))

    def one_device_first() -> HistoryQuery:
        start, end = day_window()
        return HistoryQuery(rng.choice(sims).iccid, None, start, end, high_water)

    def one_device_deep() -> HistoryQuery:
        start, end = day_window()
        device = rng.choice(sims).iccid
        middle = (start + end) // 2
        return HistoryQuery(device, None, start, end, high_water, (middle, 0))

    def all_first() -> HistoryQuery:
        start, end = day_window()
        return HistoryQuery(None, None, start, end, high_water)

    def all_deep() -> HistoryQuery:
        start, end = day_window()
        after = (rng.randrange(start - 5 * DAY_MS, end), 0)
        return HistoryQuery(None, None, start - 6 * DAY_MS, end, high_water, after)

    def all_protocol() -> HistoryQuery:
        start, end = day_window()
        return HistoryQuery(None, rng.choice(PROTOCOLS), start, end, high_water,
                            (rng.randrange(start, end), 0))

    def device_protocol() -> HistoryQuery:
        start, end = day_window()
        return HistoryQuery(rng.choice(sims).iccid, rng.choice(PROTOCOLS), start, end, high_water)

    run("one device, one day, first page", one_device_first, samples)
    run("one device, one day, page from mid-day", one_device_deep, samples)
    run("one device + protocol, one day", device_protocol, samples)
    run("all devices, one day, first page", all_first, samples)
    run("all devices, 7 days, page anywhere", all_deep, samples)
    run("all devices + protocol, page anywhere", all_protocol, samples)

    insight_times = []
    for _ in range(max(10, samples // 10)):
        seconds, _ = timed(lambda: history.insights(store, iccid=rng.choice(sims).iccid, protocol=None,
                                                    start_ms=end_ms - days * DAY_MS, end_ms=end_ms,
                                                    bucket_ms=DAY_MS, offset_ms=0))
        insight_times.append(seconds)
    rows.append(("insights, one device, 7 days by day", len(insight_times), float(days), *percentiles(insight_times)))
    all_times = []
    for _ in range(3):
        start, end = day_window()
        seconds, _ = timed(lambda s=start, e=end: history.insights(store, iccid=None, protocol=None, start_ms=s,
                                                                   end_ms=e, bucket_ms=3_600_000, offset_ms=0))
        all_times.append(seconds)
    rows.append(("insights, all devices, one day by hour", len(all_times), 24.0, *percentiles(all_times)))
    store.close()
    return rows


async def http_benchmarks(path: Path, sims: list[Sim], end_ms: int, days: int, samples: int,
                          page_size: int) -> tuple[list[tuple], list[tuple]]:
    import aiohttp
    from aiohttp import web

    from gateway.api.routes import PUBLIC, READ, ApiRoute, json_response, wrap
    from gateway.app import Gateway
    from gateway.config import load_config
    from inspector import accounts as store_accounts

    config = load_config(environ={})
    config.store.path = str(path)
    config.store.synchronous = "normal"
    config.udp.enabled = config.coap.enabled = config.coaps.enabled = False
    config.api.port = 0
    gateway = Gateway(config)
    await gateway.start()
    try:
        user = await gateway.committer.write(store_accounts.create_account, gateway.store, "bench@example.com",
                                             "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$notused", "API")
        await gateway.api_auth.reload()
        token, _ = gateway.api_auth.issue(user)
        auth = gateway.api_auth

        # the token check alone
        class FakeRequest:
            headers = {"Authorization": f"Bearer {token}"}

        n = 100_000
        started = time.perf_counter()
        for _ in range(n):
            auth.authenticate(FakeRequest)  # type: ignore[arg-type]
        check_us = (time.perf_counter() - started) / n * 1e6
        started = time.perf_counter()
        for _ in range(n // 10):
            auth._verified.clear()  # as on the token's first use: signature and claims decoded
            auth.authenticate(FakeRequest)  # type: ignore[arg-type]
        first_us = (time.perf_counter() - started) / (n // 10) * 1e6

        # the same trivial handler with and without the token check, over HTTP
        async def trivial(request: web.Request) -> web.Response:
            return json_response({"ok": True})

        app = web.Application()
        app.router.add_get("/open", wrap(ApiRoute("GET", "/open", trivial, PUBLIC, operation={}), None,
                                         auth.authenticate))
        app.router.add_get("/closed", wrap(ApiRoute("GET", "/closed", trivial, READ, operation={}), None,
                                           auth.authenticate))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        headers = {"Authorization": f"Bearer {token}"}
        rng = random.Random(3)
        token_rows: list[tuple] = []
        async with aiohttp.ClientSession() as session:
            async def measure(url: str, count: int, with_token: bool) -> list[float]:
                times = []
                for _ in range(count):
                    started = time.perf_counter()
                    async with session.get(url, headers=headers if with_token else None) as response:
                        await response.read()
                        assert response.status == 200, (url, response.status)
                    times.append(time.perf_counter() - started)
                return times

            for _ in range(2):  # warm both, then measure interleaved rounds
                await measure(f"http://127.0.0.1:{port}/open", 200, False)
                await measure(f"http://127.0.0.1:{port}/closed", 200, True)
            open_times: list[float] = []
            closed_times: list[float] = []
            for _ in range(5):
                open_times += await measure(f"http://127.0.0.1:{port}/open", 400, False)
                closed_times += await measure(f"http://127.0.0.1:{port}/closed", 400, True)
            o50, o99, _ = percentiles(open_times)
            c50, c99, _ = percentiles(closed_times)
            token_rows = [("token check alone, first use of a token", n // 10, first_us, "-", "-"),
                          ("token check alone, token seen before", n, check_us, "-", "-"),
                          ("HTTP, no token check", len(open_times), o50 * 1000, o99 * 1000, "-"),
                          ("HTTP, with token check", len(closed_times), c50 * 1000, c99 * 1000,
                           f"{(c50 - o50) * 1000:+.0f} µs")]

            # the history page of one device for one day, through the whole API
            base = f"http://127.0.0.1:{gateway.api_port}/management-api"
            times = []
            for _ in range(samples):
                device = rng.choice(sims).iccid
                start = end_ms - days * DAY_MS + rng.randrange(0, (days - 1) * DAY_MS)
                params = {"startDateTime": _iso(start), "endDateTime": _iso(start + DAY_MS), "pageSize": str(page_size)}
                started = time.perf_counter()
                async with session.get(f"{base}/v1/inspect/devices/{device}/history", params=params,
                                       headers=headers) as response:
                    await response.read()
                    assert response.status == 200
                times.append(time.perf_counter() - started)
            http_rows = [("HTTP: one device, one day, first page", samples, "-", *percentiles(times))]
        await runner.cleanup()
    finally:
        await gateway.stop()
    return http_rows, token_rows


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--sims", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--samples", type=int, default=400, help="random windows per query kind")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--full", action="store_true", help="10 million messages from 10,000 SIMs")
    parser.add_argument("--keep", metavar="FILE", help="load into FILE and keep it (re-used when it exists)")
    args = parser.parse_args(argv)
    if args.full:
        args.messages, args.sims = 10_000_000, 10_000
    sims = bench_sims(args.sims)
    end_ms = time.time_ns() // 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "inspector.db"
        if path.exists() and args.keep:
            print(f"re-using {path}")
            conn = SqliteStore(path).connection()
            end_ms = conn.execute("SELECT MAX(received_ms) FROM messages").fetchone()[0] + 1
            loaded = "re-used"
        else:
            seconds = load(path, args.messages, sims, args.days, end_ms)
            loaded = f"{args.messages / seconds:,.0f} messages/s"
        size_mb = sum(f.stat().st_size for f in path.parent.glob(path.name + "*")) / 1e6
        rows = query_benchmarks(path, sims, end_ms, args.days, args.samples, args.page_size)
        http_rows, token_rows = asyncio.run(http_benchmarks(path, sims, end_ms, args.days,
                                                            max(100, args.samples // 2), args.page_size))
    print_table(f"Device Inspector history, {args.messages:,} messages, {args.sims:,} SIMs, {args.days} days "
                f"(bulk load {loaded}, store {size_mb:,.0f} MB); page size {args.page_size}",
                ["query", "samples", "rows/page", "p50 ms", "p99 ms", "max ms"], rows + http_rows,
                note="target: one device, one day, p99 under 20 ms")
    print_table("Token check per request", ["what", "samples", "p50 µs", "p99 µs", "overhead (p50)"], token_rows)


if __name__ == "__main__":
    main()
