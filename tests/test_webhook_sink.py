"""The walkthrough's webhook sink keeps its CA across restarts, so a running gateway that
trusts data/sink-ca.pem still delivers after "stop the sink for a while" (issue 17)."""

from __future__ import annotations

import os
import ssl
import stat

import aiohttp

from firmware_examples.webhook_sink import Sink, kept_ca


async def test_a_restarted_sink_is_trusted_with_the_first_ca_file(tmp_path):
    ca_file = tmp_path / "data" / "sink-ca.pem"
    first = kept_ca(ca_file)
    trusted = ssl.create_default_context(cafile=str(ca_file))  # what the gateway loaded at its start
    assert stat.S_IMODE(os.stat(tmp_path / "data" / "sink-ca-key.pem").st_mode) == 0o600
    again = kept_ca(ca_file)
    assert again.cert_pem.bytes() == first.cert_pem.bytes()
    sink = Sink(ca=again)
    await sink.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"https://localhost:{sink.port}/events", json={"type": "TEST_MESSAGE"},
                                    ssl=trusted) as response:
                assert response.status == 200
        assert sink.counts == {"TEST_MESSAGE": 1}
    finally:
        await sink.stop()
