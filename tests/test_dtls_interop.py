"""Independent DTLS clients against the engine: libcoap's coap-client (OpenSSL
and GnuTLS builds), OpenSSL's s_client per cipher suite, our python client."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from aiocoap import Message

from firmware_examples.dtls_client import DtlsClient
from gateway.transports.dtls import PSK_SUITES, DtlsConfig
from tests.dtls_support import ICCID, PSK, DtlsHarness

pytestmark = pytest.mark.asyncio

COAP_CLIENTS = ["coap-client-openssl", "coap-client-gnutls"]


async def run(*argv: str, stdin: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    return proc.returncode, out, err


@pytest.fixture
async def harness():
    established = []
    h = await DtlsHarness(on_session_established=established.append).start()
    h.established = established
    yield h
    h.close()


def coap_client(tool: str, port: int, user: str, key: str, *extra: str) -> list[str]:
    return [tool, "-B", "5", *extra, "-m", "post", "-e", "data", "-u", user, "-k", key,
            f"coaps://127.0.0.1:{port}/?t=x"]


@pytest.mark.parametrize("tool", COAP_CLIENTS)
async def test_coap_client_post_gets_204(harness, tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed")
    rc, out, err = await run(*coap_client(tool, harness.port, ICCID.decode(), PSK.decode(), "-v", "7"))
    assert rc == 0, err
    lines = out.decode().splitlines()
    # libcoap 4.3.1 prints the PDUs it sends and receives at -v 7:
    assert any(line.startswith("v:1 t:CON c:POST") and line.endswith(":: 'data'") for line in lines), out
    assert any(line.startswith("v:1 t:ACK c:2.04 ") for line in lines), out
    assert "cannot send CoAP pdu" not in out.decode()
    # And quietly (default verbosity) a 2.04 without payload prints nothing at all.
    rc, out, err = await run(*coap_client(tool, harness.port, ICCID.decode(), PSK.decode()))
    assert (rc, out, err) == (0, b"", b"")

    requests = [Message.decode(d) for _, d in harness.received]
    assert [(str(r.code), r.payload, r.opt.uri_query) for r in requests] == [("POST", b"data", ("t=x",))] * 2
    assert all(s.identity == ICCID for s, _ in harness.received)
    assert all(s.cipher in PSK_SUITES for s in harness.established)
    assert harness.psk_lookups[0][0] == ICCID and harness.psk_lookups[0][1][0] == "127.0.0.1"
    m = harness.server.metrics()
    assert m["dtls_handshakes_ok"] == 2 and m["dtls_hello_verify_sent"] == 2
    await asyncio.sleep(0.05)  # the clients' close_notify
    assert harness.server.session_count == 0
    assert harness.server.stats.sessions_closed["close_notify"] == 2


@pytest.mark.parametrize("tool", COAP_CLIENTS)
async def test_coap_client_wrong_key_fails(harness, tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed")
    rc, out, err = await run(*coap_client(tool, harness.port, ICCID.decode(), "not-the-key"))
    text = out.decode()
    assert "cannot send CoAP pdu" in text  # libcoap exits 0 even then
    assert ("bad record mac" in text) or ("Bad record MAC" in text), text
    assert harness.received == []
    assert harness.server.stats.handshakes_failed == {"bad_key": 1}
    assert harness.server.session_count == 0 and harness.server.half_open_count == 0


@pytest.mark.parametrize("tool", COAP_CLIENTS)
async def test_coap_client_unknown_identity_fails(harness, tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed")
    rc, out, err = await run(*coap_client(tool, harness.port, "8988000000000000000", PSK.decode()))
    text = out.decode()
    assert "cannot send CoAP pdu" in text
    assert ("unknown psk identity" in text) or ("PSK username is missing or not known" in text), text
    assert harness.received == []
    assert harness.server.stats.handshakes_failed == {"unknown_identity": 1}
    assert harness.psk_lookups == [(b"8988000000000000000", harness.psk_lookups[0][1])]


async def test_disabled_sim_fails(harness):
    """psk_for_identity returning None (a disabled SIM) fails like an unknown identity."""
    harness.keys[ICCID] = None
    c = DtlsClient(harness.addr, ICCID, PSK, retransmit_min=0.2)
    with pytest.raises(ConnectionError):
        await c.connect(timeout=5)
    await c.close()
    assert harness.server.stats.handshakes_failed == {"unknown_identity": 1}


OPENSSL_SUITES = {
    "TLS_PSK_WITH_AES_128_CCM_8": "PSK-AES128-CCM8",
    "TLS_PSK_WITH_AES_128_CCM": "PSK-AES128-CCM",
    "TLS_PSK_WITH_AES_128_GCM_SHA256": "PSK-AES128-GCM-SHA256",
    "TLS_PSK_WITH_AES_128_CBC_SHA256": "PSK-AES128-CBC-SHA256",
}


def s_client(port: int, cipher: str, version: str = "-dtls1_2") -> list[str]:
    return ["openssl", "s_client", version, "-connect", f"127.0.0.1:{port}", "-brief",
            "-psk_identity", ICCID.decode(), "-psk", PSK.hex(), "-cipher", cipher]


@pytest.mark.parametrize("suite", list(OPENSSL_SUITES))
async def test_openssl_s_client_each_suite(harness, suite):
    harness.mode = "echo"
    rc, out, err = await run(*s_client(harness.port, OPENSSL_SUITES[suite]), stdin=b"ping\n", timeout=10)
    assert [d for _, d in harness.received] == [b"ping\n"], (rc, err)
    assert [s.cipher for s in harness.established] == [suite]


async def test_openssl_s_client_unsupported_suites_fail(harness):
    for cipher in ("PSK-AES256-GCM-SHA384", "ECDHE-PSK-CHACHA20-POLY1305", "DHE-PSK-AES128-CCM"):
        rc, out, err = await run(*s_client(harness.port, cipher), stdin=b"ping\n", timeout=10)
        assert rc != 0 and b"handshake failure" in err, (cipher, err)
    assert harness.received == [] and harness.established == []
    assert harness.server.stats.handshakes_failed["no_shared_cipher"] == 3


async def test_openssl_s_client_dtls10_refused(harness):
    rc, out, err = await run(*s_client(harness.port, "PSK-AES128-CBC-SHA", "-dtls1"), stdin=b"x\n", timeout=10)
    assert rc != 0
    assert harness.received == [] and harness.established == []


@pytest.mark.parametrize("suite", list(PSK_SUITES))
async def test_python_client_each_suite(suite):
    h = await DtlsHarness(mode="echo").start()
    try:
        c = DtlsClient(h.addr, ICCID, PSK, local_host="127.0.0.10", ciphers=[suite])
        await c.connect(timeout=5)
        await c.send(b"x" * 1000)
        assert await c.recv(timeout=2) == b"x" * 1000
        (sess,) = h.server.sessions
        assert sess.cipher == suite and sess.identity == ICCID
        await c.close()
    finally:
        h.close()


async def test_server_restricted_to_one_suite():
    cfg = DtlsConfig(ciphers=("TLS_PSK_WITH_AES_128_GCM_SHA256",))
    h = await DtlsHarness(mode="echo", config=cfg).start()
    try:
        c = DtlsClient(h.addr, ICCID, PSK, ciphers=["TLS_PSK_WITH_AES_128_CCM_8"], retransmit_min=0.2)
        with pytest.raises(ConnectionError):
            await c.connect(timeout=3)
        await c.close()
        c = DtlsClient(h.addr, ICCID, PSK)
        await c.connect(timeout=3)
        assert h.server.sessions[0].cipher == "TLS_PSK_WITH_AES_128_GCM_SHA256"
        await c.close()
    finally:
        h.close()


async def test_psk_longer_than_32_bytes_fails_cleanly(harness):
    """Mbed TLS 2.28 takes PSKs of at most 32 bytes: a longer key configured
    for a SIM fails that handshake with an alert (not a hang) and a reason."""
    long_psk = b"0123456789abcdef0123456789abcdef!"  # 33 bytes
    harness.keys[ICCID] = long_psk
    rc, out, err = await run("openssl", "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{harness.port}", "-brief",
                             "-psk_identity", ICCID.decode(), "-psk", long_psk.hex(), "-cipher", "PSK-AES128-CCM8",
                             stdin=b"ping\n", timeout=10)
    assert rc != 0 and b"unknown psk identity" in err, err
    assert harness.server.stats.handshakes_failed == {"psk_too_long": 1}
