"""An independent CoAP client (Debian's libcoap coap-client-notls) against the gateway."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.conftest import make_config, sim, webhook

pytestmark = pytest.mark.skipif(shutil.which("coap-client-notls") is None,
                                reason="coap-client-notls missing: apt-get install libcoap3-bin")


async def coap_client(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "coap-client-notls", "-v", "6", "-B", "5", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    return process.returncode, out.decode("utf-8", "replace")


def answer_line(output: str) -> str:
    """The line where libcoap logs the response it received (type ACK)."""
    return next(line for line in output.splitlines() if "t:ACK" in line)


async def test_libcoap_client_posts_with_topic(tmp_path, receiver, ca_file, start_gateway):
    device = sim(15)
    gw = await start_gateway(make_config(tmp_path, webhooks=[webhook(receiver, ca_file)]), [device])
    url = f"coap://127.0.0.1:{gw.coap_port}"

    rc, out = await coap_client("-a", device.ip_address, "-m", "post", "-e", "libcoap says hi", f"{url}/?t=libcoap/x")
    assert rc == 0 and "c:2.04" in answer_line(out), out
    (event,) = await receiver.wait_for(1)
    assert event["source"] == "COAP" and event["payload"]["topic"] == "libcoap/x"
    assert event["device"]["iccid"] == device.iccid

    rc, out = await coap_client("-a", device.ip_address, "-m", "post", "-e", "x", f"{url}/data?t=bad%20topic")
    assert "c:4.00" in answer_line(out) and "t must be 1 to 253 characters" in answer_line(out)
    rc, out = await coap_client("-a", device.ip_address, "-m", "post", "-e", "x", f"{url}/?t=a//b")
    assert "c:4.00" in answer_line(out)
    rc, out = await coap_client("-a", "127.0.0.98", "-m", "post", "-e", "x", f"{url}/?t=abc")
    assert "c:4.01" in answer_line(out)
    rc, out = await coap_client("-a", device.ip_address, "-m", "get", f"{url}/")
    assert "c:4.05" in answer_line(out)
    rc, out = await coap_client("-a", device.ip_address, "-m", "post", "-e", "x", f"{url}/elsewhere")
    assert "c:4.04" in answer_line(out)
    rc, out = await coap_client("-N", "-a", device.ip_address, "-m", "post", "-e", "non", f"{url}/")
    assert "t:NON c:2.04" in out, out

    await receiver.wait_for(2)
    await gw.committer.flush()
    stored = gw.store.messages()
    assert sorted(m["payload"] for m in stored) == [b"libcoap says hi", b"non"]


async def test_libcoap_blockwise_post_reaches_the_store(tmp_path, start_gateway):
    device = sim(16)
    gw = await start_gateway(make_config(tmp_path), [device])
    payload = "".join(f"{i:04d}" for i in range(700))  # 2,800 bytes: needs block-wise transfer
    rc, out = await coap_client("-a", device.ip_address, "-b", "64", "-m", "post", "-e", payload,
                                f"coap://127.0.0.1:{gw.coap_port}/data?t=big")
    assert rc == 0 and "c:2.04" in out.splitlines()[-1] or "c:2.04" in out, out
    await gw.committer.flush()
    (message,) = gw.store.messages()
    assert message["payload"] == payload.encode() and message["topic"] == "big"
