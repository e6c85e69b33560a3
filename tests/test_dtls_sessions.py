"""Session life cycle with the python device client: handshake, echo, port
change (sessions follow the SIM), close_notify, epoch-0 ClientHello reset,
retransmission, timeouts, idle eviction, limits."""

from __future__ import annotations

import asyncio
import time

import pytest

from firmware_examples.dtls_client import DtlsClient
from gateway.transports.dtls import DtlsConfig
from tests.dtls_support import ICCID, PSK, DtlsHarness, client_hello, wait_for

pytestmark = pytest.mark.asyncio

DEVICE_IP = "127.0.0.10"


@pytest.fixture
async def echo():
    h = await DtlsHarness(mode="echo").start()
    yield h
    h.close()


async def connected(h: DtlsHarness, identity: bytes = ICCID, psk: bytes = PSK, ip: str = DEVICE_IP, **kw) -> DtlsClient:
    c = DtlsClient(h.addr, identity, psk, local_host=ip, **kw)
    await c.connect(timeout=5)
    return c


async def test_handshake_and_echo(echo):
    c = await connected(echo)
    for i in range(20):
        await c.send(b"msg %d" % i)
        assert await c.recv(timeout=2) == b"msg %d" % i
    (sess,) = echo.server.sessions
    assert sess.identity == ICCID and sess.addr == c.local_addr and sess.established
    assert sess.cipher == "TLS_PSK_WITH_AES_128_CCM_8"
    assert echo.psk_lookups == [(ICCID, c.local_addr)]
    m = echo.server.metrics()
    assert (m["dtls_handshakes_ok"], m["dtls_records_in"], m["dtls_records_out"]) == (1, 20, 20)
    assert m["dtls_sessions"] == 1 and m["dtls_half_open"] == 0
    await c.close()


async def test_port_change_continues_session_without_handshake(echo):
    c = await connected(echo)
    await c.send(b"before")
    assert await c.recv(timeout=2) == b"before"
    (sess,) = echo.server.sessions
    old_addr = c.local_addr
    hs_before = echo.server.stats.handshakes_ok

    new_addr = await c.rebind_port()
    assert new_addr != old_addr and new_addr[0] == DEVICE_IP
    await c.send(b"after")
    assert await c.recv(timeout=2) == b"after"  # the answer goes to the new port

    assert echo.server.stats.handshakes_ok == hs_before == 1
    assert echo.server.stats.handshakes_started == 1
    assert echo.server.stats.rebinds == 1
    assert echo.server.sessions == [sess] and sess.addr == new_addr
    assert echo.server.session_for_addr(old_addr) is None
    assert [s for s, _ in echo.received] == [sess, sess]

    # and again, twice, still the same session
    await c.rebind_port()
    await c.send(b"third")
    assert await c.recv(timeout=2) == b"third"
    assert echo.server.stats.rebinds == 2 and echo.server.stats.handshakes_ok == 1
    await c.close()


async def test_rebind_picks_the_right_session_among_several_of_one_ip(echo):
    keys = {b"8988000000000000%03d" % i: b"key-%d" % i for i in range(3)}
    echo.keys.update(keys)
    clients = [await connected(echo, ident, key) for ident, key in keys.items()]
    target = clients[0]  # the least recently active: tried last
    await target.rebind_port()
    await target.send(b"it is me")
    assert await target.recv(timeout=2) == b"it is me"
    assert echo.received[-1][0].identity == b"8988000000000000000"
    assert echo.server.stats.rebinds == 1 and echo.server.stats.handshakes_ok == 3
    for c in clients[1:]:
        await c.send(b"others fine")
        assert await c.recv(timeout=2) == b"others fine"
    for c in clients:
        await c.close()


async def test_rebind_policy_hook_can_forbid():
    h = await DtlsHarness(mode="echo", session_for_ip=lambda ip, cands: []).start()
    try:
        c = await connected(h)
        await c.rebind_port()
        await c.send(b"lost")
        with pytest.raises(TimeoutError):
            await c.recv(timeout=0.3)
        assert h.server.stats.rebinds == 0 and h.server.stats.rebind_failed == 1
        await c.close()
    finally:
        h.close()


async def test_no_rebind_across_ips(echo):
    c = await connected(echo, ip=DEVICE_IP)
    # Same DTLS keys, other source IP: that is another SIM's address; not followed.
    await c.rebind_port(host="127.0.0.11")
    await c.send(b"from elsewhere")
    with pytest.raises(TimeoutError):
        await c.recv(timeout=0.3)
    assert echo.server.stats.rebinds == 0 and echo.server.stats.dropped["no_session"] == 1
    await c.close()


async def test_close_notify_removes_session(echo):
    c = await connected(echo)
    (sess,) = echo.server.sessions
    await c.close()
    await wait_for(lambda: echo.server.session_count == 0)
    assert sess.state == "closed" and sess.close_reason == "close_notify"
    assert echo.closed == [(sess, "close_notify")]
    assert echo.server.session_for_identity(ICCID) is None


async def test_server_close_sends_close_notify(echo):
    c = await connected(echo)
    (sess,) = echo.server.sessions
    echo.server.close(sess)
    with pytest.raises(ConnectionResetError):
        await c.recv(timeout=2)
    with pytest.raises(ConnectionError):
        echo.server.send(sess, b"x")


async def test_epoch0_client_hello_resets_session(echo):
    """The device reboots and handshakes again from the same address (RFC 6347
    §4.2.8): after the cookie exchange the old session is replaced."""
    c1 = await connected(echo)
    (old,) = echo.server.sessions
    port = c1.local_addr[1]
    await c1.close(notify=False)  # crash: no close_notify

    c2 = DtlsClient(echo.addr, ICCID, PSK, local_host=DEVICE_IP, local_port=port)
    await c2.connect(timeout=5)
    await c2.send(b"after reboot")
    assert await c2.recv(timeout=2) == b"after reboot"
    (new,) = echo.server.sessions
    assert new is not old and new.addr == old.addr == (DEVICE_IP, port)
    assert old.close_reason == "peer_restart"
    s = echo.server.stats
    assert (s.resets, s.handshakes_ok, s.hello_verify_sent) == (1, 2, 2)
    await c2.close()


async def test_unverified_client_hello_does_not_kill_session(echo):
    """A (spoofable) ClientHello without cookie on an existing session's
    address gets a HelloVerifyRequest; the session is untouched."""
    c = await connected(echo)
    (sess,) = echo.server.sessions
    for _ in range(3):
        echo.server.datagram_received(client_hello(), c.local_addr)
    # and a ClientHello carrying a genuine cookie, but one issued to another address
    assert await asyncio.to_thread(cookie_hello_for_other_addr, echo.addr) is not None
    echo.server.datagram_received(_OTHER_HELLO[0], c.local_addr)
    # connect, 3 spoofed hellos, the other address's own exchange, the misplaced cookie:
    assert echo.server.stats.hello_verify_sent == 6
    assert echo.server.sessions == [sess] and sess.established
    assert echo.server.stats.resets == 0
    await c.send(b"still here")
    assert await c.recv(timeout=2) == b"still here"
    await c.close()


_OTHER_HELLO: list[bytes] = []


def cookie_hello_for_other_addr(server):
    import socket

    from tests.dtls_support import client_context, step_out

    buf = client_context().wrap_buffers(None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.99", 0))
        s.settimeout(2)
        s.sendto(step_out(buf), server)
        buf.receive_from_network(s.recvfrom(4096)[0])
        _OTHER_HELLO.append(step_out(buf))
    return _OTHER_HELLO[0]


async def test_reboot_with_the_same_client_random(monkeypatch):
    """A device whose RNG repeats its ClientHello random after a reboot: within
    the cookie lifetime such a ClientHello is taken for a late copy of the one
    that opened the session and dropped; after it, it restarts the session."""
    import gateway.transports.dtls.server as server_mod
    from gateway.transports.dtls import DtlsServer
    from tests.dtls_support import client_context, step_out

    monkeypatch.setattr(server_mod, "COOKIE_LIFETIME", 0.3)
    out: list[bytes] = []
    server = DtlsServer(psk_for_identity=lambda i, a: PSK, sendto=lambda d, a: out.append(d),
                        on_application_data=lambda s, d: None)
    addr = (DEVICE_IP, 5000)
    buf = client_context().wrap_buffers(None)
    data = step_out(buf)
    hellos = []
    while data:  # ClientHello, ClientHello+cookie, ClientKeyExchange..Finished
        hellos.append(data)
        server.datagram_received(data, addr)
        for d in out:
            buf.receive_from_network(d)
        out.clear()
        data = step_out(buf)
    (first,) = server.sessions
    assert first.established and server.stats.handshakes_ok == 1
    server.datagram_received(hellos[1], addr)  # a late copy: dropped
    assert server.stats.dropped["stale_client_hello"] == 1 and first.established
    await asyncio.sleep(0.4)
    server.datagram_received(hellos[1], addr)  # same random, cookie still valid for Mbed TLS
    assert server.stats.resets == 1 and first.close_reason == "peer_restart"
    assert server.half_open_count == 1
    server.shutdown(notify=False)


async def test_one_session_per_identity(echo):
    c1 = await connected(echo)
    (first,) = echo.server.sessions
    c2 = await connected(echo, ip="127.0.0.12")  # the same SIM credentials elsewhere
    (second,) = echo.server.sessions
    assert first.close_reason == "superseded" and second is not first
    assert echo.server.session_for_identity(ICCID) is second
    await c1.close(notify=False)
    await c2.close()


async def test_idle_eviction():
    h = await DtlsHarness(mode="echo", config=DtlsConfig(idle_timeout=0.3)).start()
    try:
        c = await connected(h)
        for _ in range(4):  # activity keeps it
            await asyncio.sleep(0.15)
            await c.send(b"ping")
            assert await c.recv(timeout=1) == b"ping"
        assert h.server.session_count == 1
        await asyncio.sleep(0.7)
        assert h.server.session_count == 0
        assert h.server.stats.sessions_closed["idle"] == 1
        await c.close(notify=False)
    finally:
        h.close()


async def test_max_sessions_evicts_least_recently_active():
    h = await DtlsHarness(mode="echo", config=DtlsConfig(max_sessions=3)).start()
    keys = {b"898800000000000%04d" % i: b"k%d" % i for i in range(5)}
    h.keys.update(keys)
    try:
        clients = [await connected(h, ident, key) for ident, key in keys.items()]
        assert h.server.session_count == 3
        assert h.server.stats.sessions_closed["evicted"] == 2
        live = sorted(s.identity for s in h.server.sessions)
        assert live == sorted(keys)[2:]
        for c in clients:
            await c.close(notify=False)
    finally:
        h.close()


async def test_server_retransmits_lost_flight():
    """The server's ServerHello flight is lost once: the server's own timer
    resends it (the client would wait 5 s before retransmitting)."""
    h = await DtlsHarness(mode="echo", config=DtlsConfig(retransmit_min=0.2, retransmit_max=1.0)).start()
    try:
        sent = []
        real = h.transport.sendto

        def lossy(data, addr):
            sent.append(data)
            if len(sent) == 2:  # 1: HelloVerifyRequest, 2: ServerHello..ServerHelloDone
                return
            real(data, addr)

        h.server._sendto = lossy
        t0 = time.monotonic()
        c = DtlsClient(h.addr, ICCID, PSK, retransmit_min=5.0, retransmit_max=10.0)
        await c.connect(timeout=4)
        elapsed = time.monotonic() - t0
        assert 0.15 < elapsed < 1.5
        assert h.server.stats.retransmissions == 1 and h.server.stats.handshakes_ok == 1
        await c.close()
    finally:
        h.close()


async def test_client_retransmits_and_server_resends_final_flight():
    """The server's last flight (ChangeCipherSpec, Finished) is lost: the
    client retransmits its flight and the established server answers again."""
    h = await DtlsHarness(mode="echo").start()
    try:
        sent = []
        real = h.transport.sendto

        def lossy(data, addr):
            sent.append(data)
            if len(sent) == 3:  # HVR, server hello flight, *final flight*
                return
            real(data, addr)

        h.server._sendto = lossy
        c = DtlsClient(h.addr, ICCID, PSK, retransmit_min=0.2)
        await c.connect(timeout=4)
        assert len(sent) >= 4 and sent[3][0] == 20  # resent: ChangeCipherSpec, Finished
        await c.send(b"ok")
        assert await c.recv(timeout=2) == b"ok"
        assert h.server.stats.handshakes_ok == 1
        await c.close()
    finally:
        h.close()


async def test_client_retransmission_makes_server_resend_its_flight():
    """The server's flight is lost and its own timer is slow: the client's
    retransmitted ClientHello (same random, with cookie) reaches the half-open
    session, and Mbed TLS answers it with the flight again."""
    h = await DtlsHarness(mode="echo", config=DtlsConfig(retransmit_min=5.0, retransmit_max=10.0)).start()
    try:
        sent = []
        real = h.transport.sendto

        def lossy(data, addr):
            sent.append(data)
            if len(sent) == 2:
                return
            real(data, addr)

        h.server._sendto = lossy
        c = DtlsClient(h.addr, ICCID, PSK, retransmit_min=0.2)
        t0 = time.monotonic()
        await c.connect(timeout=4)
        assert time.monotonic() - t0 < 2.0
        assert h.server.stats.handshakes_started == 1 and h.server.stats.handshakes_ok == 1
        assert h.server.stats.retransmissions == 0  # not the server's timer
        await c.close()
    finally:
        h.close()


async def test_callback_errors_do_not_break_the_engine(echo):
    def broken(session, data):
        raise RuntimeError("bug in the CoAP layer")

    c = await connected(echo)
    echo.on_data = broken
    await c.send(b"boom")
    await wait_for(lambda: echo.server.stats.dropped["callback_error"] == 1)
    echo.on_data = None
    await c.send(b"fine")
    assert await c.recv(timeout=2) == b"fine"
    await c.close()


async def test_half_open_handshake_times_out():
    cfg = DtlsConfig(retransmit_min=0.1, retransmit_max=0.2, handshake_timeout=0.5)
    h = await DtlsHarness(mode="echo", config=cfg).start()
    try:
        from tests.dtls_support import half_open

        assert await asyncio.to_thread(half_open, h.addr, DEVICE_IP) == "flight"
        assert h.server.half_open_count == 1
        await wait_for(lambda: h.server.half_open_count == 0, timeout=2)
        assert h.server.stats.handshakes_failed["timeout"] == 1
        assert h.server.stats.retransmissions >= 1
        assert h.closed[0][1] == "handshake_failed_timeout" and h.closed[0][0].established_at is None
    finally:
        h.close()


async def test_shutdown_closes_everything(echo):
    c = await connected(echo)
    echo.server.shutdown()
    with pytest.raises(ConnectionResetError):
        await c.recv(timeout=2)
    assert echo.server.session_count == 0
    echo.server.datagram_received(client_hello(), ("127.0.0.1", 1))  # ignored
    assert echo.server.stats.hello_verify_sent == 1
