"""RADIUS accounting and SIM lookup benchmarks.

    python -m bench.radius [--seconds 6] [--sims 1000] [--window 512] [--lookup-sims 1000000]

1. Accounting: Accounting-Requests (Start, each moving the SIM to a new address, so every request
   is a binding change) from one load generator, answered by the gateway only after the group
   commit that makes the binding durable and visible. Baseline in the same run, with the same
   generator: a bare asyncio UDP echo (no RADIUS work). The figure the issue asks for is
   answered requests per second of gateway CPU.
2. Lookup: the directory's ``enabled_sim_for_ip`` over 1,000 .. ``--lookup-sims`` SIMs (static
   addresses, and with every SIM bound by RADIUS), time per lookup and memory per SIM
   (tracemalloc: what the directory's dicts and SIM objects hold).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import select
import socket
import struct
import tempfile
import time
import tracemalloc
from pathlib import Path

from pyrad import packet as rp

from gateway.connectivity.radius import dictionary
from gateway.identity import SimRegistry
from inspector.records import Sim
from inspector.sqlite import SqliteStore

from .common import child, coap_gateway_config, free_port, print_table, process_cpu

SECRET = b"bench-secret"


def sims(count: int) -> list[Sim]:
    return [Sim(iccid=f"8988280680{i:09d}", imsi=f"90140530{i:07d}", ip_address=f"10.{i >> 16 & 255}.{i >> 8 & 255}."
                f"{i & 255}") for i in range(count)]


class Requests:
    """Accounting-Starts built once with pyrad, then varied cheaply: the Framed-IP-Address (a new
    address per request) and the Request Authenticator (MD5 over the packet and the secret)."""

    def __init__(self, count_sims: int) -> None:
        d = dictionary()
        self.templates = []
        for s in sims(count_sims):
            pkt = rp.AcctPacket(rp.AccountingRequest, 0, SECRET, dict=d)
            pkt["Acct-Status-Type"] = 1
            pkt["3GPP-IMSI"] = s.imsi
            pkt["Acct-Session-Id"] = f"s-{s.iccid}"
            pkt["Framed-IP-Address"] = "100.64.0.1"
            pkt["NAS-IP-Address"] = "127.0.0.1"
            raw = pkt.RequestPacket()
            self.templates.append((bytearray(raw), raw.index(bytes([8, 6, 100, 64, 0, 1])) + 2))
        self.n = 0

    def next(self, ident: int) -> bytes:
        raw, at = self.templates[self.n % len(self.templates)]
        self.n += 1
        raw[1] = ident
        raw[at:at + 4] = struct.pack("!I", (100 << 24 | 64 << 16) + self.n % (1 << 22))
        raw[4:20] = bytes(16)
        raw[4:20] = hashlib.md5(bytes(raw) + SECRET).digest()
        return bytes(raw)


def load(port: int, seconds: float, window: int, requests: Requests) -> tuple[int, float, int]:
    """Keep ``window`` requests in flight over sockets of 256 identifiers each; (answered, seconds, lost)."""
    count = max(1, window // 200)
    per = window // count
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    inflight = [dict() for _ in socks]  # ident -> sent time
    answered = lost = 0
    start = time.perf_counter()
    end = start + seconds
    next_ident = [0] * count
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        progress = False
        for i, s in enumerate(socks):
            waiting = inflight[i]
            while len(waiting) < per:
                ident = next_ident[i]
                next_ident[i] = (ident + 1) % 256
                if ident in waiting:
                    if now - waiting[ident] > 2.0:
                        lost += 1
                        del waiting[ident]
                    break
                s.send(requests.next(ident))
                waiting[ident] = now
                progress = True
            for _ in range(256):
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    break
                if waiting.pop(data[1], None) is not None:
                    answered += 1
                    progress = True
        if not progress:  # window full: sleep until an answer arrives instead of spinning
            select.select(socks, [], [], 0.05)
    for s in socks:
        s.close()
    return answered, time.perf_counter() - start, lost


def accounting(seconds: float, count_sims: int, window: int) -> list[tuple]:
    requests = Requests(count_sims)
    rows = []
    port = free_port()
    with child(["-m", "bench.servers", "radius-echo", str(port)]) as process:
        load(port, 1.0, window, requests)
        cpu = process_cpu(process.pid)
        answered, took, lost = load(port, seconds, window, requests)
        rows.append(("bare asyncio UDP echo", answered / took, lost, process_cpu(process.pid) - cpu, answered, took))
    with tempfile.TemporaryDirectory() as tmp:
        radius_port = free_port()
        extra = (f'[log]\nlevel = "WARNING"\n[radius]\nenabled = true\nbind = "127.0.0.1"\nport = {radius_port}\n'
                 f'clients = {{ "127.0.0.1" = "{SECRET.decode()}" }}\n')
        config = coap_gateway_config(Path(tmp), free_port(), extra)
        SqliteStore(Path(tmp) / "bench.db").upsert_sims(sims(count_sims))
        with child(["-m", "gateway", "serve", "--config", str(config)], ready="listening") as process:
            load(radius_port, 1.0, window, requests)
            cpu = process_cpu(process.pid)
            answered, took, lost = load(radius_port, seconds, window, requests)
            used = process_cpu(process.pid) - cpu
        rows.append(("nce-gateway: Start, new address, answered after commit", answered / took, lost, used,
                     answered, took))
    return rows


def _per_lookup_ns(fn, keys: list[str]) -> float:
    """CPU time (this process) per call, so other load on the machine does not count."""
    t = time.process_time()
    for key in keys:
        fn(key)
    return (time.process_time() - t) / len(keys) * 1e9


def lookup(max_sims: int) -> list[tuple]:
    rows = []
    for n in sorted({x for x in (1_000, 100_000, max_sims) if x <= max_sims}):
        tracemalloc.start()
        all_sims = sims(n)  # what the store read gives the directory: SIM objects and their strings

        class Store:
            def sims_version(self) -> int:
                return 1

            def all_sims(self) -> list[Sim]:
                return all_sims

        directory = SimRegistry(Store())
        directory.reload()
        static_bytes = tracemalloc.get_traced_memory()[0]
        probe = [s.ip_address for s in random.Random(1).sample(all_sims, min(n, 200_000))]
        plain = {s.ip_address: s for s in all_sims}
        baseline_ns = _per_lookup_ns(plain.get, probe)
        del plain
        static_ns = _per_lookup_ns(directory.enabled_sim_for_ip, probe)
        before = tracemalloc.get_traced_memory()[0]
        addresses = [f"100.{64 + (i >> 16 & 63)}.{i >> 8 & 255}.{i & 255}" for i in range(n)]
        for s, address in zip(all_sims, addresses):
            directory.bind(s.iccid, address)
        bound_bytes = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        probe = random.Random(2).sample(addresses, min(n, 200_000))
        bound_ns = _per_lookup_ns(directory.enabled_sim_for_ip, probe)
        rows.append((f"{n:,} SIMs", baseline_ns, static_ns, bound_ns, static_bytes / n, bound_bytes / n))
        del directory, all_sims, addresses, probe
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--window", type=int, default=512, help="requests in flight in total")
    parser.add_argument("--lookup-sims", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    rows = accounting(args.seconds, args.sims, args.window)
    ours = rows[1][4] / rows[1][3] if rows[1][3] else float("nan")
    print_table(f"RADIUS accounting: {args.sims} SIMs, {args.window} in flight, {args.seconds:g} s, "
                f"{os.cpu_count()} cores",
                ["server", "answers/s", "lost", "server busy", "answers per server CPU-s", "gateway ÷ this"],
                [(name, rate, lost, f"{cpu / took:.0%}", n / cpu if cpu else float("nan"),
                  f"{ours / (n / cpu):.2f}" if cpu else "-") for name, rate, lost, cpu, n, took in rows],
                note="Every gateway answer follows the group commit that made the binding durable "
                     "(store.synchronous = full) and visible to the uplink path. answers per server CPU-s is the "
                     "'per core' figure.")
    print_table("SIM lookup (enabled_sim_for_ip), one dict read",
                ["directory", "ns plain dict.get (baseline)", "ns/lookup static", "ns/lookup bound", "bytes/SIM static",
                 "bytes/SIM added by a binding"],
                lookup(args.lookup_sims),
                note="ns: CPU time per lookup of random addresses (process time, so other load counts less). "
                     "bytes/SIM static: SIM objects, their strings and the directory's dicts (tracemalloc). "
                     "added by a binding: the address string, the binding dicts and the SIM object carrying the "
                     "bound address.")


if __name__ == "__main__":
    main()
