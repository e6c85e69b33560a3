"""Where integrations may connect (issue 19, design choice): public addresses only by default,
checked on the address a name resolves to when the connection is opened."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from integrators.base import DeliveryError
from integrators.http11 import HttpPool
from integrators.targets import TargetPolicy, TargetRefused, parse_networks
from integrators.webhook import WebhookSender, WebhookSettings
from tests.api_support import start_api
from tests.conftest import make_config, sim, webhook
from tests.test_uplink_e2e import coap_post

DEFAULT = TargetPolicy()
CLOUDS = "/v1/integrate/clouds"


@pytest.mark.parametrize("address, refused", [
    ("8.8.8.8", None),
    ("2606:4700::1111", None),
    ("127.0.0.1", "127.0.0.1 is a loopback address (targets.allow_loopback = true allows it)"),
    ("::1", "::1 is a loopback address (targets.allow_loopback = true allows it)"),
    ("::ffff:127.0.0.2", "127.0.0.2 is a loopback address (targets.allow_loopback = true allows it)"),
    ("169.254.169.254", "169.254.169.254 is a link-local address (only targets.allow can allow it)"),
    ("fe80::1%eth0", "fe80::1 is a link-local address (only targets.allow can allow it)"),
    ("10.1.2.3", "10.1.2.3 is a private or non-public address (targets.allow_private = true allows it)"),
    ("192.168.0.10", "192.168.0.10 is a private or non-public address (targets.allow_private = true allows it)"),
    ("100.64.0.1", "100.64.0.1 is a private or non-public address (targets.allow_private = true allows it)"),
    ("fd12::1", "fd12::1 is a private or non-public address (targets.allow_private = true allows it)"),
    ("0.0.0.0", "0.0.0.0 is not a unicast address"),
    ("224.0.0.1", "224.0.0.1 is not a unicast address"),
])
def test_default_policy(address, refused):
    assert DEFAULT.refusal(address) == refused


def test_switches_and_lists():
    local = TargetPolicy(allow_loopback=True, allow_private=True)
    assert local.refusal("127.0.0.1") is None and local.refusal("10.0.0.1") is None
    assert local.refusal("169.254.169.254") is not None  # metadata services stay closed
    listed = TargetPolicy(allow=parse_networks(["10.20.0.0/16"], "targets.allow"),
                          deny=parse_networks(["8.8.8.0/24", "10.20.30.40"], "targets.deny"))
    assert listed.refusal("10.20.1.1") is None
    assert listed.refusal("10.21.1.1") is not None
    assert listed.refusal("10.20.30.40") == "10.20.30.40 is in targets.deny"
    assert listed.refusal("8.8.8.8") == "8.8.8.8 is in targets.deny"
    assert DEFAULT.check_literal("localhost") is not None and DEFAULT.check_literal("[::1]") is not None
    assert DEFAULT.check_literal("api.example.com") is None  # names: checked when connecting
    with pytest.raises(ValueError, match="targets.allow: 'ten' is not an address"):
        parse_networks(["ten"], "targets.allow")


def test_config(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('[[webhooks]]\nname = "a"\nurl = "https://127.0.0.1:8443/x"\n')
    with pytest.raises(ConfigError, match=r"webhooks\[0\].url: 127.0.0.1 is a loopback address"):
        load_config(path, environ={})
    assert load_config(path, environ={"NCE_TARGETS_ALLOW_LOOPBACK": "true"}).webhooks[0].name == "a"
    with pytest.raises(ConfigError, match="targets.deny: 'x' is not an address"):
        load_config(environ={"NCE_TARGETS_DENY": "x"})
    # the shipped example delivers to the walkthrough's sink on localhost: it allows loopback
    assert load_config(Path(__file__).parents[1] / "examples" / "gateway.toml", environ={}).targets.allow_loopback is True


async def _server() -> tuple[asyncio.Server, int, list[int]]:
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], accepted


async def test_the_http_pool_checks_every_resolved_address(tmp_path):
    server, port, accepted = await _server()
    async with server:
        pool = HttpPool(f"http://localhost:{port}", check_address=DEFAULT.refusal)
        with pytest.raises(TargetRefused, match="target localhost refused: 127.0.0.1 is a loopback address"):
            await pool._connect()
        await asyncio.sleep(0.05)
        assert accepted == []  # no connection was even tried
        allowed = HttpPool(f"http://localhost:{port}", check_address=TargetPolicy(allow_loopback=True).refusal)
        conn = await allowed._connect()
        assert conn.transport.get_extra_info("peername")[0] == "127.0.0.1"
        conn.transport.close()


async def test_webhook_sender_refuses_before_connecting():
    server, port, accepted = await _server()
    async with server:
        sender = WebhookSender(WebhookSettings(url=f"http://localhost:{port}/x", targets=DEFAULT))
        with pytest.raises(DeliveryError, match="webhook target localhost refused: 127.0.0.1 is a loopback"):
            await sender.send("{}", None, "TELEMETRY_DATA")
        await sender.close()
        assert accepted == []


async def test_a_gateway_with_the_default_policy(start_gateway, tmp_path, receiver, ca_file):
    device = sim(13)
    config = make_config(tmp_path, api={"webhook_ca_file": ca_file, "test_timeout_seconds": 1},
                         webhooks=[webhook(receiver, ca_file, name="local", retry_schedule=[30])])
    config.targets.allow_loopback = False  # as shipped (the tests' configs allow loopback)
    api = await start_api(start_gateway, config, [device], roles=("Owner",))
    owner = api.client("Owner")
    port = receiver.url.split(":")[2].split("/")[0]
    # addresses named in the URL are refused at once, naming the field
    for url in (f"https://127.0.0.1:{port}/x", f"https://localhost:{port}/x", "https://[::1]/x",
                "https://169.254.169.254/latest/meta-data", "https://10.0.0.1/x"):
        answer = await owner.post(f"{CLOUDS}/webhooks", json={"name": "probe", "url": url, "headers": {},
                                                              "eventTypes": [{"type": "TELEMETRY_DATA"}]})
        assert answer.status == 400 and answer.body["errors"][0]["field"] == "url", (url, answer.body)
    # a name is resolved when connecting: the config file's localhost receiver gets nothing
    assert (await coap_post(api.gateway.coap_port, device.ip_address, b"x")).code == "2.04"
    file_id = next(r["uuid"] for r in api.gateway.store.list_integrations() if r["name"] == "local")
    tested = await owner.post(f"{CLOUDS}/webhooks/{file_id}/test")
    assert tested.status == 200 and tested.body["testStatus"] == "FAILURE"
    await asyncio.sleep(0.2)
    assert receiver.events == []
    own_name = socket.gethostname()
    try:
        resolves_to_loopback = socket.gethostbyname(own_name).startswith("127.")
    except OSError:
        resolves_to_loopback = False
    if resolves_to_loopback:  # a name that is not 'localhost' but is this host: refused too
        created = await owner.post(f"{CLOUDS}/webhooks", json={
            "name": "by-name", "url": f"https://{own_name}:{port}/x", "headers": {},
            "eventTypes": [{"type": "TELEMETRY_DATA"}]})
        assert created.status == 201
        tested = await owner.post(f"{CLOUDS}/webhooks/{created.body['id']}/test")
        assert tested.body["testStatus"] == "FAILURE"
        assert receiver.events == []
