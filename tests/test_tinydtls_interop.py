"""tinydtls, the DTLS library of Wakaama's LwM2M client and of many constrained devices, against
the gateway (issue 12): it holds pre-shared keys of at most 16 bytes, so the generated keys must
fit. Driven through DTLSSocket's binding (optional extra ``interop``; skipped without it)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code

from firmware_examples.coap_client import build_request
from tests.conftest import make_config, sim

dtls = pytest.importorskip("DTLSSocket.dtls", reason="DTLSSocket (tinydtls) not installed: pip install -e '.[interop]'")

DEVICE = sim(38)
CONNECTED = 0x1DE  # DTLS_EVENT_CONNECTED


def tinydtls_post(port: int, source_ip: str, identity: bytes, key: bytes, payload: bytes,
                  timeout: float = 8.0) -> tuple[list[int], bytes | None]:
    """Handshake with tinydtls from ``source_ip`` and POST ``payload`` as CoAP; (events, answer)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind(("::ffff:" + source_ip, 0))
    sock.settimeout(0.2)
    events: list[int] = []
    received: list[bytes] = []
    d = dtls.DTLS(read=lambda addr, data: received.append(bytes(data)) or len(data),
                  write=lambda addr, data: sock.sendto(data, addr),
                  event=lambda level, code: events.append(code), pskId=identity, pskStore={identity: key})
    dtls.setLogLevel(dtls.DTLS_LOG_EMERG)
    try:
        session = d.connect("::ffff:127.0.0.1", port, 0, 0)
        deadline = time.monotonic() + timeout
        sent = False
        while time.monotonic() < deadline and not received:
            if CONNECTED in events and not sent:
                request = build_request(Code.POST, "/data", payload, mid=1, token=b"td")
                d.write(session, request.encode())
                sent = True
            try:
                data, addr = sock.recvfrom(4096)
            except socket.timeout:
                continue
            d.handleMessageAddr(addr[0], addr[1], data)
        return events, received[0] if received else None
    finally:
        sock.close()


async def test_tinydtls_loads_the_generated_key(tmp_path, start_gateway):
    gw = await start_gateway(make_config(tmp_path), [DEVICE])
    key = await gw.psks.for_bootstrap(DEVICE.iccid)  # what GET /bootstrap hands out
    assert len(key) == 16
    events, answer = await asyncio.to_thread(tinydtls_post, gw.coaps_port, DEVICE.ip_address,
                                             DEVICE.iccid.encode(), key, b"from tinydtls")
    assert CONNECTED in events, [hex(e) for e in events]
    reply = Message.decode(answer)
    assert reply.code == Code.CHANGED and reply.token == b"td"
    await gw.committer.flush()
    assert [m["payload"] for m in gw.store.messages(DEVICE.iccid)] == [b"from tinydtls"]


async def test_tinydtls_cannot_use_a_32_byte_key(tmp_path, start_gateway):
    """Why 16: the keys of the old default length (32) never complete a tinydtls handshake."""
    gw = await start_gateway(make_config(tmp_path), [DEVICE])
    key = b"0123456789abcdef0123456789abcdef"
    await gw.psks.set(DEVICE.iccid, "COAP", key)
    events, answer = await asyncio.to_thread(tinydtls_post, gw.coaps_port, DEVICE.ip_address,
                                             DEVICE.iccid.encode(), key, b"x", 3.0)
    assert CONNECTED not in events and answer is None
    assert gw.coaps.dtls.stats.handshakes_ok == 0
