"""Several gateway processes on one host (gateway/supervisor.py, docs/operations.md).

Real sockets on loopback, a real supervisor with real worker processes: the reuseport
program sends every source address to one socket; leases give each duty to one process; a
``kill -9`` of the worker that delivers loses no acknowledged message, the supervisor
restarts it and delivery goes on in order; a CLI change is in force in every worker when the
command returns.
"""

from __future__ import annotations

import asyncio
import base64
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.common import coap_gateway_config
from firmware_examples.coap_client import CoapClient
from gateway.duties import dead_local_holder, holder_pid, new_holder
from gateway.transports.reuseport import bind_group, program, worker_for
from inspector import leases
from inspector.sqlite import SqliteStore
from tests.conftest import assert_in_order_per_sim, post_numbered, sim
from tests.workers_support import ROOT, Supervised, free_udp_port, lease_holders


# leases ------------------------------------------------------------------------------------

def test_a_lease_has_one_holder_until_it_expires_or_is_released(tmp_path):
    check_lease_contract(SqliteStore(tmp_path / "leases.db"))


def check_lease_contract(store: Any) -> None:
    """inspector/leases.py's contract on one backend (tests/test_workers_postgres.py: PostgreSQL)."""
    take = lambda holder, now: store.write_with(leases.take, "retention", holder, now, 1000)  # noqa: E731
    assert take("a", 10_000) is True
    assert take("b", 10_500) is False  # held by a
    assert take("a", 10_900) is True  # a renews: until 11_900
    assert take("b", 11_800) is False
    assert store.read_with(leases.holder_of, "retention", 11_800) == "a"
    assert take("b", 11_901) is True  # a stopped renewing: expired, b takes it
    assert store.read_with(leases.holder_of, "retention", 11_901) == "b"
    assert store.write_with(leases.release, "retention", "a") is False  # a late release frees nothing
    assert store.write_with(leases.release, "retention", "b") is True
    assert store.read_with(leases.holder_of, "retention", 11_902) is None
    assert take("a", 11_903) is True
    store.write_with(leases.take, "delivery/1", "a", 11_903, 1000)
    assert store.write_with(leases.release_all, "a") == 2
    assert store.read_with(leases.holders) == []
    with pytest.raises(ValueError):
        store.write_with(leases.take, "x", "a", 0, 0)


# reuseport --------------------------------------------------------------------------------

def test_each_source_address_always_reaches_the_same_socket():
    workers = 3
    socks = bind_group("127.0.0.1", 0, workers)
    port = socks[0].getsockname()[1]
    try:
        sent = 0
        for n in range(1, 41):  # 40 addresses, 4 source ports each
            for _ in range(4):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                    client.bind((f"127.0.0.{n}", 0))
                    client.sendto(f"127.0.0.{n}".encode(), ("127.0.0.1", port))
                    sent += 1
        received: dict[int, list[str]] = {k: [] for k in range(workers)}
        deadline = time.monotonic() + 5
        while sum(map(len, received.values())) < sent and time.monotonic() < deadline:
            readable, _, _ = select.select(socks, [], [], 0.5)
            for sock in readable:
                data, (ip, _port) = sock.recvfrom(100)
                assert data.decode() == ip
                received[socks.index(sock)].append(ip)
        assert sum(map(len, received.values())) == sent
        for k, ips in received.items():
            assert ips, f"socket {k} got nothing"
            assert {worker_for(ip, workers) for ip in ips} == {k}, f"socket {k} got {sorted(set(ips))}"
            assert all(ips.count(ip) == 4 for ip in ips)  # every port of an address: one socket
    finally:
        for sock in socks:
            sock.close()


def test_the_program_is_the_python_hash():
    assert program(2)[-2] == (0x94, 0, 0, 2)  # A %= workers
    assert worker_for("127.0.0.1", 1) == 0
    assert {worker_for(f"10.0.{i}.{j}", 4) for i in range(4) for j in range(64)} == {0, 1, 2, 3}
    with pytest.raises(ValueError):
        program(0)


# the supervisor and its workers ---------------------------------------------------------------

async def test_kill_9_of_the_delivering_worker_loses_nothing_and_delivery_goes_on(tmp_path, receiver, ca_file):
    devices = [sim(n) for n in range(25, 33)]
    assert {worker_for(d.ip_address, 2) for d in devices} == {0, 1}  # both workers receive
    port = free_udp_port()
    config = coap_gateway_config(tmp_path, port, f"""[process]
lease_seconds = 3
[registry]
poll_interval_seconds = 0.2
[[webhooks]]
name = "hook"
url = "{receiver.url}"
ca_file = "{ca_file}"
retry_schedule = [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
""", name="gateway", synchronous="normal")
    db = tmp_path / "gateway.db"
    SqliteStore(db).upsert_sims(devices)
    gateway = Supervised(config, 2)
    try:
        await gateway.wait_for_log('"event": "started"', 2)
        holders = lease_holders(db)
        assert set(holders) == {"retention", "delivery/1"}
        delivering = holder_pid(holders["delivery/1"])
        acked: list[str] = []
        stop = threading.Event()
        threads = [threading.Thread(target=post_numbered, args=(port, d, stop, acked)) for d in devices]
        for thread in threads:
            thread.start()
        try:
            while len(acked) < 200:
                await asyncio.sleep(0.05)
            os.kill(delivering, signal.SIGKILL)
            await gateway.wait_for_log('"event": "worker_died"')
            await gateway.wait_for_log('"event": "started"', 3)  # the supervisor restarted it
            count = len(acked)
            while len(acked) < count + 100:  # both workers acknowledge again
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            for thread in threads:
                await asyncio.to_thread(thread.join)
        acknowledged = set(acked)
        assert {p.rsplit("-", 1)[0] for p in acknowledged} == {d.iccid for d in devices}

        store = SqliteStore(db)
        stored = {m["payload"].decode() for m in store.messages(limit=10**6)}
        store.close()
        assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged messages were lost"

        def delivered() -> set[str]:
            return {base64.b64decode(e["payload"]["value"]).decode() for e in receiver.events
                    if e["type"] == "TELEMETRY_DATA"}
        deadline = time.monotonic() + 20
        while not acknowledged <= delivered() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert acknowledged <= delivered(), f"{len(acknowledged - delivered())} acknowledged never delivered"
        assert holder_pid(lease_holders(db)["delivery/1"]) != delivering  # the lease moved
        assert_in_order_per_sim(receiver.events, devices)
    finally:
        assert gateway.stop() == 0
    assert lease_holders(db) == {}  # a clean stop hands every lease back
    assert any('"event": "worker_died"' in line and '"code": -9' in line for line in gateway.lines)


async def test_a_cli_change_is_in_force_in_every_worker_when_the_command_returns(tmp_path):
    """(and one SMPP session for the two workers: the ``sms`` lease)"""
    from tests.smsc import Smsc, free_port

    devices = [sim(n, status="Disabled") for n in (25, 26, 27, 28)]
    assert {worker_for(d.ip_address, 2) for d in devices} == {0, 1}
    port = free_udp_port()
    smsc = Smsc(free_port())
    await smsc.start()
    config = coap_gateway_config(tmp_path, port, f"""[registry]
poll_interval_seconds = 60
[sms]
enabled = true
port = {smsc.port}
system_id = "nce-gw"
password = "secret"
""", name="gateway", synchronous="normal")
    SqliteStore(tmp_path / "gateway.db").upsert_sims(devices)
    gateway = Supervised(config, 2)
    try:
        await gateway.wait_for_log('"event": "started"', 2)
        deadline = time.monotonic() + 10
        while not smsc.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(smsc.sessions) == 1
        for device in devices:
            with CoapClient(("127.0.0.1", port), device.ip_address) as client:
                assert client.post("/", b"before", timeout=2.0).code != "2.04"
            command = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "gateway", "sims", "set-status", device.iccid, "Enabled",
                                 "--config", str(config)], cwd=ROOT, capture_output=True, text=True, timeout=30)
            assert command.returncode == 0, command.stderr
            assert "did not confirm" not in command.stderr
            with CoapClient(("127.0.0.1", port), device.ip_address) as client:
                assert client.post("/", b"after", timeout=2.0).code == "2.04"  # no 60 s poll needed
        assert len(smsc.sessions) == 1  # still one SMPP session
    finally:
        assert gateway.stop() == 0
        await smsc.stop()


async def test_lwm2m_registrations_actions_and_integration_tests_through_the_api_of_any_worker(
        tmp_path, receiver, ca_file):
    from firmware_examples.lwm2m_client import LwM2MClient
    from inspector import accounts as store_accounts
    from tests.api_support import EMAILS, ApiClient, password_hash

    devices = [sim(25), sim(26)]
    assert sorted(worker_for(d.ip_address, 2) for d in devices) == [0, 1]
    port = free_udp_port()
    config = coap_gateway_config(tmp_path, port, f"""[[webhooks]]
name = "hook"
url = "{receiver.url}"
ca_file = "{ca_file}"
""", name="gateway", synchronous="normal")
    store = SqliteStore(tmp_path / "gateway.db")
    store.upsert_sims(devices)
    store_accounts.create_account(store, EMAILS["Admin"], password_hash(), "Admin")
    store.close()
    gateway = Supervised(config, 2)
    clients = []
    try:
        await gateway.wait_for_log('"event": "started"', 2)
        api_port = gateway.api_port
        base = f"http://127.0.0.1:{api_port}/management-api"
        login = await ApiClient(base).login(EMAILS["Admin"])
        assert login.status == 200, login.body
        http = ApiClient(base, login.body["access_token"])  # a new connection per request: any worker
        store = SqliteStore(tmp_path / "gateway.db")
        uuid = store.list_integrations()[0]["uuid"]
        store.close()
        for _ in range(6):
            tested = await http.post(f"/v1/integrate/clouds/webhooks/{uuid}/test")
            assert tested.status == 200 and tested.body["testStatus"] == "SUCCESS", tested.body
        assert len(receiver.of_type("TEST_MESSAGE")) == 6
        for device in devices:
            client = await LwM2MClient.start(device.iccid, device.ip_address)
            clients.append(client)
            await client.register(f"coap://127.0.0.1:{port}")
        for round_ in range(4):
            for device in devices:
                got = await http.get(f"/v1/integrate/devices/{device.iccid}/registration")
                assert got.status == 200 and got.body["endpoint"] == device.iccid, got.body
                posted = await http.post(f"/v1/integrate/devices/{device.iccid}/actions/LWM2M",
                                         json={"action": "read", "resourceAddress": "/3/0/0"})
                assert posted.status == 202, posted.body
                deadline = time.monotonic() + 10
                while True:
                    got = await http.get(f"/v1/integrate/devices/actions/requests/{posted.body['id']}")
                    if got.body["status"] in ("SUCCEEDED", "FAILED") or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.1)
                assert got.body["status"] == "SUCCEEDED", got.body
                assert got.body["resultData"]["value"] == {"/3/0/0": "nce-gateway"}
        # /metrics from whichever worker a connection reaches: both workers' series every time
        for _ in range(4):
            async with aiohttp.ClientSession() as session:  # a new connection: any worker takes it
                async with session.get(f"http://127.0.0.1:{api_port}/metrics") as answer:
                    scraped = await answer.text()
            families = {f.name: f for f in text_string_to_metric_families(scraped)}
            up = {s.labels["worker"]: s.value for s in families["nce_worker_scrape_up"].samples}
            coap = {s.labels["worker"]: s.value for s in families["nce_uplink_received"].samples
                    if s.name == "nce_uplink_received_total" and s.labels["protocol"] == "COAP"}
            assert up == {"0": 1.0, "1": 1.0} and set(coap) == {"0", "1"}, (up, coap)
            assert min(coap.values()) > 0  # each worker received its device's LwM2M traffic
    finally:
        for client in clients:
            await client.close()
        assert gateway.stop() == 0


def test_a_worker_that_keeps_dying_is_restarted_later_and_later(tmp_path):
    from gateway.config import load_config
    from gateway.supervisor import Supervisor

    config = load_config(environ={})
    config.store.path = str(tmp_path / "gateway.db")
    for section in ("udp", "coap", "coaps", "api"):
        getattr(config, section).enabled = False
    config.process.restart_delay_seconds = 0.5
    config.process.restart_delay_max_seconds = 2.0
    supervisor = Supervisor(config, 2, argv=[sys.executable, "-c", "import os, sys; "
                                             "sys.exit(0 if os.environ['NCE_WORKER'] == '1/2' else 3)"])
    slot = supervisor.slots[0]
    delays = []
    for _ in range(4):
        supervisor.start(slot)
        assert slot.process is not None and slot.process.wait(10) == 3
        supervisor._reap(slot, time.monotonic())
        delays.append(slot.delay)
    assert delays == [0.5, 1.0, 2.0, 2.0] and slot.restarts == 4 and slot.process is None
    supervisor.bound.close()


async def test_a_duty_moves_when_its_holder_stops_renewing_and_is_given_up_when_the_store_stalls(tmp_path):
    from gateway.duties import Duties

    store = SqliteStore(tmp_path / "duties.db")
    calls: list[tuple[str, str]] = []
    first, second = Duties(store, 0.6, holder="h:b:n:1:a"), Duties(store, 0.6, holder="h:b:n:1:b")
    for duties, who in ((first, "a"), (second, "b")):
        duties.want("retention", gained=lambda name, who=who: calls.append((who, "gained")),
                    lost=lambda name, who=who: calls.append((who, "lost")))
    await first.start()
    await second.start()
    assert calls == [("a", "gained")] and first.holds("retention") and not second.holds("retention")
    await first.halt()  # a holder that hangs: no renewal, no release
    await asyncio.sleep(1.0)
    assert calls == [("a", "gained"), ("b", "gained")] and second.holds("retention")

    # the store stalls (another connection holds the write lock): the holder gives the duty up
    # within two thirds of the lease, although its renewal is still waiting
    blocker = __import__("sqlite3").connect(tmp_path / "duties.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    while ("b", "lost") not in calls:
        assert time.monotonic() - started < 2.0, calls
        await asyncio.sleep(0.02)
    assert not second.holds("retention")
    blocker.execute("ROLLBACK")
    blocker.close()
    await asyncio.sleep(0.6)
    assert calls[-1] == ("b", "gained")  # renewed once the store answers: the duty is back
    await second.stop()
    await first.stop()
    assert store.read_with(leases.holders) == []


def test_bad_worker_counts_are_refused_clearly(tmp_path, capsys):
    from gateway.cli import main as cli
    from gateway.config import ConfigError, ProcessConfig, load_config, worker_count

    assert cli(["serve", "--workers", "300"]) == 1
    assert capsys.readouterr().err == "error: --workers 300: not between 0 (one per core) and 256\n"
    path = tmp_path / "g.toml"
    path.write_text("[process]\nworkers = -1\n")
    with pytest.raises(ConfigError, match=r"process.workers: -1 is not between 0 \(one per core\) and 256"):
        load_config(path, environ={})
    path.write_text("[process]\nlease_seconds = 0.5\n")
    with pytest.raises(ConfigError, match="process.lease_seconds must be at least 1"):
        load_config(path, environ={})
    assert load_config(environ={}).process.workers == 0  # the default: one per core
    assert worker_count(ProcessConfig(workers=0)) == len(os.sched_getaffinity(0))
    assert worker_count(ProcessConfig(workers=3)) == 3


def test_a_holder_is_judged_dead_only_on_this_host_and_in_this_pid_namespace():
    me = new_holder()
    host, boot, namespace, pid, _ = me.split(":")
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(child.stdout)
    assert holder_pid(me) == os.getpid() == int(pid)
    assert dead_local_holder(f"{host}:{boot}:{namespace}:{gone}:x", me) is True
    assert dead_local_holder(f"{host}:{boot}:{namespace}:{os.getppid()}:x", me) is False  # alive
    assert dead_local_holder(f"{host}:{boot}:other:{gone}:x", me) is False  # another container
    assert dead_local_holder(f"other-host:{boot}:{namespace}:{gone}:x", me) is False
    assert dead_local_holder(me, me) is False and dead_local_holder("garbage", me) is False
