"""A change made with the CLI is in force in the running gateway when the command returns.

The gateway here polls the store only every 60 s, so anything that works at once went through
the control socket (gateway/control.py), not the follower's poll.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from gateway import control
from gateway.cli import main as cli

from tests.conftest import make_config, sim

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINT = str(ROOT / "examples" / "blueprint-template.json")


def cli_config(tmp_path: Path, store: str) -> str:
    path = tmp_path / "cli.toml"
    path.write_text(f'[store]\npath = "{store}"\n')
    return str(path)


async def wait_stored(gw, count: int) -> list[dict]:
    for _ in range(100):
        await gw.committer.flush()
        rows = gw.store.messages()
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} message(s) not stored")


async def test_template_sims_psk_and_users_in_force_when_the_cli_returns(tmp_path, start_gateway, capsys):
    config = make_config(tmp_path, registry={"poll_interval_seconds": 60.0})
    gw = await start_gateway(config, [sim(10), sim(11, "Disabled")])
    cfg = cli_config(tmp_path, config.store.path)

    code = await asyncio.to_thread(cli, ["template", "add", BLUEPRINT, "--name", "blueprint", "--protocol", "UDP",
                                         "--active", "--config", cfg])
    assert code == 0
    template_id = capsys.readouterr().out.split(":")[0]
    assert gw.templates.active_for("UDP") == template_id
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((sim(10).ip_address, 0))
        sock.sendto(bytes.fromhex("016354322e322e31"), ("127.0.0.1", gw.udp_port))
    (message,) = await wait_stored(gw, 1)
    assert message["error"] is None
    assert json.loads(message["translated"]) == {"data_type": "Energy_Saver", "battery_level": 99, "signal_strength": 84,
                                        "software_version": "2.2.1"}

    assert await asyncio.to_thread(cli, ["template", "set-status", template_id, "INACTIVE", "--config", cfg]) == 0
    assert gw.templates.active_for("UDP") is None

    assert gw.registry.enabled_sim_for_iccid(sim(11).iccid) is None
    assert await asyncio.to_thread(cli, ["sims", "set-status", sim(11).iccid, "Enabled", "--config", cfg]) == 0
    assert gw.registry.enabled_sim_for_iccid(sim(11).iccid).iccid == sim(11).iccid

    assert await asyncio.to_thread(cli, ["psk", "set", sim(10).iccid, "--key", "secret-key", "--config", cfg]) == 0
    assert gw.psks.key(sim(10).iccid, "COAP") == b"secret-key"

    (tmp_path / "pw").write_text("a long enough password 1\n")
    assert await asyncio.to_thread(cli, ["users", "add", "ops@example.com", "--role", "Admin", "--password-file",
                                         str(tmp_path / "pw"), "--config", cfg]) == 0
    assert [u.username for u in gw.api_auth._by_id.values()] == ["ops@example.com"]
    assert "warning" not in capsys.readouterr().err


def test_no_gateway_running_means_nothing_to_wait_for(tmp_path):
    assert control.apply_now(tmp_path / "nothing-runs-here.db", timeout=1.0) is None


async def test_the_control_socket_answers_only_apply(tmp_path, start_gateway):
    config = make_config(tmp_path, registry={"poll_interval_seconds": 60.0})
    await start_gateway(config)
    reader, writer = await asyncio.open_unix_connection(control.address(config.store.path))
    writer.write(b"something else\n")
    assert await reader.read() == b"unknown request\n"
    writer.close()
    assert await asyncio.to_thread(control.apply_now, config.store.path) is True


async def test_a_second_gateway_on_the_same_store_still_starts(tmp_path, start_gateway):
    first = await start_gateway(make_config(tmp_path))
    second_config = make_config(tmp_path)
    second = await start_gateway(second_config)
    assert first.control._server is not None
    assert second.control._server is None  # it follows the store by polling only
