"""LwM2M benchmark: registrations/s, Send messages/s and memory per registration.

    python -m bench.lwm2m                       bounded run (about a minute)
    python -m bench.lwm2m --registrations 100000   the full target: 100,000 registrations

Every emulated client is a distinct SIM with its own 127.x source address. The generator uses
plain non-blocking sockets and pre-encoded requests (aiocoap's client could not load a fast
server): for each registration it binds a socket to the SIM's address, sends a CON Register
(``POST /rd?ep=ICCID&lt=86400&lwm2m=1.1&b=U`` with a link list), and counts the ``2.01``;
``--window`` registrations are in flight. Send is measured with the uplink load generator
(``POST /dp``, SenML JSON) from ``--senders`` registered SIMs, beside plain uplink POSTs from
the same SIMs to the same gateway. Every first registration of a SIM also raises a LIFECYCLE
event that is committed before the ``2.01``; a second round of Registers from SIMs that are
already registered measures the steady state. The registration baseline is a bare aiocoap server answering
the same Register requests with no work at all.

The gateway runs as its own process with its default durability (``synchronous = "full"``: a
Register is answered after its registration row is committed). Memory per registration is
reported twice: the gateway process's RSS growth divided by the number of registrations
(everything: registrations, indexes, the exchange cache that recognises retransmissions for
247 s, SQLite's page cache), and the Python heap of the registration records and their indexes
alone, measured with tracemalloc in this process.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path


from firmware_examples.loadgen import run_coap_load, source_ips
from firmware_examples.lwm2m_fleet import LINKS, register_request, run_registrations
from gateway.lwm2m import ContentFormat
from gateway.lwm2m.registration import Registration, RegistrationStore, compact_remote
from inspector.records import Sim
from inspector.sqlite import SqliteStore

from .common import child, coap_gateway_config, free_port, print_table

SEND = b'[{"bn":"/3303/0/","n":"5700","v":21.5}]'


def iccid_of(i: int) -> str:
    return f"8988280680{i:09d}"


def bench_sims(ips: list[str]) -> list[Sim]:
    return [Sim(iccid=iccid_of(i), imsi=f"90140530{i:07d}", ip_address=ip) for i, ip in enumerate(ips)]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def heap_per_registration(count: int) -> float:
    """tracemalloc: bytes per registration of the records and indexes the server keeps."""
    from gateway.transports.coap import PlainRemote

    iccids = [iccid_of(i) for i in range(count)]  # owned by the SIM registry in the gateway
    ips = source_ips(count)
    store = RegistrationStore()
    links = LINKS.decode()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    now = int(time.time() * 1000)
    for i in range(count):
        address = (ips[i].encode().decode(), 40000 + i % 20000)  # a new str per datagram, as recvfrom gives
        reg = Registration(store.new_id(), iccids[i], 86400, "1.1", "U", False, None, store.intern_links(links),
                           compact_remote(PlainRemote(None, address)), now + 86400_000)  # type: ignore[arg-type]
        store.add(reg)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / count


def gateway_config(directory: Path, coap_port: int) -> Path:
    return coap_gateway_config(directory, coap_port,
                               '[registry]\npoll_interval_seconds = 5\n[log]\nlevel = "WARNING"\n')


def _per(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:,.0f}" if count else "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registrations", type=int, default=30000, help="emulated clients (default 30,000; "
                        "the target is 100,000)")
    parser.add_argument("--window", type=int, default=1024, help="requests in flight")
    parser.add_argument("--senders", type=int, default=500, help="registered SIMs that Send")
    parser.add_argument("--reregistrations", type=int, default=20000,
                        help="SIMs that register a second time (the steady state: no first-registration event)")
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of each Send/uplink measurement")
    parser.add_argument("--baseline", type=int, default=10000, help="registrations sent to the bare aiocoap server")
    args = parser.parse_args(argv)
    count = args.registrations
    ips = source_ips(count, base="127.2.0.0")
    print(f"encoding {count:,} Register requests ...", flush=True)
    requests = [register_request(iccid_of(i), i) for i in range(count)]
    server = ("127.0.0.1", 0)

    rows = []
    baseline_n = min(args.baseline, count)
    port = free_port()
    with child(["-m", "bench.servers", "aiocoap", str(port)]):
        base = run_registrations(("127.0.0.1", port), ips[:baseline_n], requests[:baseline_n], window=args.window)
    rows.append((f"bare aiocoap server, 2.04 and no work ({baseline_n:,} Registers)", base.rate,
                 base.percentile(50) * 1000, base.percentile(99) * 1000, sum(base.failed.values()), "", "", ""))

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = gateway_config(Path(tmp), port)
        SqliteStore(Path(tmp) / "bench.db").upsert_sims(bench_sims(ips))
        server = ("127.0.0.1", port)
        with child(["-m", "gateway", "serve", "--config", str(config)], ready="listening", timeout=120) as process:
            time.sleep(1.0)
            rss_before = rss_bytes(process.pid)
            cpu_before = cpu_seconds(process.pid)
            stats = run_registrations(server, ips, requests, window=args.window, progress=True)
            cpu_register = cpu_seconds(process.pid) - cpu_before
            time.sleep(2.0)  # let the last registration writes settle
            rss_after = rss_bytes(process.pid)
            again_n = min(args.reregistrations, count)
            again_requests = [register_request(iccid_of(i), i + 7) for i in range(again_n)]
            cpu_before = cpu_seconds(process.pid)
            again = run_registrations(server, ips[:again_n], again_requests, window=args.window)
            cpu_again = cpu_seconds(process.pid) - cpu_before
            stored = SqliteStore(Path(tmp) / "bench.db").connection().execute(
                "SELECT COUNT(*) FROM lwm2m_registrations").fetchone()[0]
            senders = ips[: args.senders]
            cpu_before = cpu_seconds(process.pid)
            send = run_coap_load(server, senders, duration=args.seconds, window=args.window, payload=SEND,
                                 path="/dp", content_format=ContentFormat.SENML_JSON)
            cpu_send = cpu_seconds(process.pid) - cpu_before
            cpu_before = cpu_seconds(process.pid)
            uplink = run_coap_load(server, senders, duration=args.seconds, window=args.window, payload=SEND)
            cpu_uplink = cpu_seconds(process.pid) - cpu_before
        per_rss = (rss_after - rss_before) / max(stats.registered, 1)
        rows.append((f"nce-gateway Register ({stats.registered:,} registered, {stored:,} stored)", stats.rate,
                     stats.percentile(50) * 1000, stats.percentile(99) * 1000, sum(stats.failed.values()),
                     _per(cpu_register, stats.registered), f"{per_rss:,.0f}", f"{rss_after / 2**20:,.0f}"))
        rows.append((f"nce-gateway Register again ({again.registered:,} SIMs already registered: replaced, "
                     "no LIFECYCLE)", again.rate, again.percentile(50) * 1000, again.percentile(99) * 1000,
                     sum(again.failed.values()), _per(cpu_again, again.registered), "", ""))
        rows.append((f"nce-gateway Send POST /dp, SenML JSON, {len(senders)} SIMs", send.rate,
                     send.percentile(50) * 1000, send.percentile(99) * 1000, sum(send.failed.values()),
                     _per(cpu_send, send.acknowledged), "", ""))
        rows.append(("nce-gateway uplink POST /, same SIMs (baseline)", uplink.rate,
                     uplink.percentile(50) * 1000, uplink.percentile(99) * 1000, sum(uplink.failed.values()),
                     _per(cpu_uplink, uplink.acknowledged), "", ""))
    heap = heap_per_registration(min(count, 100_000))
    print_table(f"LwM2M: {count:,} registrations, {args.window} in flight, {os.cpu_count()} cores",
                ["what", "per s", "p50 ms", "p99 ms", "failed", "CPU µs each", "RSS B/reg", "RSS MiB"], rows,
                note=f"Python heap of the registration records and indexes (tracemalloc): {heap:,.0f} bytes per "
                     f"registration. CPU µs each: the gateway process's CPU time (all threads) per answered "
                     f"request; machine load during the run: {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
