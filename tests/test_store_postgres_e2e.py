"""The gateway on PostgreSQL (store.url): CoAP uplinks from libcoap's coap-client to a real HTTPS
webhook, the inspector's view of them, and a restart of the gateway that finds its state again.
The server stopped under one in-process gateway; tests/test_workers_postgres.py does it under
two gateway processes with load (and uses :func:`post_once` from here)."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.conftest import make_config, sim, webhook
from tests.test_coap_interop import answer_line, coap_client

pytestmark = [pytest.mark.postgresql,
              pytest.mark.skipif(shutil.which("coap-client-notls") is None,
                                 reason="coap-client-notls missing: apt-get install libcoap3-bin")]


async def test_gateway_on_postgresql_delivers_coap_uplinks_to_a_webhook(tmp_path, receiver, ca_file, start_gateway):
    import pg_support

    device = sim(17)
    config = make_config(tmp_path, webhooks=[webhook(receiver, ca_file)])
    config.store.url = pg_support.fresh_database()
    gw = await start_gateway(config, [device])
    assert type(gw.store).__name__ == "PostgresStore"
    url = f"coap://127.0.0.1:{gw.coap_port}"

    for n in range(3):
        rc, out = await coap_client("-a", device.ip_address, "-m", "post", "-e", f"pg {n}", f"{url}/?t=pg/{n}")
        assert rc == 0 and "c:2.04" in answer_line(out), out
    rc, out = await coap_client("-a", "127.0.0.98", "-m", "post", "-e", "x", f"{url}/?t=abc")
    assert "c:4.01" in answer_line(out)  # an unknown source: refused, nothing stored

    events = await receiver.wait_for(3)
    assert [(e["source"], e["payload"]["topic"], e["device"]["iccid"]) for e in events] == [
        ("COAP", f"pg/{n}", device.iccid) for n in range(3)]
    await gw.committer.flush()
    stored = gw.store.messages()
    assert [(m["seq"], m["payload"], m["topic"]) for m in stored] == [
        (3 - n, f"pg {2 - n}".encode(), f"pg/{2 - n}") for n in range(3)]
    integration = gw.store.list_integrations()[0]["id"]
    for _ in range(50):  # delivered rows leave the outbox after the webhook's 200
        if gw.store.outbox_depth(integration) == 0:
            break
        await asyncio.sleep(0.1)
    assert gw.store.outbox_depth(integration) == 0
    await gw.stop()

    # a new gateway on the same database: numbers go on, nothing is delivered twice
    gw2 = await start_gateway(config)
    rc, out = await coap_client("-a", device.ip_address, "-m", "post", "-e", "after", f"{url.rsplit(':', 1)[0]}:"
                                f"{gw2.coap_port}/?t=pg/after")
    assert rc == 0 and "c:2.04" in answer_line(out), out
    events = await receiver.wait_for(4)
    assert [e["payload"]["topic"] for e in events] == ["pg/0", "pg/1", "pg/2", "pg/after"]
    await gw2.committer.flush()
    assert gw2.store.messages()[0]["seq"] == 4


async def post_once(address: str, url: str, payload: str, seconds: int = 3) -> str:
    """libcoap's log of one CON POST from ``address``, sent once and waited for ``seconds``
    (no retransmission: what it shows is the answer to that one try, if any)."""
    process = await asyncio.create_subprocess_exec(
        "coap-client-notls", "-v", "6", "-B", str(seconds), "-a", address, "-m", "post", "-e", payload, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    return (await process.communicate())[0].decode("utf-8", "replace")


async def test_gateway_stops_acknowledging_while_postgresql_is_down_and_recovers(tmp_path, receiver, ca_file,
                                                                                  start_gateway):
    """Nothing is acknowledged that is not committed; after the server is back the gateway
    acknowledges and delivers again by itself (no restart of the gateway)."""
    import pg_support

    device = sim(18)
    config = make_config(tmp_path, webhooks=[webhook(receiver, ca_file)])
    config.store.url = pg_support.fresh_database()
    gw = await start_gateway(config, [device])
    url = f"coap://127.0.0.1:{gw.coap_port}"
    rc, out = await coap_client("-a", device.ip_address, "-m", "post", "-e", "before", f"{url}/?t=pg/before")
    assert "c:2.04" in answer_line(out), out
    await receiver.wait_for(1)

    await asyncio.to_thread(pg_support.server_down)
    try:
        out = await post_once(device.ip_address, f"{url}/?t=pg/down", "while down")
        assert "c:2.04" not in out, out
    finally:
        await asyncio.to_thread(pg_support.server_up)

    for _ in range(20):  # the committer's connection is made again on its next commit
        rc, out = await coap_client("-a", device.ip_address, "-m", "post", "-e", "after", f"{url}/?t=pg/after")
        if "c:2.04" in out:
            break
    assert "c:2.04" in answer_line(out), out
    events = await receiver.wait_for(2, timeout=20)
    topics = [e["payload"]["topic"] for e in events]
    assert topics[0] == "pg/before" and "pg/after" in topics
    await gw.committer.flush()
    stored = [m["topic"] for m in gw.store.messages()]
    # whatever was acknowledged is stored; the unacknowledged "while down" may be stored (CoAP
    # retransmission after the server came back) but then exactly once
    assert stored.count("pg/before") == 1 and stored.count("pg/down") <= 1 and "pg/after" in stored
