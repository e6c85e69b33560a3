"""The SMPP client against a second, independent SMSC: the npm ``smpp`` package's server
(tests/smsc_node; ``npm ci`` there, .ci/run does). It checks passwords, which smpp34's server does
not, and speaks TLS: a wrong password is a clear error in /health, the metrics and the logs (the
password itself in none of them); TLS works with the configured CA file and fails without it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import make_config, sim

NODE_SMSC = Path(__file__).resolve().parent / "smsc_node"
pytestmark = pytest.mark.skipif(shutil.which("node") is None or not (NODE_SMSC / "node_modules" / "smpp").is_dir(),
                                reason="npm smpp not installed: run `npm ci` in tests/smsc_node (.ci/run does)")
SIM = dataclasses.replace(sim(10), msisdn="491700000010")
PASSWORD = "s3cr3t!x"


class NodeSmsc:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process, self.port = process, port
        self.lines: list[dict] = []

    async def next_event(self, timeout: float = 10.0) -> dict:
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        event = json.loads(line)
        self.lines.append(event)
        return event


@pytest.fixture
async def node_smsc():
    started: list[asyncio.subprocess.Process] = []

    async def _start(*tls_files: str, mute_enquire_link: bool = False) -> NodeSmsc:
        env = {**os.environ, "SMSC_MUTE_ENQUIRE_LINK": "1" if mute_enquire_link else "0"}
        process = await asyncio.create_subprocess_exec("node", str(NODE_SMSC / "smsc.js"), "nce-gw", PASSWORD,
                                                       *tls_files, stdout=asyncio.subprocess.PIPE, env=env)
        started.append(process)
        first = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))
        assert first["event"] == "listening"
        return NodeSmsc(process, first["port"])

    yield _start
    for process in started:
        process.terminate()
        await process.wait()


def config(tmp_path, port, **sms):
    values = {"enabled": True, "port": port, "system_id": "nce-gw", "password": PASSWORD,
              "reconnect_min_seconds": 0.2, "reconnect_max_seconds": 0.4}
    values.update(sms)
    return make_config(tmp_path, sms=values)


async def health(gateway) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{gateway.api_port}/health") as answer:
            return await answer.json()


async def wait_state(gateway, state: str) -> None:
    for _ in range(200):
        if gateway.sms.session.state == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"SMPP state {gateway.sms.session.state}, last error {gateway.sms.session.last_error}")


async def test_wrong_password_is_a_clear_error_and_never_logged(start_gateway, tmp_path, node_smsc, caplog):
    smsc = await node_smsc()
    caplog.set_level(logging.DEBUG)
    gateway = await start_gateway(config(tmp_path, smsc.port, password="wrong!!"), [SIM])
    assert (await smsc.next_event())["event"] == "bind_refused"
    await wait_state(gateway, "BIND_FAILED")
    report = (await health(gateway))["sms"]
    assert report["state"] == "BIND_FAILED"
    assert report["last_error"] == (f"bind_transceiver as 'nce-gw' refused by 127.0.0.1:{smsc.port}: "
                                    "ESME_RINVPASWD (0x0000000E): Invalid Password")
    metrics = gateway.metrics.render().decode()
    assert 'nce_smpp_state{state="BIND_FAILED"} 1.0' in metrics and 'nce_smpp_state{state="BOUND"} 0.0' in metrics
    assert (await smsc.next_event())["event"] == "bind_refused"  # tried again, with backoff
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "Invalid Password" in logged
    assert "wrong!!" not in logged and "wrong!!" not in repr(gateway.config) and "wrong!!" not in json.dumps(report)


async def test_right_password_binds_and_sends(start_gateway, tmp_path, node_smsc):
    smsc = await node_smsc()
    gateway = await start_gateway(config(tmp_path, smsc.port), [SIM])
    assert (await smsc.next_event())["event"] == "bound"
    await wait_state(gateway, "BOUND")
    from gateway.sms.mt import build_mt
    from gateway.sms.service import now_ms
    from inspector import sms as repo
    new = build_mt(SIM, {"payload": "hi node"}, default_source="", validity_hours=1, now_ms=now_ms())
    sms_id = await gateway.committer.write(repo.queue_mt, gateway.store, new, now_ms())
    gateway.sms.wake()
    event = await smsc.next_event()
    assert (event["event"], event["destination_addr"], event["message_id"]) == ("submit", SIM.msisdn, "N1")
    for _ in range(100):
        row = await gateway.read(repo.get_sms, gateway.store, SIM.iccid, sms_id)
        if row["status"] == "SENT":
            break
        await asyncio.sleep(0.05)
    assert row["status"] == "SENT"  # this SMSC sends no receipts: SENT is as far as it goes


async def test_enquire_link_keeps_the_link_and_detects_a_dead_one(start_gateway, tmp_path, node_smsc, caplog):
    caplog.set_level(logging.WARNING, logger="nce.sms.smpp")
    smsc = await node_smsc(mute_enquire_link=True)
    gateway = await start_gateway(config(tmp_path, smsc.port, enquire_link_seconds=0.3, response_timeout_seconds=0.5),
                                  [SIM])
    seen = [(await smsc.next_event())["event"] for _ in range(3)]
    assert seen == ["bound", "enquire_link", "bound"]  # unanswered: dropped and bound again
    for _ in range(100):
        if gateway.sms.session.binds == 2:
            break
        await asyncio.sleep(0.05)
    assert gateway.sms.session.binds == 2
    errors = [r.__dict__.get("error") for r in caplog.records if r.__dict__.get("event") == "smpp_disconnected"]
    assert errors[0] == "ConnectionLost: no enquire_link_resp within 0.5 s"


async def test_tls_with_the_configured_ca(start_gateway, tmp_path, node_smsc, ca, ca_file):
    cert, key = tmp_path / "smsc.pem", tmp_path / "smsc.key"
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    smsc = await node_smsc(str(cert), str(key))
    gateway = await start_gateway(config(tmp_path, smsc.port, tls=True, ca_file=ca_file), [SIM])
    assert (await smsc.next_event())["event"] == "bound"
    await wait_state(gateway, "BOUND")


async def test_tls_without_the_ca_fails_clearly(start_gateway, tmp_path, node_smsc, ca):
    cert, key = tmp_path / "smsc.pem", tmp_path / "smsc.key"
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    smsc = await node_smsc(str(cert), str(key))
    gateway = await start_gateway(config(tmp_path, smsc.port, tls=True), [SIM])
    for _ in range(200):
        if "CERTIFICATE_VERIFY_FAILED" in gateway.sms.session.last_error:
            break
        await asyncio.sleep(0.05)
    assert "certificate verify failed" in gateway.sms.session.last_error
    assert gateway.sms.session.state != "BOUND"
