"""The emulator's command line, each mode once against a gateway (the modes' own tests go deeper)."""

from __future__ import annotations

import asyncio

from firmware_examples.emulator import main as emulator
from tests.conftest import make_config, sim, webhook


async def test_emulator_modes(tmp_path, receiver, ca_file, start_gateway, capsys):
    device = sim(50)
    gw = await start_gateway(make_config(tmp_path, webhooks=[webhook(receiver, ca_file)]), [device])
    base = ["--source-ip", device.ip_address]
    assert await asyncio.to_thread(emulator, ["udp", "--port", str(gw.udp_port), *base, "--payload-hex", "0102"]) == 0
    assert await asyncio.to_thread(emulator, ["coap", "--port", str(gw.coap_port), *base, "--topic", "t1"]) == 0
    assert await asyncio.to_thread(emulator, ["coaps", "--port", str(gw.coap_port), "--coaps-port", str(gw.coaps_port),
                                              *base, "--payload", "secure"]) == 0
    out = capsys.readouterr().out
    assert "sent 2 bytes over UDP" in out and out.count("2.04") == 2 and f"onboarded: ICCID {device.iccid}" in out
    assert await asyncio.to_thread(emulator, ["coap", "--port", str(gw.coap_port), "--source-ip", "127.0.0.96"]) == 2
    assert "4.01" in capsys.readouterr().out
    events = await receiver.wait_for(3)
    assert sorted(e["source"] for e in events) == ["COAP", "COAP", "UDP"]
