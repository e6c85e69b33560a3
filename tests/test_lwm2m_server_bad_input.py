"""LwM2M bad input: a clear CoAP error, nothing stored, and the server keeps serving."""

from __future__ import annotations

import json

from aiocoap.numbers.codes import Code

from firmware_examples.lwm2m_client import LwM2MClient, default_objects
from gateway.lwm2m import ContentFormat
from tests._lwm2m_server_helpers import raw_request, registered_client
from tests.conftest import make_config, sim

POST, DELETE = Code.POST, Code.DELETE


async def test_refusals_store_nothing_and_the_server_keeps_serving(tmp_path, start_gateway):
    device, other = sim(30), sim(31)
    gw = await start_gateway(make_config(tmp_path), [device, other])
    port, ip = gw.coap_port, device.ip_address
    links = b"</1/0>,</3/0>,</3303/0>"

    async def rd(query, payload=links, cf=ContentFormat.LINK_FORMAT, source=ip, path="/rd"):
        return await raw_request(port, source, POST, path, payload, query, cf)

    cases = [
        (await raw_request(port, ip, POST, "/bs", query=[f"ep={other.iccid}"]), "4.03"),
        (await raw_request(port, ip, POST, "/bs"), "4.00"),
        (await raw_request(port, "127.0.0.99", POST, "/bs", query=["ep=8988280660000000099"]), "4.01"),
        (await rd([f"ep={other.iccid}"]), "4.03"),
        (await rd([]), "4.00"),
        (await rd([f"ep={device.iccid}"], b"</3/0,</4/0>"), "4.00"),
        (await rd([f"ep={device.iccid}"], b"</3/0/1/2>"), "4.00"),
        (await rd([f"ep={device.iccid}"], b"</3/x>"), "4.00"),
        (await rd([f"ep={device.iccid}"], b"\xff\xfe"), "4.00"),
        (await rd([f"ep={device.iccid}"], cf=ContentFormat.TEXT), "4.15"),
        (await rd([f"ep={device.iccid}", "lt=soon"]), "4.00"),
        (await rd([f"ep={device.iccid}", "lt=0"]), "4.00"),
        (await rd([f"ep={device.iccid}", "lwm2m=2.0"]), "4.12"),
        (await rd([f"ep={device.iccid}", "b=X"]), "4.00"),
        (await rd([f"ep={device.iccid}"], path="/rd/a/b"), "4.04"),
        (await rd([], path="/rd/unknown"), "4.04"),
        (await raw_request(port, ip, DELETE, "/rd"), "4.05"),
        (await raw_request(port, ip, POST, "/dp", b'[{"n":"/3303/0/5700","v":1}]', None,
                           ContentFormat.SENML_JSON), "4.03"),  # not registered
    ]
    for result, expected in cases:
        assert result.code == expected, (result, expected)
        if expected != "4.01":
            assert result.payload  # a diagnostic says why
    assert len(gw.lwm2m.registrations) == 0
    assert gw.store.connection().execute("SELECT COUNT(*) FROM lwm2m_registrations").fetchone()[0] == 0

    client = await registered_client(gw, device)
    try:
        reg_id = gw.lwm2m.registrations.of(device.iccid).id
        sends = [
            (b'[{"n":"/3303/0/5700","v":', ContentFormat.SENML_JSON, "4.00"),   # malformed SenML JSON
            (b'[{"n":"/3303/0/5700","v":"x"}]', ContentFormat.SENML_JSON, "4.00"),  # v must be a number
            (b"\x9f\xa2", ContentFormat.SENML_CBOR, "4.00"),                       # truncated CBOR
            (b"\xc8\x00\x14\x4f\x70", ContentFormat.TLV, "4.00"),                  # malformed TLV
            (b'[{"n":"/9999/0/1","v":1}]', ContentFormat.SENML_JSON, "4.04"),      # unknown object
            (b'[{"n":"/3303/0/5700","v":1}]', None, "4.00"),                       # no content format
            (b'[{"n":"/3303/0/5700","v":1}]', ContentFormat.TEXT, "4.15"),
        ]
        for payload, cf, expected in sends:
            result = await raw_request(port, ip, POST, "/dp", payload, None, cf)
            assert result.code == expected, (payload, cf, result)
        # another SIM cannot touch this registration
        assert (await raw_request(port, other.ip_address, POST, f"/rd/{reg_id}")).code == "4.04"
        assert (await raw_request(port, other.ip_address, DELETE, f"/rd/{reg_id}")).code == "4.04"
        assert gw.lwm2m.registrations.of(device.iccid).id == reg_id
        # still serving, and only the good message is stored
        assert (await client.send({"/3303/0/5700": 20.0})).code == Code.CHANGED
        await gw.committer.flush()
        messages = gw.store.messages(device.iccid)
        assert [json.loads(m["translated"]) for m in messages] == [{"/3303/0/5700": 20.0}]
        assert gw.store.events(event_type="TELEMETRY_DATA", limit=10)[0]["payload"]["value"] == {"/3303/0/5700": 20.0}
    finally:
        await client.close()


async def test_block_wise_register_goes_through_the_aiocoap_resources(tmp_path, start_gateway):
    device = sim(32)
    gw = await start_gateway(make_config(tmp_path), [device])
    values = default_objects(device.iccid)
    for i in range(1, 200):
        values[f"/3303/{i}/5700"] = float(i)
    client = await LwM2MClient.start(device.iccid, device.ip_address, values)
    try:
        assert len(client.link_list()) > 1024  # the client sends it block-wise (Block1)
        location = await client.register(f"coap://127.0.0.1:{gw.coap_port}")
        reg = gw.lwm2m.registrations.of(device.iccid)
        assert location == f"/rd/{reg.id}"
        assert len(gw.lwm2m.registrations.parsed_links(reg.links).objects[3303].instances) == 200
        assert (await client.update(with_links=True)).code == Code.CHANGED
        assert (await client.deregister()).code == Code.DELETED
    finally:
        await client.close()


def test_lwm2m_config_keys_are_checked(tmp_path):
    import pytest

    from gateway.config import ConfigError, load_config

    config = load_config(environ={"NCE_LWM2M_PASSIVE_REPORTING": "true", "NCE_LWM2M_LIFETIME": "600"})
    assert config.lwm2m.passive_reporting is True and config.lwm2m.lifetime == 600
    for bad in ({"NCE_LWM2M_BINDING": "X"}, {"NCE_LWM2M_SERVER_URI": "http://x"},
                {"NCE_LWM2M_SHORT_SERVER_ID": "0"}, {"NCE_LWM2M_REQUEST_TIMEOUT_SECONDS": "0"},
                {"NCE_LWM2M_REGISTRATION_GRACE_SECONDS": "-1"}, {"NCE_LWM2M_COLOUR": "red"}):
        with pytest.raises(ConfigError) as exc:
            load_config(environ=bad)
        assert "lwm2m" in str(exc.value)
    assert load_config(environ={"NCE_LWM2M_REGISTRATION_GRACE_SECONDS": "0"}).lwm2m.registration_grace_seconds == 0
