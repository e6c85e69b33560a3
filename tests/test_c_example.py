"""The C firmware example, built with gcc against libcoap, against a gateway with the SDK
blueprint's template active: onboarding, DTLS, translated events at the webhook. Its payload
encoder is generated at build time from examples/blueprint-template.json, the same file the
gateway translates with here."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_config, sim, webhook
from bcl.firmware import generate

ROOT = Path(__file__).resolve().parents[1]
HEADER = Path("/usr/include/coap3/coap.h")
TEMPLATE = ROOT / "examples/blueprint-template.json"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or not HEADER.exists(),
                                reason="needs gcc and libcoap3-dev (apt-get install libcoap3-dev)")


@pytest.fixture(scope="module")
def binary() -> Path:
    result = subprocess.run(["make", "-C", str(ROOT / "firmware_examples/c"), f"PYTHON={sys.executable}"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # the encoder the firmware was built with is the one the template gives now
    generated = ROOT / "firmware_examples/c/build/gen"
    for name, text in generate(TEMPLATE.read_text(), "c", "blueprint").items():
        assert (generated / name).read_text() == text
    return ROOT / "firmware_examples/c/build/nce_device"


async def test_c_example_onboards_and_sends_translated_readings(binary, tmp_path, receiver, ca_file, start_gateway):
    device = sim(49)
    gw = await start_gateway(make_config(tmp_path, webhooks=[webhook(receiver, ca_file)]), [device])
    await gw.templates.create(name="blueprint", template=json.loads(TEMPLATE.read_text()), protocols=["COAP"], status="ACTIVE")
    process = await asyncio.create_subprocess_exec(
        str(binary), "-h", "127.0.0.1", "-a", device.ip_address, "-p", str(gw.coap_port), "-s", str(gw.coaps_port),
        "-n", "2", "-i", "1", "-t", "c_example", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    text = out.decode()
    assert process.returncode == 0, text
    assert f"onboarded: ICCID {device.iccid}, PSK of 16 characters" in text
    assert "reading 0: 8 bytes -> 2.04" in text and "reading 1: 8 bytes -> 2.04" in text
    events = await receiver.wait_for(2)
    assert [(e["source"], e["payload"]) for e in events] == [
        ("COAP", {"type": "JSON", "topic": "c_example", "value": {
            "data_type": "Energy_Saver", "battery_level": 99 - n, "signal_strength": 84, "software_version": "2.2.1"}})
        for n in (0, 1)]
    assert gw.coaps.dtls.metrics()["dtls_handshakes_ok"] == 1
