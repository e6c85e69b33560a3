"""DTLS you can see and sessions that end cleanly: the engine's counters on /metrics, failed
handshakes logged with reason, address and identity under a log budget, close_notify to a
superseded session, and a SIM's session at its own address not superseded from elsewhere."""

from __future__ import annotations

import asyncio
import logging

import pytest

from firmware_examples.device import CoapsDevice, Onboarding
from firmware_examples.dtls_client import DtlsClient
from gateway.transports.dtls import DtlsConfig
from tests.conftest import make_config, sim
from tests.dtls_support import ICCID, PSK, DtlsHarness

pytestmark = pytest.mark.asyncio


async def test_superseded_session_gets_close_notify():
    h = await DtlsHarness(mode="echo").start()
    try:
        old = DtlsClient(h.addr, ICCID, PSK, local_host="127.0.0.10")
        await old.connect(timeout=5)
        new = DtlsClient(h.addr, ICCID, PSK, local_host="127.0.0.11")
        await new.connect(timeout=5)
        # the old peer learns at once that its session is gone (instead of hanging until it times out)
        with pytest.raises(ConnectionResetError):
            await old.recv(timeout=2)
        assert old.closed_by_peer
        assert h.server.stats.sessions_closed["superseded"] == 1
        await new.send(b"still here")
        assert await new.recv(timeout=2) == b"still here"
        await old.close(notify=False)
        await new.close()
    finally:
        h.close()


async def test_failed_handshakes_are_logged_with_a_budget(caplog):
    h = await DtlsHarness(mode="echo", config=DtlsConfig(failure_logs_per_second=1.0,
                                                         hello_verify_per_ip_per_second=1e6,
                                                         handshakes_per_ip_per_second=1e6)).start()
    caplog.set_level(logging.WARNING, logger="gateway.dtls")
    try:
        for _ in range(14):  # wrong key, 14 times: the burst (10) is logged, the rest counted
            c = DtlsClient(h.addr, ICCID, b"not-the-key", local_host="127.0.0.10")
            with pytest.raises(ConnectionError):
                await c.connect(timeout=5)
            await c.close(notify=False)
        assert h.server.stats.handshakes_failed["bad_key"] == 14
        lines = [r for r in caplog.records if getattr(r, "event", None) == "dtls_handshake_failed"]
        assert len(lines) == 10
        first = lines[0]
        assert (first.reason, first.ip, first.identity) == ("bad_key", "127.0.0.10", ICCID.decode())
        assert first.getMessage().startswith("DTLS handshake failed (bad_key) from 127.0.0.10:")
        await asyncio.sleep(1.05)  # the budget refills: the next line says how many were left out
        c = DtlsClient(h.addr, ICCID, b"not-the-key", local_host="127.0.0.10")
        with pytest.raises(ConnectionError):
            await c.connect(timeout=5)
        await c.close(notify=False)
        lines = [r for r in caplog.records if getattr(r, "event", None) == "dtls_handshake_failed"]
        assert len(lines) == 11 and lines[-1].suppressed == 4
    finally:
        h.close()


async def test_dtls_metrics_on_the_gateway(tmp_path, start_gateway, caplog):
    device, disabled = sim(41), sim(40, "Disabled")
    gw = await start_gateway(make_config(tmp_path), [device, disabled])
    await gw.psks.set(disabled.iccid, "COAP", b"disabled-key-40")
    await gw.psks.set(device.iccid, "COAP", b"metrics-key-41")
    server = ("127.0.0.1", gw.coaps_port)
    async with CoapsDevice(server, Onboarding(device.iccid, b"metrics-key-41"), device.ip_address) as dev:
        assert await dev.post(b"hello") == "2.04"
        bad = CoapsDevice(server, Onboarding(device.iccid, b"wrong-key-41"), device.ip_address)
        with pytest.raises((ConnectionError, TimeoutError)):
            await bad.connect(timeout=3)
        await bad.close()
        stranger = CoapsDevice(server, Onboarding("8988280666000000077", b"x" * 16), "127.0.0.99")
        with pytest.raises((ConnectionError, TimeoutError)):
            await stranger.connect(timeout=3)
        await stranger.close()
        off = CoapsDevice(server, Onboarding(disabled.iccid, b"disabled-key-40"), disabled.ip_address)
        with pytest.raises((ConnectionError, TimeoutError)):
            await off.connect(timeout=3)
        await off.close()
        text = gw.metrics.render().decode()
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if line.startswith("nce_dtls_")}
    assert values["nce_dtls_sessions"] == 1
    assert values["nce_dtls_half_open"] == 0
    assert values["nce_dtls_handshakes_started_total"] == 4
    assert values["nce_dtls_handshakes_completed_total"] == 1
    assert values['nce_dtls_handshakes_failed_total{reason="bad_key"}'] == 1
    assert values['nce_dtls_handshakes_failed_total{reason="unknown_sim"}'] == 1
    assert values['nce_dtls_handshakes_failed_total{reason="disabled_sim"}'] == 1
    assert values["nce_dtls_cookie_exchanges_total"] == 4
    assert values['nce_dtls_sessions_closed_total{reason="handshake_failed_bad_key"}'] == 1
    failures = [(r.reason, r.ip, r.identity) for r in caplog.records
                if getattr(r, "event", None) == "dtls_handshake_failed"]
    assert failures == [("bad_key", device.ip_address, device.iccid),
                        ("unknown_sim", "127.0.0.99", "8988280666000000077"),
                        ("disabled_sim", disabled.ip_address, disabled.iccid)]


async def test_only_the_sims_own_address_supersedes_its_session(tmp_path, start_gateway):
    """Another address that holds SIM B's key opens a session beside B's, it does not cut B off;
    a new handshake from B's own address still replaces B's session."""
    device = sim(42)
    gw = await start_gateway(make_config(tmp_path), [device])
    await gw.psks.set(device.iccid, "COAP", b"shared-key-42")
    server = ("127.0.0.1", gw.coaps_port)
    own = DtlsClient(server, device.iccid.encode(), b"shared-key-42", local_host=device.ip_address)
    await own.connect(timeout=5)
    (b_session,) = gw.coaps.dtls.sessions
    elsewhere = DtlsClient(server, device.iccid.encode(), b"shared-key-42", local_host="127.0.0.98")
    await elsewhere.connect(timeout=5)
    assert b_session.established and gw.coaps.dtls.session_for_identity(device.iccid.encode()) is b_session
    assert gw.coaps.dtls.stats.sessions_closed["superseded"] == 0
    assert not own.closed_by_peer
    # the SIM's own address (a rebooted device) does supersede, with close_notify
    again = DtlsClient(server, device.iccid.encode(), b"shared-key-42", local_host=device.ip_address)
    await again.connect(timeout=5)
    assert b_session.close_reason == "superseded"
    with pytest.raises(ConnectionResetError):
        await own.recv(timeout=2)
    for c in (own, elsewhere, again):
        await c.close(notify=False)
