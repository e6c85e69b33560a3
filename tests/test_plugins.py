"""Partner plugins (docs/plugins.md): the example codec plugin (examples/plugins/kv_codec,
installed with pip by .ci/run) found through its entry point and decoding real UDP datagrams; an
integration plugin taking events; a broken plugin FAILED; the plugin routes."""

from __future__ import annotations

import asyncio
import json
import time
from importlib.metadata import EntryPoint, entry_points

import pytest

from firmware_examples.emulator import send_udp
from gateway import plugins
from tests.api_support import Api, start_api
from tests.conftest import make_config, sim

DEVICE = sim(22)
KV = [ep for ep in entry_points(group=plugins.GROUP) if ep.name == "kv-codec"]
pytestmark = pytest.mark.skipif(not KV, reason="pip install -e examples/plugins/kv_codec (.ci/run does)")
RECEIVED: list[dict] = []


class Recorder:
    """An integration plugin: keeps the envelopes it is given."""

    kind = "integration"

    def on_event(self, envelope: dict) -> None:
        RECEIVED.append(envelope)


@pytest.fixture
def more_plugins(monkeypatch):
    """The installed plugins plus an integration and a broken one (real entry points)."""
    extra = [EntryPoint("recorder", f"{__name__}:Recorder", plugins.GROUP),  # this very module
             EntryPoint("broken", "nce_plugin_kv:NoSuchCodec", plugins.GROUP)]
    monkeypatch.setattr(plugins, "entry_points", lambda group: [*KV, *extra])
    RECEIVED.clear()


async def stored(gw, count: int) -> list[dict]:
    deadline = time.monotonic() + 5
    while True:
        await gw.committer.flush()
        messages = sorted(gw.store.messages(), key=lambda m: m["seq"])
        if len(messages) >= count or time.monotonic() > deadline:
            assert len(messages) == count, messages
            return messages
        await asyncio.sleep(0.02)


async def test_codec_and_integration_plugins_and_their_routes(start_gateway, tmp_path, more_plugins):
    config = make_config(tmp_path)
    api = await start_api(start_gateway, config, [DEVICE], roles=("Owner", "User"))
    gw, owner, user = api.gateway, api.client("Owner"), api.client("User")
    listed = await user.get("/v1/partners/plugins")
    assert [(p["id"], p["partner"], p["status"]) for p in listed.body["items"]] == [
        ("kv-codec", "nce-plugin-kv", "INSTALLED"), ("recorder", __name__, "INSTALLED"),
        ("broken", "nce_plugin_kv", "FAILED")]
    broken = await user.get("/v1/partners/plugins/broken")
    assert broken.body["kind"] == "unknown" and broken.body["message"] == (
        "AttributeError: module 'nce_plugin_kv' has no attribute 'NoSuchCodec'")
    assert (await user.get("/v1/partners/plugins/kv-codec")).body["kind"] == "codec"
    assert (await user.get("/v1/partners/plugins/nope")).status == 404

    for payload in (b"KV:t=21.5;door=open;n=3", b"plain bytes", b"KV:broken"):
        send_udp("127.0.0.1", gw.udp_port, DEVICE.ip_address, payload)
        await stored(gw, len(RECEIVED) + 1)
    messages = await stored(gw, 3)
    assert json.loads(messages[0]["translated"]) == {"t": 21.5, "door": "open", "n": 3}
    assert messages[1]["translated"] is None and messages[1]["error"] is None
    assert messages[2]["error"] == "plugin kv-codec: ValueError: 'broken' is not key=value"
    assert len(RECEIVED) == 3 and {e["device"]["iccid"] for e in RECEIVED} == {DEVICE.iccid}

    # a User may look, not uninstall; uninstalled stays off across a restart; restart brings it back
    assert (await user.delete("/v1/partners/plugins/kv-codec")).status == 403
    assert (await owner.delete("/v1/partners/plugins/kv-codec")).status == 204
    send_udp("127.0.0.1", gw.udp_port, DEVICE.ip_address, b"KV:a=1")
    assert (await stored(gw, 4))[3]["translated"] is None
    await gw.stop()
    restarted = await start_gateway(config)
    again = Api(restarted, f"http://127.0.0.1:{restarted.api_port}/management-api", api.users).client("Owner")
    assert (await again.get("/v1/partners/plugins/kv-codec")).body["status"] == "UNINSTALLED"
    answer = await again.post("/v1/partners/plugins/kv-codec/restart")
    assert answer.status == 200 and (answer.body["restartStatus"], answer.body["plugin"]["status"]) == (
        "SUCCESS", "INSTALLED")
    failed = await again.post("/v1/partners/plugins/broken/restart")
    assert failed.body["restartStatus"] == "FAILURE" and "NoSuchCodec" in failed.body["message"]
    send_udp("127.0.0.1", restarted.udp_port, DEVICE.ip_address, b"KV:a=1")
    assert json.loads((await stored(restarted, 5))[4]["translated"]) == {"a": 1}
    # the hosted partners' install routes say why they are not there
    datacake = await again.post("/v1/partners/DATACAKE/plugins", json={})
    assert datacake.status == 501 and "hosted service" in datacake.body["errors"][0]["message"]
