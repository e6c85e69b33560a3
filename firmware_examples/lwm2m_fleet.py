"""Many emulated LwM2M clients, cheaply: raw non-blocking sockets and pre-encoded Registers.

The aiocoap-based :mod:`firmware_examples.lwm2m_client` is a full client (bootstrap, reads,
observations) but costs a context per device. This module only registers, as fast as a plain
socket allows: for each SIM it binds a socket to the SIM's address, sends a CON Register with a
small link list, and counts the answer; ``window`` registrations are in flight. The benchmark
and demos use it; from the shell it registers every SIM of a gateway's store:

    python -m firmware_examples.lwm2m_fleet --store data/gateway.db --port 5683
"""

from __future__ import annotations

import argparse
import selectors
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

from aiocoap import CON
from aiocoap.numbers.codes import Code

from .coap_client import build_request

LINKS = b'</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</3303/0>,</6/0>'
LINK_FORMAT = 40


def register_request(iccid: str, mid: int, lifetime: int = 86400, links: bytes = LINKS) -> bytes:
    """A CON ``POST /rd?ep=ICCID&lt&lwm2m=1.1&b=U`` with a link list, encoded."""
    message = build_request(Code.POST, "/rd", links, query=[f"ep={iccid}", f"lt={lifetime}", "lwm2m=1.1", "b=U"],
                            mid=mid & 0xFFFF, token=struct.pack("!I", mid & 0xFFFFFFFF))
    message.mtype = CON
    message.opt.content_format = LINK_FORMAT
    return message.encode()


@dataclass
class RegisterStats:
    registered: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.registered / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def run_registrations(server: tuple[str, int], ips: list[str], requests: list[bytes], *, window: int = 256,
                      timeout: float = 5.0, progress: bool = False) -> RegisterStats:
    """Register every (ip, request) once; ``window`` in flight. 2.xx answers count as success."""
    stats = RegisterStats()
    selector = selectors.DefaultSelector()
    inflight: dict[socket.socket, tuple[float, int]] = {}
    perf = time.perf_counter
    start = perf()
    nxt = 0
    total = len(ips)
    last_report = start
    retries: list[int] = []
    while nxt < total or inflight or retries:
        while len(inflight) < window and (retries or nxt < total):
            index = retries.pop() if retries else nxt
            if index == nxt:
                nxt += 1
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.bind((ips[index], 0))
                sock.sendto(requests[index], server)
            except OSError:
                sock.close()
                stats.failed["send_error"] = stats.failed.get("send_error", 0) + 1
                continue
            inflight[sock] = (perf(), index)
            selector.register(sock, selectors.EVENT_READ)
        for key, _ in selector.select(0.005):
            sock = key.fileobj
            try:
                data = sock.recv(2048)
            except OSError:
                continue
            sent_at, index = inflight.pop(sock)
            selector.unregister(sock)
            sock.close()
            code = data[1] if len(data) > 1 else 0
            if code >> 5 == 2:
                stats.registered += 1
                stats.latencies.append(perf() - sent_at)
            else:
                reason = f"{code >> 5}.{code & 31:02d}"
                stats.failed[reason] = stats.failed.get(reason, 0) + 1
        now = perf()
        if now - last_report > 0.5:
            last_report = now
            for sock, (sent_at, index) in list(inflight.items()):
                if now - sent_at > timeout:
                    del inflight[sock]
                    selector.unregister(sock)
                    sock.close()
                    stats.failed["timeout"] = stats.failed.get("timeout", 0) + 1
            if progress:
                print(f"  {stats.registered:,} registered, {len(inflight)} in flight", end="\r", flush=True)
    stats.seconds = perf() - start
    if progress:
        print(" " * 60, end="\r")
    return stats


def main(argv: list[str] | None = None) -> int:
    from inspector.sqlite import SqliteStore

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="the gateway's SQLite file: every enabled SIM registers")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5683)
    parser.add_argument("--lifetime", type=int, default=86400)
    parser.add_argument("--window", type=int, default=256)
    args = parser.parse_args(argv)
    sims = [s for s in SqliteStore(args.store).all_sims() if s.enabled]
    requests = [register_request(s.iccid, i, args.lifetime) for i, s in enumerate(sims)]
    stats = run_registrations((args.host, args.port), [s.ip_address for s in sims], requests, window=args.window,
                              progress=True)
    print(f"{stats.registered:,} of {len(sims):,} SIMs registered in {stats.seconds:.1f} s "
          f"({stats.rate:,.0f}/s); failed: {stats.failed or 'none'}")
    return 0 if stats.registered == len(sims) else 2


if __name__ == "__main__":
    sys.exit(main())
