"""PSKs through the management API: set (STRING, HEX), read back, refusals, and a key set
through the API completing a real DTLS handshake."""

from __future__ import annotations

import logging

import pytest

from firmware_examples.device import CoapsDevice, Onboarding
from gateway import psk
from gateway.transports.dtls import MAX_PSK_LEN
from tests.api_support import ROLES, ApiClient, document, start_api
from tests.conftest import make_config, sim

DEVICE, OTHER = sim(12), sim(13)
UNKNOWN = "8988280666000000099"


@pytest.fixture
async def api(start_gateway, tmp_path):
    return await start_api(start_gateway, make_config(tmp_path), [DEVICE, OTHER])


def path(iccid: str = DEVICE.iccid) -> str:
    return f"/v1/integrate/devices/{iccid}/psk"


def test_key_limits():
    assert psk.MAX_KEY_LENGTH == MAX_PSK_LEN == 32
    # what docs/dtls.md states: 5.95 bits per character, 95 bits for the default 16
    assert psk.GENERATED_LENGTH == 16 and round(psk.key_entropy_bits(16), 1) == 95.3
    assert round(psk.key_entropy_bits(12)) == 71 and round(psk.key_entropy_bits(32)) == 191
    assert psk.parse_key("k" * 32) == b"k" * 32
    assert psk.parse_key("00" * 32, "HEX") == bytes(32)
    for secret, fmt in (("k" * 33, "STRING"), ("00" * 33, "HEX"), ("é" * 17, "STRING"), ("", "STRING")):
        with pytest.raises(psk.PskError):
            psk.parse_key(secret, fmt)
    assert psk.format_key(b"plain-text") == ("STRING", "plain-text")
    assert psk.format_key("schlüssel".encode()) == ("STRING", "schlüssel")
    assert psk.format_key(b"\x00\xff\x10") == ("HEX", "00ff10")
    assert psk.format_key(b"tab\there") == ("HEX", b"tab\there".hex())


async def test_set_and_read_back(api, caplog):
    client = api.client("API")
    caplog.set_level(logging.DEBUG)
    answer = await client.post(path(), json={"secretKey": "my-device-secret", "protocol": "COAP"})
    assert answer.status == 200, answer.body
    body = answer.body
    assert {k: body[k] for k in ("deviceId", "identity", "secretKey", "format", "protocol")} == {
        "deviceId": DEVICE.iccid, "identity": DEVICE.iccid, "secretKey": "my-device-secret", "format": "STRING",
        "protocol": "COAP"}
    assert body["createdAt"].endswith("Z") and body["createdAt"] == body["updatedAt"]
    assert api.gateway.psks.key(DEVICE.iccid, "COAP") == b"my-device-secret"
    got = await client.get(f"{path()}/COAP")
    assert got.status == 200 and got.body == body

    # HEX: the bytes are the key; a binary key reads back as HEX, a printable one as STRING
    hex_key = "00ff10203040506070"
    answer = await client.post(path(), json={"secretKey": hex_key, "protocol": "LWM2M", "format": "HEX"})
    assert answer.status == 200 and (answer.body["format"], answer.body["secretKey"]) == ("HEX", hex_key)
    assert api.gateway.psks.key(DEVICE.iccid, "LWM2M") == bytes.fromhex(hex_key)
    got = await client.get(f"{path()}/LWM2M")
    assert (got.body["format"], got.body["secretKey"], got.body["protocol"]) == ("HEX", hex_key, "LWM2M")
    answer = await client.post(path(), json={"secretKey": b"printable".hex(), "protocol": "LWM2M", "format": "HEX"})
    assert answer.status == 200
    got = await client.get(f"{path()}/LWM2M")
    assert (got.body["format"], got.body["secretKey"]) == ("STRING", "printable")

    # the older route name does the same
    answer = await client.post(f"/v1/integrate/devices/{OTHER.iccid}/presharedkey",
                               json={"secretKey": "other-device-key", "protocol": "COAP", "format": "STRING"})
    assert answer.status == 200 and api.gateway.psks.key(OTHER.iccid, "COAP") == b"other-device-key"
    # a key set by the CLI may be shorter than 8 characters: still answered
    await api.gateway.psks.set(OTHER.iccid, "LWM2M", b"\x01\x02")
    got = await client.get(f"/v1/integrate/devices/{OTHER.iccid}/psk/LWM2M")
    assert got.status == 200 and (got.body["format"], got.body["secretKey"]) == ("HEX", "0102")
    # never in the log
    assert any(r.name == "nce.api.psk" for r in caplog.records)
    for secret in ("my-device-secret", hex_key, "other-device-key"):
        assert all(secret not in repr(vars(record)) for record in caplog.records), secret  # extra fields too


async def test_refusals(api):
    client = api.client("User")
    cases = [
        ({"secretKey": "not hex at all!", "protocol": "COAP", "format": "HEX"}, "secretKey", "hex"),
        ({"secretKey": "k" * 33, "protocol": "COAP"}, "secretKey", "32 bytes"),
        ({"secretKey": "ab" * 33, "protocol": "COAP", "format": "HEX"}, "secretKey", "32 bytes"),
        ({"secretKey": "short", "protocol": "COAP"}, "secretKey", "8"),
        ({"secretKey": "long enough key", "protocol": "UDP"}, "protocol", "COAP"),
        ({"secretKey": "long enough key", "protocol": "COAP", "format": "BASE64"}, "format", "HEX"),
        ({"secretKey": "long enough key"}, "protocol", "required"),
        ({"secretKey": "long enough key", "protocol": "COAP", "colour": "red"}, "colour", "not a known field"),
    ]
    for body, field, words in cases:
        answer = await client.post(path(), json=body)
        assert answer.status == 400, (body, answer.body)
        (error,) = answer.body["errors"]
        assert error["field"] == field and words in error["message"], (body, error)
    assert api.gateway.psks.get(DEVICE.iccid, "COAP") is None  # nothing was stored
    assert (await client.post(path(), data=b"{not json", headers={"Content-Type": "application/json"})).status == 400

    unknown = await client.post(path(UNKNOWN), json={"secretKey": "long enough key", "protocol": "COAP"})
    assert unknown.status == 404 and unknown.body["statusText"] == "Not Found"
    assert (await client.get(f"{path(UNKNOWN)}/COAP")).status == 404
    none_yet = await client.get(f"{path()}/COAP")
    assert none_yet.status == 404 and "no COAP PSK" in none_yet.body["errors"][0]["message"]
    bad = await client.get(f"{path()}/UDP")
    assert bad.status == 400 and bad.body["errors"][0]["field"] == "protocol"


async def test_token_and_roles(api):
    body = {"secretKey": "role-test-secret", "protocol": "COAP"}
    anonymous = ApiClient(api.base)
    assert (await anonymous.post(path(), json=body)).status == 401
    assert (await anonymous.get(f"{path()}/COAP")).status == 401
    assert (await anonymous.post(path(), json=body, token="not-a-token")).status == 401
    # the role table: setting is `manage`, reading is `read`; every role has both (SPEC §7)
    paths = document()["paths"]
    assert paths["/v1/integrate/devices/{deviceId}/psk"]["post"]["x-nce-access"] == "manage"
    assert paths["/v1/integrate/devices/{deviceId}/psk/{protocol}"]["get"]["x-nce-access"] == "read"
    for role in ROLES:
        client = api.client(role)
        assert (await client.post(path(), json=body)).status == 200, role
        assert (await client.get(f"{path()}/COAP")).status == 200, role



async def test_a_key_set_through_the_api_completes_a_dtls_handshake(api):
    key = "api-set-dtls-key"
    client = api.client("Owner")
    assert (await client.post(path(), json={"secretKey": key, "protocol": "COAP"})).status == 200
    gw = api.gateway
    async with CoapsDevice(("127.0.0.1", gw.coaps_port), Onboarding(DEVICE.iccid, key.encode()),
                           DEVICE.ip_address) as dev:
        assert await dev.post(b"over dtls with an API key", topic="api") == "2.04"
    await gw.committer.flush()
    assert [m["payload"] for m in gw.store.messages(DEVICE.iccid)] == [b"over dtls with an API key"]
    # a changed key: the new one works at once; the old one stays valid for the grace period
    new = bytes.fromhex("00112233445566778899")
    assert (await client.post(path(), json={"secretKey": new.hex(), "protocol": "COAP",
                                            "format": "HEX"})).status == 200
    async with CoapsDevice(("127.0.0.1", gw.coaps_port), Onboarding(DEVICE.iccid, new), DEVICE.ip_address) as dev:
        assert await dev.post(b"new key") == "2.04"
    assert await handshake(gw, key.encode()) == "refused"  # offered the current key first ...
    assert await handshake(gw, key.encode()) == "2.04"  # ... then the previous one
    assert gw.psks.previous_key(DEVICE.iccid) == key.encode()
    # an explicit rotation with no grace: the previous key is refused at once, the new one works
    answer = await client.post(path() + "/rotate", json={"graceSeconds": 0})
    assert answer.status == 200
    body = answer.body
    rotated = body["secretKey"].encode()
    assert "previousKeyValidUntil" not in body and body["format"] == "STRING" and len(rotated) == 16
    assert gw.psks.dtls_key(DEVICE.iccid) == rotated and gw.store.previous_psks() == []
    for _ in range(2):
        assert await handshake(gw, new) == "refused"
    assert await handshake(gw, rotated) == "2.04"
    # with a grace period the answer says until when the old key is accepted
    answer = await client.post(path() + "/rotate", json={"graceSeconds": 60})
    body = answer.body
    assert body["previousKeyValidUntil"].endswith("Z")
    assert gw.psks.previous_key(DEVICE.iccid) == rotated


async def handshake(gw, key: bytes) -> str:
    """"2.04" after a DTLS handshake with ``key`` and an uplink, or "refused"."""
    dev = CoapsDevice(("127.0.0.1", gw.coaps_port), Onboarding(DEVICE.iccid, key), DEVICE.ip_address)
    try:
        await dev.connect(timeout=3)
        return await dev.post(b"x")
    except (ConnectionError, TimeoutError):
        return "refused"
    finally:
        await dev.close()
