"""The command line as a newcomer meets it (issue 17): help, --config anywhere, NCE_CONFIG,
list formats, full values when piped, the bind-error hint."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main as cli
from gateway.config import load_config
from inspector.sqlite import SqliteStore
from integrators.base import ROLLOUT_DONE
from integrators.manager import webhook_config

ROOT = Path(__file__).resolve().parent.parent
LONG_LABEL = "a label long enough to make a table wider than eighty columns on its own"
SIMS = f"""iccid,imsi,ip_address,msisdn,imei,label,status
89882806660000000111,901405100000011,127.0.0.12,882285100000011,356938035643809,{LONG_LABEL},Disabled
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "g.db"}"\n\n[targets]\nallow_loopback = true\n\n'
                    f'[[webhooks]]\nname = "local-sink"\n'
                    f'url = "https://localhost:8443/a/path/long/enough/to/be/cut/in/a/narrow/table"\n')
    (tmp_path / "sims.csv").write_text(SIMS)
    assert cli(["sims", "import", str(tmp_path / "sims.csv"), "--config", str(path)]) == 0
    # what a gateway does at start-up with the config file's integrations
    (hook,) = load_config(path, environ={}).webhooks
    SqliteStore(tmp_path / "g.db").upsert_integration(uuid="u-1", name=hook.name, kind="webhook", origin="config",
                                                      config=webhook_config(hook), state=ROLLOUT_DONE)
    return str(path)


def test_no_arguments_prints_the_help(capsys):
    assert cli([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nce-gateway [-h] [--config FILE] COMMAND ...")
    assert "NCE_CONFIG" in out


def test_config_before_or_after_the_command_and_from_nce_config(config, capsys, monkeypatch):
    capsys.readouterr()
    for argv in (["--config", config, "sims", "list", "--format", "csv"],
                 ["sims", "list", "--format", "csv", "--config", config],
                 ["-c", config, "sims", "list", "--format", "csv"]):
        assert cli(argv) == 0
        assert capsys.readouterr().out.splitlines()[1].startswith("89882806660000000111,")
    monkeypatch.setenv("NCE_CONFIG", config)
    assert cli(["sims", "list", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("89882806660000000111,")
    # given on the command line, --config wins over NCE_CONFIG
    monkeypatch.setenv("NCE_CONFIG", "/nonexistent.toml")
    assert cli(["--config", config, "sims", "list", "--format", "csv"]) == 0
    capsys.readouterr()
    assert cli(["sims", "list"]) == 1
    assert capsys.readouterr().err == "error: config file /nonexistent.toml does not exist\n"


def test_tables_are_not_cut_when_piped(config):
    """A real pipe (not capsys): `nce-gateway sims list | grep 127.0.0.12` finds the SIM."""
    for argv, full in ((["sims", "list"], ("89882806660000000111", "356938035643809", LONG_LABEL)),
                       (["integrations", "list"], ("https://localhost:8443/a/path/long/enough/to/be/cut/in/a/narrow"
                                                   "/table",))):
        out = subprocess.run([sys.executable, "-m", "gateway", *argv, "--config", config], capture_output=True,
                             text=True, check=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin"}).stdout
        assert "…" not in out
        for value in full:
            assert value in out


def test_every_list_command_has_the_three_formats(config, capsys):
    capsys.readouterr()
    expected_csv = {
        ("sims", "list"): "iccid,imsi,ip_address,msisdn,imei,label,status",
        ("integrations", "list"): "name,kind,origin,state,queued,target",
        ("users", "list"): "userId,role,status,createdTime,lastLoginTime",
        ("template", "list"): "id,name,protocolFilter,status",
        ("lwm2m", "registrations"): "iccid,registration,address,lifetime,binding,version,expires",
    }
    for command, header in expected_csv.items():
        assert cli([*command, "--format", "csv", "--config", config]) == 0
        assert capsys.readouterr().out.splitlines()[0] == header
        assert cli([*command, "--format", "json", "--config", config]) == 0
        assert isinstance(json.loads(capsys.readouterr().out), list)
        assert cli([*command, "--config", config]) == 0
        assert capsys.readouterr().out.startswith("┏")  # a table
    assert cli(["integrations", "list", "--format", "json", "--config", config]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"name": "local-sink", "kind": "webhook", "origin": "config", "state": ROLLOUT_DONE, "queued": 0,
         "target": "https://localhost:8443/a/path/long/enough/to/be/cut/in/a/narrow/table"}]


def test_template_list_is_a_table(config, capsys):
    blueprint = str(ROOT / "examples" / "blueprint-template.json")
    assert cli(["template", "add", blueprint, "--name", "blueprint", "--protocol", "UDP", "--protocol", "COAP",
                "--config", config]) == 0
    template_id = capsys.readouterr().out.split(":")[0]
    assert cli(["template", "list", "--config", config]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [cell.strip() for cell in lines[3].strip("│").split("│")] == [template_id, "blueprint", "UDP, COAP",
                                                                         "INACTIVE"]
    assert lines[-1] == "1 template(s)"


def test_create_owner_makes_the_first_user_only(config, tmp_path, capsys):
    (tmp_path / "pw").write_text("a long enough password 1\n")
    assert cli(["users", "create-owner", "boss@example.com", "--password-file", str(tmp_path / "pw"),
                "--config", config]) == 0
    assert cli(["users", "create-owner", "other@example.com", "--password-file", str(tmp_path / "pw"),
                "--config", config]) == 1
    assert capsys.readouterr().err == (
        "error: this gateway already has an Owner (boss@example.com); create-owner makes the first user only: "
        "add another Owner with 'nce-gateway users add EMAIL --role Owner'\n")
    assert cli(["users", "add", "other@example.com", "--role", "Owner", "--password-file", str(tmp_path / "pw"),
                "--config", config]) == 0


def test_a_port_in_use_names_every_port_variable(tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        path = tmp_path / "g.toml"
        path.write_text(f'[store]\npath = "{tmp_path / "g.db"}"\n[udp]\nbind = "127.0.0.1"\nport = {port}\n'
                        "[coap]\nenabled = false\n[coaps]\nenabled = false\n[api]\nenabled = false\n")
        assert cli(["serve", "--config", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"error: cannot start: UDP 127.0.0.1:{port}: Address already in use; check the bind addresses and ports "
        "in the config (or NCE_UDP_PORT, NCE_COAP_PORT, NCE_COAPS_PORT, NCE_API_PORT)\n")
