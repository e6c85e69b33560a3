"""CoAP over DTLS through the gateway: independent clients, onboarding, port change, policy."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from firmware_examples.device import CoapsDevice, Onboarding, os_auth
from tests.conftest import make_config, sim, webhook


async def libcoap(client: str, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(client, "-v", "6", "-B", "6", *args,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    return out.decode("utf-8", "replace")


@pytest.mark.parametrize("client", ["coap-client-openssl", "coap-client-gnutls"])
async def test_libcoap_dtls_clients(client, tmp_path, receiver, ca_file, start_gateway):
    if shutil.which(client) is None:
        pytest.skip(f"{client} missing: apt-get install libcoap3-bin")
    device, other = sim(40), sim(41)
    gw = await start_gateway(make_config(tmp_path, webhooks=[webhook(receiver, ca_file)]), [device, other])
    await gw.psks.set(device.iccid, "COAP", b"secret-key-of-40")
    await gw.psks.set(other.iccid, "COAP", b"secret-key-of-41")
    url = f"coaps://127.0.0.1:{gw.coaps_port}"

    out = await libcoap(client, "-a", device.ip_address, "-u", device.iccid, "-k", "secret-key-of-40",
                        "-m", "post", "-e", "over dtls", f"{url}/?t=secure")
    assert "c:2.04" in out, out
    (event,) = await receiver.wait_for(1)
    assert (event["source"], event["device"]["iccid"], event["payload"]["topic"]) == ("COAP", device.iccid, "secure")

    out = await libcoap(client, "-a", device.ip_address, "-u", device.iccid, "-k", "wrong-key",
                        "-m", "post", "-e", "x", f"{url}/")
    assert "c:2.04" not in out
    out = await libcoap(client, "-a", device.ip_address, "-u", "8988280666000009999", "-k", "secret-key-of-40",
                        "-m", "post", "-e", "x", f"{url}/")
    assert "c:2.04" not in out
    # another SIM's identity from this SIM's IP is refused too
    out = await libcoap(client, "-a", device.ip_address, "-u", other.iccid, "-k", "secret-key-of-41",
                        "-m", "post", "-e", "x", f"{url}/")
    assert "c:2.04" not in out
    await asyncio.sleep(0.3)
    await gw.committer.flush()
    assert [m["payload"] for m in gw.store.messages()] == [b"over dtls"]
    assert len(receiver.events) == 1


async def test_onboarding_then_dtls_and_a_port_change(tmp_path, receiver, ca_file, start_gateway):
    device = sim(42)
    gw = await start_gateway(make_config(tmp_path, webhooks=[webhook(receiver, ca_file)]), [device])
    onboarding = await asyncio.to_thread(os_auth, ("127.0.0.1", gw.coap_port), device.ip_address)
    assert onboarding.iccid == device.iccid and gw.psks.key(device.iccid, "COAP") == onboarding.psk
    async with CoapsDevice(("127.0.0.1", gw.coaps_port), onboarding, device.ip_address) as dev:
        assert await dev.post(b"first", topic="a") == "2.04"
        handshakes = gw.coaps.dtls.metrics()["dtls_handshakes_ok"]
        old_port = dev.dtls.local_addr[1]
        await dev.rebind_port()
        assert dev.dtls.local_addr[1] != old_port
        assert await dev.post(b"after rebind", confirmable=False) == "2.04"
        metrics = gw.coaps.dtls.metrics()
        assert metrics["dtls_handshakes_ok"] == handshakes and metrics["dtls_rebinds"] == 1
    events = await receiver.wait_for(2)
    assert sorted(e["payload"]["value"] for e in events) == sorted(["Zmlyc3Q=", "YWZ0ZXIgcmViaW5k"])
    assert all(e["source"] == "COAP" for e in events)


async def test_disabling_a_sim_ends_its_session(tmp_path, start_gateway):
    device = sim(43)
    gw = await start_gateway(make_config(tmp_path), [device])
    await gw.psks.set(device.iccid, "COAP", b"k43")
    dev = CoapsDevice(("127.0.0.1", gw.coaps_port), Onboarding(device.iccid, b"k43"), device.ip_address)
    await dev.connect()
    assert await dev.post(b"ok") == "2.04"
    assert gw.coaps.dtls.session_count == 1
    gw.store.update_sim(device.iccid, status="Disabled")
    await gw.read(gw.registry.reload)
    for _ in range(50):
        if gw.coaps.dtls.session_count == 0:
            break
        await asyncio.sleep(0.02)
    assert gw.coaps.dtls.session_count == 0
    await dev.close()


async def test_bad_dtls_input_leaves_the_gateway_serving(tmp_path, start_gateway):
    """Random bytes, truncated records, a ClientHello flood from many ports, replayed records."""
    import random
    import socket

    device = sim(44)
    gw = await start_gateway(make_config(tmp_path), [device])
    await gw.psks.set(device.iccid, "COAP", b"k44")
    dev = CoapsDevice(("127.0.0.1", gw.coaps_port), Onboarding(device.iccid, b"k44"), device.ip_address)
    await dev.connect()
    assert await dev.post(b"before") == "2.04"

    def hostile() -> None:
        rng = random.Random(7)
        hello = bytes.fromhex("16feff0000000000000000") + b"\x00\x40" + bytes(64)  # epoch-0 handshake record
        socks = []
        for i in range(300):  # a ClientHello flood from many ports and addresses
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((f"127.0.3.{1 + i % 200}", 0))
            socks.append(s)
            s.sendto(hello, ("127.0.0.1", gw.coaps_port))
        for s in socks:
            for _ in range(3):
                s.sendto(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))), ("127.0.0.1", gw.coaps_port))
                s.sendto(bytes.fromhex("17fefd0001000000000005"), ("127.0.0.1", gw.coaps_port))  # truncated record
            s.close()

    await asyncio.to_thread(hostile)
    assert await dev.post(b"after") == "2.04"
    assert gw.coaps.dtls.session_count == 1 and gw.coaps.dtls.half_open_count == 0
    await dev.close()
    await gw.committer.flush()
    assert [m["payload"] for m in gw.store.messages()] == [b"after", b"before"]
