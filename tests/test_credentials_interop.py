"""One credential per SIM, with clients we did not write (issue 12): the key `GET /bootstrap`
hands out (16 characters) loads into libcoap's OpenSSL and GnuTLS clients and OpenSSL's
s_client and completes their handshakes; an LwM2M bootstrap over DTLS does not change it; an
explicit rotation keeps the old key valid for the grace period and hands out the new one."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from firmware_examples.lwm2m_client import LwM2MClient
from tests.conftest import make_config, sim
from tests.test_dtls_interop import run
from tests.test_lwm2m_server_dtls import bootstrap_and_register

DEVICE = sim(39)
ROOT = Path(__file__).resolve().parent.parent
TOOLS = ["coap-client-openssl", "coap-client-gnutls"]


async def onboard(gw) -> str:
    """``GET /bootstrap`` with libcoap's plain client from the SIM's address: the key."""
    if not shutil.which("coap-client-notls"):
        pytest.skip("coap-client-notls not installed (apt-get install libcoap3-bin)")
    rc, out, err = await run("coap-client-notls", "-B", "5", "-a", DEVICE.ip_address, "-m", "get",
                             f"coap://127.0.0.1:{gw.coap_port}/bootstrap")
    assert rc == 0, err
    iccid, key = out.decode().strip().split(",")  # the 1NCE SDK's parsing: ICCID,PSK[,url]
    assert iccid == DEVICE.iccid
    return key


async def post(gw, tool: str, key: str, payload: str) -> bool:
    """One CoAPs POST with a libcoap client; True when the gateway answered 2.04."""
    rc, out, err = await run(tool, "-B", "5", "-v", "7", "-a", DEVICE.ip_address, "-m", "post", "-e", payload,
                             "-u", DEVICE.iccid, "-k", key, f"coaps://127.0.0.1:{gw.coaps_port}/?t=creds")
    text = out.decode()
    return any(line.startswith("v:1 t:ACK c:2.04 ") for line in text.splitlines())


@pytest.mark.parametrize("tool", TOOLS)
async def test_onboarding_key_works_with_libcoap_and_survives_lwm2m_bootstrap(tmp_path, start_gateway, tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed (apt-get install libcoap3-bin)")
    gw = await start_gateway(make_config(tmp_path), [DEVICE])
    key = await onboard(gw)
    assert len(key) == 16  # psk.generated_length: tinydtls' limit, 95 bits
    assert await post(gw, tool, key, "first")
    # an LwM2M client bootstraps over DTLS with the same credential, twice: the key stays
    for _ in range(2):
        model = LwM2MClient(DEVICE.iccid, DEVICE.ip_address)
        model.values.update({"/0/0/0": f"coaps://127.0.0.1:{gw.coaps_port}", "/0/0/1": True, "/0/0/2": 0,
                             "/0/0/3": DEVICE.iccid.encode(), "/0/0/5": key.encode()})
        await bootstrap_and_register(gw, DEVICE, model, key.encode())
        assert model.values["/0/1/5"] == key.encode()
    assert await onboard(gw) == key  # GET /bootstrap hands out the key the port accepts
    assert await post(gw, tool, key, "after bootstrap")
    await gw.committer.flush()
    assert [m["payload"] for m in gw.store.messages(DEVICE.iccid)] == [b"after bootstrap", b"first"]  # newest first


@pytest.mark.parametrize("tool", TOOLS)
async def test_rotation_with_grace_through_the_cli(tmp_path, start_gateway, tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed (apt-get install libcoap3-bin)")
    gw = await start_gateway(make_config(tmp_path), [DEVICE])
    old = await onboard(gw)
    assert await post(gw, tool, old, "before")
    toml = tmp_path / "g.toml"
    toml.write_text(f'[store]\npath = "{gw.config.store.path}"\n')
    rc, out, err = await run(sys.executable, "-m", "gateway", "psk", "rotate", DEVICE.iccid, "--grace-seconds",
                             "3600", "--config", str(toml), timeout=30)
    assert rc == 0 and b"the previous key is accepted until" in out, err
    for _ in range(100):  # the running gateway follows the store
        if gw.psks.dtls_key(DEVICE.iccid) != old.encode():
            break
        await asyncio.sleep(0.05)
    # the device still holding the old key: refused once (the current key is offered first), then in
    assert not await post(gw, tool, old, "old 1")
    assert await post(gw, tool, old, "old 2")
    new = await onboard(gw)
    assert new != old and len(new) == 16
    assert await post(gw, tool, new, "new")  # handed out: offered first
    # no grace: the previous key is refused at once
    rc, out, err = await run(sys.executable, "-m", "gateway", "psk", "rotate", DEVICE.iccid, "--grace-seconds", "0",
                             "--config", str(toml), timeout=30)
    assert rc == 0 and b"the previous key is refused now" in out
    for _ in range(100):
        if gw.psks.dtls_key(DEVICE.iccid) != new.encode():
            break
        await asyncio.sleep(0.05)
    assert not await post(gw, tool, new, "x") and not await post(gw, tool, new, "y")
    await gw.committer.flush()
    assert [m["payload"] for m in gw.store.messages(DEVICE.iccid)] == [b"new", b"old 2", b"before"]  # newest first


async def test_openssl_s_client_with_a_generated_key(tmp_path, start_gateway):
    gw = await start_gateway(make_config(tmp_path), [DEVICE])
    key = (await gw.psks.for_bootstrap(DEVICE.iccid)).decode()
    assert len(key) == 16
    rc, out, err = await run("openssl", "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{gw.coaps_port}", "-brief",
                             "-psk_identity", DEVICE.iccid, "-psk", key.encode().hex(), "-cipher", "PSK-AES128-CCM8",
                             stdin=b"", timeout=10)
    assert b"CONNECTION ESTABLISHED" in err and b"Ciphersuite: PSK-AES128-CCM8" in err, err
    assert gw.coaps.dtls.stats.handshakes_ok == 1
