"""A CoAP/UDP load generator on plain non-blocking sockets, for benchmarks and the fleet emulator.

aiocoap's client tops out near 2,000 requests/s here, far below what the gateway answers, so
this generator pre-encodes each device's CON POST once, patches the message ID per send, keeps
a window of requests in flight per device socket, and matches answers by message ID. One
process drives well over 50,000 requests/s from one core.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field

from aiocoap import CON, NON
from aiocoap.numbers.codes import Code

from .coap_client import build_request


@dataclass
class LoadStats:
    sent: int = 0
    acknowledged: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def fail(self, reason: str, count: int = 1) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + count

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def rate(self) -> float:
        return self.acknowledged / self.seconds if self.seconds else 0.0


class _Device:
    __slots__ = ("sock", "template", "mid", "inflight")

    def __init__(self, sock: socket.socket, template: bytearray) -> None:
        self.sock = sock
        self.template = template
        self.mid = int.from_bytes(os.urandom(2), "big")
        self.inflight: dict[int, float] = {}


def open_devices(source_ips: list[str], payload: bytes, topic: str | None, confirmable: bool = True,
                 path: str = "/", content_format: int | None = None) -> list[_Device]:
    devices = []
    for ip in source_ips:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((ip, 0))
        sock.setblocking(False)
        message = build_request(Code.POST, path, payload, query=[f"t={topic}"] if topic else None,
                                confirmable=confirmable, mid=0, token=b"\x00\x00")
        if content_format is not None:
            message.opt.content_format = content_format
        message.mtype = CON if confirmable else NON
        devices.append(_Device(sock, bytearray(message.encode())))
    return devices


def run_coap_load(server: tuple[str, int], source_ips: list[str], *, duration: float, window: int = 64,
                  payload: bytes = b"\x01\x02\x03\x04\x05\x06\x07\x08", topic: str | None = None,
                  rate: float | None = None, timeout: float = 5.0, confirmable: bool = True,
                  progress=None, path: str = "/", content_format: int | None = None) -> LoadStats:
    """Send POSTs (CON, or NON) from every source for ``duration`` seconds.

    Closed loop: ``window`` requests are in flight in total, spread over the devices; each
    answer frees a slot of its device, which sends its next request. ``rate`` caps requests
    per second when given (open-loop pacing within the window). Each request carries its
    message ID as its 2-byte token too, so answers are matched by token: a NON request's
    answer has a message ID of the server's choosing."""
    devices = open_devices(source_ips, payload, topic, confirmable, path=path, content_format=content_format)
    stats = LoadStats()
    selector = selectors.DefaultSelector()
    for device in devices:
        selector.register(device.sock, selectors.EVENT_READ, device)
    per_device = max(1, window // len(devices))
    ready: deque[_Device] = deque(d for d in devices for _ in range(per_device))
    pack_mid = struct.Struct("!H").pack_into
    perf = time.perf_counter
    latencies = stats.latencies
    start = perf()
    end = start + duration
    next_check = start + 0.5
    interval = 1.0 / rate if rate else 0.0
    next_send = start
    inflight_total = 0

    def receive(device: _Device) -> None:
        nonlocal inflight_total
        inflight = device.inflight
        recv = device.sock.recv
        while True:
            try:
                data = recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                stats.fail("recv_error")
                return
            if len(data) < 6 or data[0] & 0x0F != 2:
                continue
            sent_at = inflight.pop(data[4] << 8 | data[5], None)
            if sent_at is None:
                continue
            inflight_total -= 1
            ready.append(device)
            code = data[1]
            if code >> 5 == 2:
                stats.acknowledged += 1
                latencies.append(perf() - sent_at)
            else:
                stats.fail(f"{code >> 5}.{code & 31:02d}")

    now = start
    while now < end:
        while ready and now < end:
            if rate:
                if now < next_send:
                    break
                next_send += interval
            device = ready.popleft()
            device.mid = mid = (device.mid + 1) & 0xFFFF
            pack_mid(device.template, 2, mid)
            pack_mid(device.template, 4, mid)  # the token
            try:
                device.sock.sendto(device.template, server)
            except OSError:
                stats.fail("send_error")
                ready.append(device)
                break
            device.inflight[mid] = now
            stats.sent += 1
            inflight_total += 1
        for key, _ in selector.select(0.0005 if ready else 0.01):
            receive(key.data)
        now = perf()
        if now >= next_check:
            next_check = now + 0.5
            for device in devices:  # requests with no answer free their slot after ``timeout``
                stale = [mid for mid, t in device.inflight.items() if now - t > timeout]
                for mid in stale:
                    del device.inflight[mid]
                    inflight_total -= 1
                    ready.append(device)
                    stats.fail("timeout")
            if progress is not None:
                progress(stats, now - start)
    # collect answers to what is still in flight
    drain_end = perf() + min(timeout, 2.0)
    while inflight_total > 0 and perf() < drain_end:
        for key, _ in selector.select(0.01):
            receive(key.data)
    if inflight_total:
        stats.fail("timeout", inflight_total)
    stats.seconds = perf() - start
    for device in devices:
        selector.unregister(device.sock)
        device.sock.close()
    return stats


def run_udp_load(server: tuple[str, int], source_ips: list[str], *, duration: float, rate: float,
                 payload: bytes = b"\x01\x02\x03\x04", progress=None) -> LoadStats:
    """Send UDP datagrams from every source, round robin, at ``rate`` per second (no answers)."""
    socks = []
    for ip in source_ips:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((ip, 0))
        socks.append(sock)
    stats = LoadStats()
    perf = time.perf_counter
    start = perf()
    end = start + duration
    interval = 1.0 / rate
    next_send = start
    next_check = start + 0.5
    i = 0
    now = start
    while now < end:
        if now >= next_send:
            try:
                socks[i % len(socks)].sendto(payload, server)
                stats.sent += 1
            except OSError:
                stats.fail("send_error")
            i += 1
            next_send += interval
        else:
            time.sleep(min(next_send - now, 0.001))
        now = perf()
        if progress is not None and now >= next_check:
            next_check = now + 0.5
            progress(stats, now - start)
    stats.seconds = perf() - start
    for sock in socks:
        sock.close()
    return stats


def source_ips(count: int, base: str = "127.1.0.0") -> list[str]:
    """``count`` loopback addresses starting after ``base`` (127.1.0.1, 127.1.0.2, ...)."""
    first = struct.unpack("!I", socket.inet_aton(base))[0]
    return [socket.inet_ntoa(struct.pack("!I", first + i + 1)) for i in range(count)]
