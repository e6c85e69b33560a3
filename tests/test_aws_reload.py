"""Certificates re-read by AWS IoT Core (MQTT) integrations, against Debian's Mosquitto.

* a renewed client certificate written over the files of a connected integration: the
  connection is drained and opened again with it (the broker's log names the new identity),
  while events keep flowing: none lost, none failed, order kept;
* new files that cannot be used (a certificate without its key yet): the working connection
  stays, an ERROR event names the file; once the key follows, the new files are used;
* a wrong CA file fixed on disk, then ``nce-gateway integrations restart``: the new sender
  reads the fixed file and delivers what waited.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shutil
from pathlib import Path

import pytest
import trustme

from bench.mqtt_broker import Mosquitto, Pki, available
from gateway import events
from gateway.cli import main as cli
from integrators.base import INTEGRATION_FAILED
from tests.conftest import make_config, sim
from tests.test_aws_mqtt import NOW, Subscriber, aws, errors, wait_until

pytestmark = pytest.mark.skipif(not available(), reason="Debian's mosquitto is not installed")

ACL = """user gw-old
topic readwrite #
user gw-new
topic readwrite #
user subscriber
topic read #
"""

DEVICE = sim(25)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(pki: Pki, tmp_path: Path):
    (tmp_path / "broker").mkdir()
    mosquitto = Mosquitto(tmp_path / "broker", pki, acl=ACL, extra="log_type notice\n")
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def subscriber(broker: Mosquitto, pki: Pki):
    sub = Subscriber(broker, pki)
    yield sub
    sub.close()


def install(pki: Pki, identity: str, directory: Path, *, key: bool = True) -> None:
    """Write ``identity``'s certificate (and key) over the integration's files."""
    files = pki.client(identity)
    shutil.copyfile(files.cert_file, directory / "client.pem")
    if key:
        shutil.copyfile(files.key_file, directory / "client.key")


def identities(broker: Mosquitto) -> list[str]:
    """The user names (certificate CNs) of the gateway's connections, in the broker's log order."""
    names = []
    for line in broker.log.read_text().splitlines():
        if "New client connected" in line and "u'gw-" in line:
            names.append(line.split("u'", 1)[1].split("'", 1)[0])
    return names


def emit(gw, numbers: range) -> None:
    for n in numbers:
        gw.pipeline.emit(events.raw_telemetry(DEVICE, NOW + n, "UDP", f"reading-{n:02d}".encode(), None))


def readings(received: list[tuple[str, bytes]]) -> list[str]:
    return [base64.b64decode(json.loads(p)["payload"]["value"]).decode() for _t, p in received]


def counter(gw, name: str) -> float:
    return getattr(gw.metrics, name).labels("iot")._value.get()


async def start(start_gateway, tmp_path: Path, broker: Mosquitto, pki: Pki, **overrides):
    files = tmp_path / "files"
    config = make_config(tmp_path)
    config.aws_integrations = [aws(broker, pki, identity="", cert_file=str(files / "client.pem"),
                                   key_file=str(files / "client.key"), ca_file=str(files / "ca.pem"),
                                   event_types=["TELEMETRY_DATA"], publish_rate_limit=0,
                                   tls_check_seconds=0.1, **overrides)]
    gw = await start_gateway(config, [DEVICE])
    return gw, next(iter(gw.integrations.workers.values()))


async def test_renewed_certificate_on_disk_is_used_while_events_flow(tmp_path, broker, pki, subscriber,
                                                                    start_gateway, caplog):
    files = tmp_path / "files"
    files.mkdir()
    shutil.copyfile(pki.ca_file, files / "ca.pem")
    install(pki, "gw-old", files)
    gw, worker = await start(start_gateway, tmp_path, broker, pki)
    emit(gw, range(0, 5))
    await subscriber.wait_for(5)
    assert worker.sender.connections == 1
    with caplog.at_level(logging.INFO, logger="nce.aws"):
        install(pki, "gw-new", files)
        for n in range(5, 30):  # events keep coming while the connection is drained and renewed
            emit(gw, range(n, n + 1))
            await asyncio.sleep(0.01)
        received = await subscriber.wait_for(30)
        await wait_until(lambda: worker.sender.connections == 2)
    assert readings(received) == [f"reading-{n:02d}" for n in range(30)]  # all, in order, once
    await wait_until(lambda: counter(gw, "delivered") == 30)
    assert counter(gw, "retried") == 0  # the switch cost no failed attempt
    assert identities(broker) == ["gw-old", "gw-new"]
    assert worker.sender.tls.loads == 2
    assert [r.event for r in caplog.records if getattr(r, "event", "") == "aws_tls_reload"] == ["aws_tls_reload"]
    assert gw.store.events(event_type="ERROR") == []


async def test_unusable_new_files_keep_the_connection_until_they_are_complete(tmp_path, broker, pki, subscriber,
                                                                             start_gateway):
    files = tmp_path / "files"
    files.mkdir()
    shutil.copyfile(pki.ca_file, files / "ca.pem")
    install(pki, "gw-old", files)
    gw, worker = await start(start_gateway, tmp_path, broker, pki)
    await wait_until(lambda: worker.sender.connections == 1)
    install(pki, "gw-new", files, key=False)  # the certificate is renewed, its key not yet
    await wait_until(lambda: bool(gw.store.events(event_type="ERROR")))
    await gw.committer.flush()
    (error,) = errors(gw)
    assert error["error"]["message"] == "CloudIntegrator[CredentialsFailed]"
    assert error["error"]["description"] == (
        f"Integration iot: the changed TLS files cannot be used: key_file {files / 'client.key'} is not the key "
        f"of cert_file {files / 'client.pem'}")
    emit(gw, range(0, 3))  # still delivered over the working connection
    assert readings(await subscriber.wait_for(3)) == ["reading-00", "reading-01", "reading-02"]
    assert worker.sender.connections == 1 and identities(broker) == ["gw-old"]
    install(pki, "gw-new", files)  # the key follows
    await wait_until(lambda: worker.sender.connections == 2)
    emit(gw, range(3, 5))
    assert readings(await subscriber.wait_for(5))[3:] == ["reading-03", "reading-04"]
    assert identities(broker) == ["gw-old", "gw-new"]
    assert len(errors(gw)) == 1


async def test_fixed_ca_file_is_read_on_integrations_restart(tmp_path, broker, pki, subscriber, start_gateway):
    files = tmp_path / "files"
    files.mkdir()
    trustme.CA().cert_pem.write_to_path(str(files / "ca.pem"))  # not the broker's CA
    install(pki, "gw-old", files)
    # the old sender would try again only after 10 s or more: the restart is what reads the fix
    gw, worker = await start(start_gateway, tmp_path, broker, pki, retry_schedule=[0.1],
                             reconnect_min_seconds=20, reconnect_max_seconds=30)
    emit(gw, range(0, 3))
    await wait_until(lambda: worker.handle.state == INTEGRATION_FAILED)
    await gw.committer.flush()
    assert "the broker's certificate is not trusted" in errors(gw)[-1]["error"]["description"]
    shutil.copyfile(pki.ca_file, files / "ca.pem")
    toml = tmp_path / "cli.toml"
    toml.write_text(f'[store]\npath = "{gw.config.store.path}"\n')
    assert await asyncio.to_thread(cli, ["integrations", "restart", "iot", "--config", str(toml)]) == 0
    received = await subscriber.wait_for(3)
    assert readings(received) == ["reading-00", "reading-01", "reading-02"]
    (restarted,) = gw.integrations.workers.values()
    assert restarted is not worker and restarted.sender.connections == 1
    assert identities(broker) == ["gw-old"]
