"""The fleet emulator against a gateway: its summary agrees with the gateway and the webhook."""

from __future__ import annotations

import asyncio
import re

from firmware_examples import fleet
from gateway.cli import main as gateway_cli
from tests.conftest import make_config, webhook


def numbers_of(text: str) -> list[str]:
    return re.findall(r"[0-9][0-9,.]*", text)


async def test_fleet_coap_and_udp_summaries_match_gateway_and_webhook(tmp_path, receiver, ca_file, start_gateway,
                                                                       capsys):
    sims = tmp_path / "fleet.csv"
    config = make_config(tmp_path, webhooks=[webhook(receiver, ca_file)])
    toml = tmp_path / "g.toml"
    toml.write_text(f'[store]\npath = "{config.store.path}"\n')
    assert fleet.main(["--generate", "20", "--sims", str(sims), "--import-config", str(toml),
                       "--duration", "0"]) == 0
    gw = await start_gateway(config)
    assert len(gw.registry) == 20

    code = await asyncio.to_thread(fleet.main, ["--sims", str(sims), "--protocol", "coap", "--port",
                                                str(gw.coap_port), "--rate", "300/s", "--duration", "1.5s",
                                                "--quiet", "--topic", "fleet"])
    coap_out = capsys.readouterr().out
    code_udp = await asyncio.to_thread(fleet.main, ["--sims", str(sims), "--protocol", "udp", "--port",
                                                    str(gw.udp_port), "--rate", "200/s", "--duration", "1s",
                                                    "--quiet"])
    udp_out = capsys.readouterr().out
    assert code == 0 and code_udp == 0
    coap_row = next(line for line in coap_out.splitlines() if line.startswith("│"))
    udp_row = next(line for line in udp_out.splitlines() if line.startswith("│"))
    _, coap_sent, coap_acked, *_ = numbers_of(coap_row)
    _, udp_sent, *_ = numbers_of(udp_row)
    coap_acked_n, udp_sent_n = int(coap_acked.replace(",", "")), int(udp_sent.replace(",", ""))
    assert coap_sent == coap_acked and 350 <= coap_acked_n <= 460
    assert 150 <= udp_sent_n <= 210

    total = coap_acked_n + udp_sent_n
    await receiver.wait_for(total, timeout=30)
    await asyncio.sleep(0.3)
    assert len(receiver.events) == total
    by_source = {"COAP": 0, "UDP": 0}
    for event in receiver.events:
        by_source[event["source"]] += 1
    assert by_source == {"COAP": coap_acked_n, "UDP": udp_sent_n}
    text = gw.metrics.render().decode()
    assert f'nce_messages_stored_total{{protocol="COAP"}} {coap_acked_n}.0' in text
    assert f'nce_messages_stored_total{{protocol="UDP"}} {udp_sent_n}.0' in text
    assert f'nce_delivery_delivered_total{{integration="hook"}} {total}.0' in text
    assert gateway_cli(["sims", "list", "--format", "csv", "--config", str(toml)]) == 0


async def test_fleet_coaps_onboards_and_sends_over_dtls(tmp_path, start_gateway, capsys):
    sims = tmp_path / "fleet.csv"
    fleet.generate_sims(sims, 5, "127.2.1.0")
    config = make_config(tmp_path)
    toml = tmp_path / "g.toml"
    toml.write_text(f'[store]\npath = "{config.store.path}"\n')
    assert gateway_cli(["sims", "import", str(sims), "--config", str(toml)]) == 0
    gw = await start_gateway(config)
    code = await asyncio.to_thread(fleet.main, ["--sims", str(sims), "--protocol", "coaps", "--port", str(gw.coap_port),
                                                "--coaps-port", str(gw.coaps_port), "--rate", "50/s",
                                                "--duration", "1s", "--quiet"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("│"))
    _, sent, acked, *_ = numbers_of(row)
    assert code == 0 and sent == acked and int(acked) >= 30, out
    await gw.committer.flush()
    assert len(gw.psks._keys) == 5 and gw.coaps.dtls.metrics()["dtls_handshakes_ok"] == 5
    assert f'nce_messages_stored_total{{protocol="COAP"}} {acked}.0' in gw.metrics.render().decode()


async def test_fleet_lwm2m_registers_and_sends(tmp_path, receiver, ca_file, start_gateway, capsys):
    sims = tmp_path / "fleet.csv"
    fleet.generate_sims(sims, 8, "127.2.2.0")
    config = make_config(tmp_path, webhooks=[webhook(receiver, ca_file, event_types=["TELEMETRY_DATA"])])
    toml = tmp_path / "g.toml"
    toml.write_text(f'[store]\npath = "{config.store.path}"\n')
    assert gateway_cli(["sims", "import", str(sims), "--config", str(toml)]) == 0
    gw = await start_gateway(config)
    code = await asyncio.to_thread(fleet.main, ["--sims", str(sims), "--protocol", "lwm2m", "--port", str(gw.coap_port),
                                                "--rate", "100/s", "--duration", "1s", "--quiet"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("│"))
    _, sent, acked, *_ = numbers_of(row)
    assert code == 0 and sent == acked and int(acked) >= 60, out
    assert all(gw.lwm2m.registrations.of(iccid) is not None for iccid, _ in fleet.read_sims(sims))
    events = await receiver.wait_for(int(acked), timeout=20)
    assert {e["source"] for e in events} == {"LWM2M"}
    assert events[0]["payload"] == {"type": "JSON", "value": {"/3303/0/5700": 21.5}}
