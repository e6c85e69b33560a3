"""PSK onboarding over plain CoAP GET /bootstrap (SPEC §1) and the psk CLI."""

from __future__ import annotations

import asyncio
import shutil
import string

import pytest
from aiocoap import NON
from aiocoap.numbers.codes import Code

from firmware_examples.coap_client import CoapClient, build_request
from gateway.cli import main as cli
from tests.conftest import make_config, sim


def bootstrap(port: int, source_ip: str, confirmable: bool = True) -> tuple[str, bytes]:
    with CoapClient(("127.0.0.1", port), source_ip) as client:
        request = build_request(Code.GET, "/bootstrap", confirmable=confirmable, uri_host="coap.os.1nce.com")
        result = client.request(request, timeout=5)
        return result.code, result.payload


async def test_bootstrap_hands_out_a_stable_printable_key(tmp_path, start_gateway):
    device = sim(37)
    gw = await start_gateway(make_config(tmp_path, coaps={"public_url": "coaps://gw.example.com:5684"}), [device])
    code, payload = await asyncio.to_thread(bootstrap, gw.coap_port, device.ip_address, False)  # NON, as the SDK
    assert code == "2.05"
    iccid, key, url = payload.decode().split(",")
    assert iccid == device.iccid and url == "coaps://gw.example.com:5684"
    # 16 characters by default: tinydtls, Mbed TLS, OpenSSL and GnuTLS clients all load it
    assert len(key) == 16 and set(key) <= set(string.ascii_letters + string.digits)
    assert gw.store.all_psks()[0][:3] == (device.iccid, "COAP", key.encode())
    code, again = await asyncio.to_thread(bootstrap, gw.coap_port, device.ip_address)
    assert (code, again) == ("2.05", payload)  # existing key returned as is
    code, refused = await asyncio.to_thread(bootstrap, gw.coap_port, "127.0.0.97")
    assert code == "4.01"


async def test_regeneration_policy_and_user_set_keys(tmp_path, start_gateway):
    device = sim(38)
    gw = await start_gateway(make_config(tmp_path, psk={"regenerate_after_seconds": 0.2, "generated_length": 24}),
                             [device])
    _, first = await asyncio.to_thread(bootstrap, gw.coap_port, device.ip_address)
    await asyncio.sleep(0.3)
    _, second = await asyncio.to_thread(bootstrap, gw.coap_port, device.ip_address)
    assert first != second and second.startswith(device.iccid.encode() + b",")
    assert len(second.split(b",")[1]) == 24  # psk.generated_length
    # a regenerated key is a rotation: the one handed out before stays valid for the grace period
    assert gw.psks.previous_key(device.iccid) == first.split(b",")[1]
    # a key the user set (CLI, another process) is picked up live and never regenerated
    toml = tmp_path / "g.toml"
    toml.write_text(f'[store]\npath = "{gw.config.store.path}"\n')
    assert await asyncio.to_thread(cli, ["psk", "set", device.iccid, "--key", "my-own-secret", "--config", str(toml)]) == 0
    for _ in range(50):
        if gw.psks.key(device.iccid, "COAP") == b"my-own-secret":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    _, third = await asyncio.to_thread(bootstrap, gw.coap_port, device.ip_address)
    assert third == f"{device.iccid},my-own-secret".encode()
    # binary keys cannot be handed out as text
    assert await asyncio.to_thread(cli, ["psk", "set", device.iccid, "--key-hex", "00ff10", "--config", str(toml)]) == 0
    for _ in range(50):
        if gw.psks.key(device.iccid, "COAP") == b"\x00\xff\x10":
            break
        await asyncio.sleep(0.05)
    code, diagnostic = await asyncio.to_thread(bootstrap, gw.coap_port, device.ip_address)
    assert code == "4.03" and b"not printable" in diagnostic


def test_psk_cli_errors(tmp_path, capsys):
    toml = tmp_path / "g.toml"
    toml.write_text(f'[store]\npath = "{tmp_path / "g.db"}"\n')
    assert cli(["psk", "set", "8988280666000000010", "--key", "x", "--config", str(toml)]) == 1
    assert "no SIM with ICCID" in capsys.readouterr().err
    from inspector.sqlite import SqliteStore
    SqliteStore(tmp_path / "g.db").upsert_sims([sim(10)])
    assert cli(["psk", "set", sim(10).iccid, "--key-hex", "zz", "--config", str(toml)]) == 1
    assert "not valid hex" in capsys.readouterr().err
    # Mbed TLS takes at most 32 bytes: a longer key could never complete a handshake
    assert cli(["psk", "set", sim(10).iccid, "--key", "k" * 33, "--config", str(toml)]) == 1
    assert "1 to 32 bytes" in capsys.readouterr().err
    assert cli(["psk", "set", sim(10).iccid, "--key-hex", "ab" * 33, "--config", str(toml)]) == 1
    assert "1 to 32 bytes" in capsys.readouterr().err
    assert cli(["psk", "get", sim(10).iccid, "--config", str(toml)]) == 1
    assert cli(["psk", "set", sim(10).iccid, "--key-hex", "0102", "--protocol", "LWM2M", "--config", str(toml)]) == 0
    capsys.readouterr()
    assert cli(["psk", "get", sim(10).iccid, "--protocol", "LWM2M", "--config", str(toml)]) == 0
    assert capsys.readouterr().out.strip() == "hex:0102"


@pytest.mark.skipif(shutil.which("coap-client-notls") is None, reason="needs libcoap3-bin")
async def test_libcoap_client_bootstrap(tmp_path, start_gateway):
    device = sim(39)
    gw = await start_gateway(make_config(tmp_path), [device])
    process = await asyncio.create_subprocess_exec(
        "coap-client-notls", "-a", device.ip_address, "-B", "5", "-m", "get",
        f"coap://127.0.0.1:{gw.coap_port}/bootstrap", stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    iccid, key = out.decode().strip().split(",")
    assert iccid == device.iccid and gw.psks.key(iccid, "COAP") == key.encode()
