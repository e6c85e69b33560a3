"""Bad input: random bytes, truncated and mutated records, ClientHello floods,
cookie-echoing floods, replays.  The engine stays up, its tables stay within
their limits, memory stays bounded and a good client still gets through."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import socket
import time
import tracemalloc

import pytest

from firmware_examples.dtls_client import DtlsClient
from gateway.transports.dtls import DtlsConfig
from tests.dtls_support import ICCID, PSK, DtlsHarness, client_hello, half_open, rss_kib, wait_for

pytestmark = pytest.mark.asyncio

DEVICE_IP = "127.0.0.10"


async def good_roundtrip(h: DtlsHarness, ip: str = DEVICE_IP) -> None:
    c = DtlsClient(h.addr, ICCID, PSK, local_host=ip, retransmit_min=0.2)
    await c.connect(timeout=5)
    await c.send(b"good")
    assert await c.recv(timeout=2) == b"good"
    await c.close()


def record_of(client: DtlsClient, plaintext: bytes) -> bytes:
    """Encrypt a record with the client's session without sending it."""
    buf = client._buf
    buf.write(plaintext)
    n = len(buf._output_buffer)
    data = buf.peek_outgoing(n)
    buf.consume_outgoing(n)
    return data


def send_from(data: bytes, server, local=(DEVICE_IP, 0)) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(local)
        s.sendto(data, server)


@pytest.fixture
async def echo():
    h = await DtlsHarness(mode="echo").start()
    yield h
    h.close()


async def test_random_bytes_and_truncated_records(echo):
    c = DtlsClient(echo.addr, ICCID, PSK, local_host=DEVICE_IP)
    await c.connect(timeout=5)
    (sess,) = echo.server.sessions
    rng = random.Random(4)
    good = record_of(c, b"template")
    hello = client_hello()
    junk = [os.urandom(rng.randrange(0, 1500)) for _ in range(200)]
    junk += [good[:i] for i in range(len(good))]  # every truncation of an app record
    junk += [hello[:i] for i in range(0, len(hello), 3)]  # truncated ClientHellos
    junk += [bytes([22, 0xFE, 0xFD]) + os.urandom(rng.randrange(10, 200)) for _ in range(100)]
    junk += [b"\x17\xfe\xfd\x00\x01" + os.urandom(6) + b"\xff\xff" + os.urandom(40)]  # length beyond datagram
    junk = [d for d in junk if d]  # (asyncio does not send empty datagrams)
    for data in junk:
        c._endpoint.transport.sendto(data, echo.addr)  # from the session's own address
        send_from(data, echo.addr)  # from a new port of the same IP (rebind attempts)
        send_from(data, echo.addr, ("127.0.0.20", 0))  # from a stranger
    await wait_for(lambda: echo.server.stats.datagrams_in >= 3 * len(junk) + 3)
    assert echo.received == []
    assert echo.server.sessions == [sess] and sess.addr == c.local_addr
    assert echo.server.half_open_count == 0
    await c.send(b"still fine")
    assert await c.recv(timeout=2) == b"still fine"
    assert echo.server.stats.rebinds == 0
    await c.close()
    await good_roundtrip(echo)


async def test_mutated_records_fuzz(echo):
    """Bit flips and splices of real handshake and application records, fed
    straight into the engine from the session's address and others."""
    c = DtlsClient(echo.addr, ICCID, PSK, local_host=DEVICE_IP)
    captured: list[bytes] = []
    real = echo.server.datagram_received

    def spy(data, addr):
        captured.append(data)
        real(data, addr)

    echo.server.datagram_received = spy  # type: ignore[method-assign]
    await c.connect(timeout=5)
    await c.send(b"genuine")  # captured, delivered once; every copy after it is a replay
    assert await c.recv(timeout=2) == b"genuine"
    echo.server.datagram_received = real  # type: ignore[method-assign]
    echo.received.clear()
    (sess,) = echo.server.sessions
    rng = random.Random(7)
    addrs = [c.local_addr, (DEVICE_IP, 40001), ("127.0.0.30", 40002)]
    for i in range(5000):
        data = bytearray(rng.choice(captured))
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(3)
            if op == 0 and data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            elif op == 1:
                data = data[: rng.randrange(len(data) + 1)]
            else:
                data += rng.choice(captured)[: rng.randrange(30)]
        echo.server.datagram_received(bytes(data), rng.choice(addrs))
    assert echo.received == []
    assert sess.state == "established" and echo.server.session_for_addr(c.local_addr) is sess
    assert echo.server.half_open_count <= echo.config.max_half_open
    await c.send(b"after fuzz")
    assert await c.recv(timeout=2) == b"after fuzz"
    await c.close()


async def test_replayed_records_are_dropped(echo):
    c = DtlsClient(echo.addr, ICCID, PSK, local_host=DEVICE_IP)
    await c.connect(timeout=5)
    (sess,) = echo.server.sessions
    rec = record_of(c, b"once")
    for _ in range(3):
        c._endpoint.transport.sendto(rec, echo.addr)
    assert await c.recv(timeout=2) == b"once"
    # replays from new ports of the same IP must not move the session either
    for _ in range(3):
        send_from(rec, echo.addr)
    await wait_for(lambda: echo.server.stats.rebind_failed == 3)
    with pytest.raises(TimeoutError):
        await c.recv(timeout=0.2)
    assert [d for _, d in echo.received] == [b"once"]
    assert sess.addr == c.local_addr and echo.server.stats.rebinds == 0
    await c.send(b"next")
    assert await c.recv(timeout=2) == b"next"
    await c.close()


async def test_forged_record_from_new_port_does_not_hijack(echo):
    c = DtlsClient(echo.addr, ICCID, PSK, local_host=DEVICE_IP)
    await c.connect(timeout=5)
    (sess,) = echo.server.sessions
    rec = bytearray(record_of(c, b"forged?"))
    rec[-1] ^= 0x01  # breaks the tag
    send_from(bytes(rec), echo.addr)
    await wait_for(lambda: echo.server.stats.rebind_failed == 1)
    assert sess.addr == c.local_addr and echo.received == []
    # the untouched original (next sequence number) still decrypts, from the old port
    await c.send(b"real")
    assert await c.recv(timeout=2) == b"real"
    await c.close()


def _flood(server, hellos: list[bytes]) -> None:
    for hello in hellos:
        send_from(hello, server, ("127.0.0.1", 0))  # a new source port each time


@pytest.fixture
async def echo_unthrottled():
    # no per-source HelloVerifyRequest budget: the flood below measures memory, not the limit
    h = await DtlsHarness(mode="echo", config=DtlsConfig(hello_verify_per_ip_per_second=1e9)).start()
    yield h
    h.close()


async def test_client_hello_flood_keeps_no_state(echo_unthrottled):
    """2,000 ClientHellos from 2,000 source ports: each gets a stateless
    HelloVerifyRequest; no session, no half-open handshake, no memory."""
    echo = echo_unthrottled
    n = 2000
    hellos = [client_hello() for _ in range(50)] * (n // 50)
    await good_roundtrip(echo)  # warm up (allocations of a first handshake)
    await asyncio.to_thread(lambda: None)  # and the default executor's thread
    gc.collect()
    tracemalloc.start()
    base_py = tracemalloc.get_traced_memory()[0]
    base_rss = rss_kib()
    t0 = time.monotonic()
    await asyncio.to_thread(_flood, echo.addr, hellos)
    await wait_for(lambda: echo.server.stats.hello_verify_sent >= n + 1, timeout=20)
    elapsed = time.monotonic() - t0
    gc.collect()
    grown_py = tracemalloc.get_traced_memory()[0] - base_py
    tracemalloc.stop()
    grown_rss = rss_kib() - base_rss
    m = echo.server.metrics()
    assert m["dtls_hello_verify_sent"] == n + 1
    assert m["dtls_half_open"] == 0 and m["dtls_sessions"] == 0
    assert m["dtls_handshakes_started"] == 1
    assert len(echo.server._by_addr) == 0 and len(echo.server._ip_buckets) <= 1
    assert grown_py < 64 * 1024, grown_py  # bytes of Python objects
    assert grown_rss < 2048, grown_rss  # KiB of process memory
    print(f"\n{n} ClientHellos in {elapsed:.2f}s: python +{grown_py} B, rss +{grown_rss} KiB")
    await good_roundtrip(echo)


async def test_cookie_echoing_flood_is_bounded():
    """Peers that do the cookie round trip and then go silent (from 400 ports
    on 40 IPs): half-open handshakes never exceed max_half_open (oldest dropped
    first), memory stays bounded, a good client completes during and after."""
    cfg = DtlsConfig(max_half_open=50, handshakes_per_ip_per_second=100, handshake_timeout=30)
    h = await DtlsHarness(mode="echo", config=cfg).start()
    try:
        base_rss = rss_kib()
        ips = [f"127.0.1.{i}" for i in range(1, 41)]
        held: list = []  # 400 distinct source addresses: no port reused within an IP
        try:
            results = await asyncio.to_thread(lambda: [half_open(h.addr, ip, hold=held) for ip in ips * 10])
        finally:
            for sock in held:
                sock.close()
        assert results.count("flight") == 400
        assert h.server.half_open_count == 50
        assert h.server.stats.handshakes_failed["half_open_limit"] == 350
        grown = rss_kib() - base_rss
        assert grown < 50 * 120 + 2048, grown  # ~50 buffers of Mbed TLS contexts, KiB
        await good_roundtrip(h)  # during: the flood's half-opens are older
        assert h.server.half_open_count == 49  # one made room for the good client
        h.server.shutdown()
        assert h.server.half_open_count == 0
    finally:
        h.close()


async def test_handshakes_per_ip_rate_limit():
    cfg = DtlsConfig(handshakes_per_ip_per_second=5)
    h = await DtlsHarness(mode="echo", config=cfg).start()
    try:
        results = await asyncio.to_thread(
            lambda: [half_open(h.addr, "127.0.2.1", timeout=0.02) for _ in range(15)]
        )
        started = results.count("flight")
        assert 5 <= started <= 7, results  # burst of 5 (+ refills while the test ran)
        assert h.server.stats.dropped["rate_limited"] == 15 - started
        assert h.server.stats.handshakes_started == started
        await good_roundtrip(h, ip="127.0.2.2")  # another IP is not affected
        await asyncio.sleep(0.25)
        await good_roundtrip(h, ip="127.0.2.1")  # and the budget refills
    finally:
        h.close()


async def test_hello_verify_budget():
    cfg = DtlsConfig(hello_verify_per_second=100)
    h = await DtlsHarness(mode="echo", config=cfg).start()
    try:
        hello = client_hello()
        t0 = time.monotonic()
        for i in range(300):  # from 300 addresses: the per-source budget does not apply
            h.server.datagram_received(hello, (f"127.0.{3 + i // 200}.{1 + i % 200}", 10000 + i))
        refilled = (time.monotonic() - t0) * 100  # the budget refills while the loop runs (a busy CI)
        sent = h.server.stats.hello_verify_sent
        assert 100 <= sent <= 101 + refilled, (sent, refilled)
        assert h.server.stats.dropped["hello_verify_rate"] == 300 - sent
        await asyncio.sleep(0.1)
        await good_roundtrip(h)
    finally:
        h.close()


async def test_client_hello_flood_from_one_source_does_not_delay_others():
    """One source floods ClientHellos: its own budget runs out first, the global budget (which
    it would otherwise use up) still answers a real device's ClientHello at once."""
    cfg = DtlsConfig(hello_verify_per_second=100, hello_verify_per_ip_per_second=20)
    h = await DtlsHarness(mode="echo", config=cfg).start()
    try:
        hello = client_hello()
        t0 = time.monotonic()
        for i in range(1000):
            h.server.datagram_received(hello, ("127.0.3.1", 10000 + i % 64))
        refilled = (time.monotonic() - t0) * 20
        sent = h.server.stats.hello_verify_sent
        assert 20 <= sent <= 21 + refilled, (sent, refilled)
        assert h.server.stats.dropped["hello_verify_source_rate"] == 1000 - sent
        assert h.server.stats.dropped["hello_verify_rate"] == 0
        # right after the flood, another address is answered at once (the global budget is not used up)
        h.server.datagram_received(client_hello(), ("127.0.3.2", 5000))
        assert h.server.stats.hello_verify_sent == sent + 1
        assert h.server.metrics()["dtls_tracked_hello_sources"] == 2
        await good_roundtrip(h, ip="127.0.3.3")
    finally:
        h.close()


async def test_half_open_flood_cannot_evict_established_sessions():
    cfg = DtlsConfig(max_sessions=2, max_half_open=4)
    keys = {b"89880000000000000%02d" % i: b"key-%d" % i for i in range(3)}
    h = await DtlsHarness(keys=keys, mode="echo", config=cfg).start()
    try:
        clients = []
        for ident, psk in list(keys.items())[:2]:
            c = DtlsClient(h.addr, ident, psk, local_host=DEVICE_IP)
            await c.connect(timeout=5)
            clients.append(c)
        before = set(h.server.sessions)
        results = await asyncio.to_thread(lambda: [half_open(h.addr, f"127.0.4.{i}") for i in range(1, 11)])
        assert results.count("flight") == 10
        assert h.server.session_count == 2 and h.server.half_open_count == 4
        assert {s for s in h.server.sessions if s.established} == before
        for c in clients:
            await c.send(b"alive")
            assert await c.recv(timeout=2) == b"alive"
        # a peer that proves its PSK does take a place (the least recently active)
        ident, psk = list(keys.items())[2]
        c = DtlsClient(h.addr, ident, psk, local_host="127.0.0.11")
        await c.connect(timeout=5)
        assert h.server.session_count == 2 and h.server.stats.sessions_closed["evicted"] == 1
        for c in clients + [c]:
            await c.close(notify=False)
    finally:
        h.close()
