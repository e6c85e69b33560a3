"""Several gateway processes on one PostgreSQL database (docs/operations.md, "PostgreSQL").

Real processes, as tests/test_workers.py runs them on SQLite: ``serve --workers 2`` and
independent ``serve`` processes standing for hosts (own UDP/CoAP/API ports, one database).
Leases give each duty to one process; a change made through one process's API or the CLI
reaches the others by NOTIFY, well before the (long) poll; a ``kill -9`` of the delivering
process loses no acknowledged message and delivery goes on in the other one; a PostgreSQL
restart under traffic acknowledges nothing that is not committed and both processes recover
by themselves.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bench.common import coap_gateway_config
from firmware_examples.coap_client import CoapClient
from gateway.duties import holder_pid
from gateway.transports.reuseport import worker_for
from inspector import leases
from inspector.store import open_store
from tests.conftest import assert_in_order_per_sim, post_numbered, sim
from tests.test_store_postgres_e2e import post_once
from tests.workers_support import ROOT, Supervised, free_udp_port, lease_holders

pytestmark = [pytest.mark.postgresql]


@pytest.fixture
def processes() -> Any:
    """Every gateway process a test starts: killed at the end if a failure left it running."""
    started: list[Supervised] = []
    yield started
    for gateway in started:
        gateway.kill()


def start(processes: list[Supervised], config: Path, workers: int) -> Supervised:
    gateway = Supervised(config, workers)
    processes.append(gateway)
    return gateway


def pg_store(url: str) -> Any:
    return open_store(url)


def hook(receiver: Any, ca_file: str) -> str:
    return f"""[[webhooks]]
name = "hook"
url = "{receiver.url}"
ca_file = "{ca_file}"
retry_schedule = [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
"""


def config_for(tmp_path: Path, name: str, url: str, extra: str) -> Path:
    ca_file = extra.split('ca_file = "', 1)[1].split('"', 1)[0] if 'ca_file = "' in extra else ""
    return coap_gateway_config(tmp_path, free_udp_port(), extra, name=name, synchronous="normal", store_url=url,
                               api=f'webhook_ca_file = "{ca_file}"' if ca_file else "")


def delivered(receiver: Any) -> set[str]:
    return {base64.b64decode(e["payload"]["value"]).decode() for e in receiver.events
            if e["type"] == "TELEMETRY_DATA"}


def post_timed(port: int, device: Any, stop: threading.Event, acked: list[tuple[str, float, float]]) -> None:
    """``post_numbered`` with the send and answer times of each acknowledged payload."""
    with CoapClient(("127.0.0.1", port), device.ip_address) as client:
        n = 0
        while not stop.is_set():
            payload = f"{device.iccid}-{n}"
            sent = time.monotonic()
            if client.post("/", payload.encode(), timeout=1.0).code == "2.04":
                acked.append((payload, sent, time.monotonic()))
            n += 1


async def wait_until(predicate: Any, timeout: float, what: str) -> float:
    """Seconds it took ``predicate()`` (a function or a coroutine function) to hold; fails after
    ``timeout``."""
    started = time.monotonic()
    while True:
        held = predicate()
        if asyncio.iscoroutine(held):
            held = await held
        if held:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, what
        await asyncio.sleep(0.01)


async def answers(port: int, device: Any) -> str:
    """The code answering one CON POST from the SIM (in a thread: the receiver runs on this loop)."""
    def post() -> str:
        with CoapClient(("127.0.0.1", port), device.ip_address) as client:
            return client.post("/", b"probe", timeout=0.5).code
    return await asyncio.to_thread(post)


async def _is(code: Any, want: str) -> bool:
    return await code == want


async def _is_not(code: Any, want: str) -> bool:
    return await code != want


# leases -----------------------------------------------------------------------------------

def test_the_lease_contract_holds_on_postgresql():
    import pg_support
    from tests.test_workers import check_lease_contract

    store = pg_store(pg_support.fresh_database())
    try:
        check_lease_contract(store)
    finally:
        store.close()


async def test_a_dead_holder_is_freed_early_only_on_this_host_else_its_lease_expires():
    """Liveness across hosts: a process id is only judged on its own host and PID namespace."""
    import pg_support
    from gateway.duties import Duties, new_holder

    store = pg_store(pg_support.fresh_database())
    me = new_holder()
    host, boot, namespace, _, _ = me.split(":")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    here, elsewhere = f"{host}:{boot}:{namespace}:{gone}:x", f"other-host:{boot}:{namespace}:{gone}:y"
    start = int(time.time() * 1000)
    assert store.write_with(leases.take, "retention", here, start, 60_000)
    assert store.write_with(leases.take, "delivery/1", elsewhere, start, 2_000)
    duties = Duties(store, 3.0, holder=me)
    duties.want("retention")
    duties.want("delivery/1")
    try:
        await duties.start()  # one round: the dead local holder is freed, the remote one is not
        assert duties.holds("retention") and not duties.holds("delivery/1")
        assert lease_holders(store) == {"retention": me, "delivery/1": elsewhere}
        await asyncio.sleep(max(0.0, (start + 2_100 - time.time() * 1000) / 1000))
        await duties.tick()  # the remote holder's lease expired: taken
        assert duties.holds("delivery/1") and lease_holders(store) == {"retention": me, "delivery/1": me}
    finally:
        await duties.stop()
    assert lease_holders(store) == {}
    store.close()


async def test_the_listener_wakes_the_follower_reconnects_by_itself_and_polling_covers_the_gap(caplog):
    """LISTEN in one process: a change wakes the follower (poll 60 s); the listening connection
    killed by the server: ``connected`` drops, polling is all meanwhile, and the listener is back
    by itself, first asking for one full check."""
    import logging

    import pg_support
    from gateway.follow import StoreFollower
    from inspector.store.pg_listen import ChangeListener

    url = pg_support.fresh_database()
    store = pg_store(url)
    store.upsert_sims([sim(25, status="Disabled")])
    seen = [store.sims_version()]  # the versions the "in-memory copy" was loaded at
    calls: list[str | None] = []

    async def reload() -> None:
        seen.append(store.sims_version())

    async def read(fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    follower = StoreFollower(read, 60.0)
    follower.follow("SIM registry", store.sims_version, lambda: seen[-1], reload)
    task = asyncio.create_task(follower.run())
    listener = ChangeListener(url, lambda key: (calls.append(key), follower.wake(key)), retry_seconds=0.2)
    caplog.set_level(logging.INFO, logger="nce.store")
    listener.start()
    try:
        await wait_until(lambda: listener.connected and calls == [None], 5, "not listening")
        store.update_sim(sim(25).iccid, status="Enabled")
        took = await wait_until(lambda: len(seen) == 2 and seen[-1] == store.sims_version(), 1.0,
                                "no wake-up by NOTIFY")
        assert "sims_version" in calls
        print(f"NOTIFY to reload in one process: {took * 1000:.0f} ms")

        listener.url = "postgresql://postgres@127.0.0.1:1/unreachable"  # it cannot come back for now
        admin = pg_store(url)  # the server ends the listening connection (as a restart or a proxy would)
        admin.connection().execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                   " WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()")
        admin.close()
        await wait_until(lambda: any(r.msg.startswith("not listening") for r in caplog.records), 5, "no listen_lost")
        assert not listener.connected
        follower.interval = 0.3  # polling is all now: a change arrives at the next poll
        follower.wake()
        await asyncio.sleep(0.1)
        store.update_sim(sim(25).iccid, status="Disabled")
        await wait_until(lambda: seen[-1] == store.sims_version(), 2.0, "polling did not cover the gap")
        assert not listener.connected and calls.count(None) == 1
        follower.interval = 60.0
        follower.wake()
        listener.url = url  # the server is reachable again: the listener is back by itself
        await wait_until(lambda: listener.connected and calls.count(None) == 2, 5, "did not listen again")
        assert sum(r.msg.startswith("not listening") for r in caplog.records) == 1  # once per outage
        await asyncio.sleep(0.1)
        store.update_sim(sim(25).iccid, status="Enabled")
        await wait_until(lambda: seen[-1] == store.sims_version(), 1.0, "no wake-up after the reconnect")
    finally:
        listener.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()
    assert not listener.connected


# changes reach every process ----------------------------------------------------------------

async def test_api_and_cli_changes_reach_every_process_by_notify_well_before_the_poll(tmp_path, receiver, ca_file,
                                                                                          processes):
    """Host A runs ``--workers 2``, host B one process; the poll interval is 60 s, so only
    NOTIFY can bring a change to the other processes within the asserted second."""
    import pg_support
    from inspector import accounts as store_accounts
    from tests.api_support import EMAILS, ApiClient, password_hash

    url = pg_support.fresh_database()
    devices = [sim(25, status="Disabled"), sim(26, status="Disabled")]
    assert sorted(worker_for(d.ip_address, 2) for d in devices) == [0, 1]  # one per worker of A
    store = pg_store(url)
    store.upsert_sims(devices)
    store_accounts.create_account(store, EMAILS["Admin"], password_hash(), "Admin")
    extra = "[registry]\npoll_interval_seconds = 60\n[process]\nlease_seconds = 3\n" + hook(receiver, ca_file)
    a = start(processes, config_for(tmp_path, "a", url, extra), 2)
    b = start(processes, config_for(tmp_path, "b", url, extra), 1)
    try:
        await a.wait_for_log('"event": "started"', 2)
        await a.wait_for_log('"event": "listen_started"', 2)
        await b.wait_for_log('"event": "listen_started"')
        http_a = await login(ApiClient, EMAILS["Admin"], a.api_port)
        http_b = await login(ApiClient, EMAILS["Admin"], b.api_port)
        token_of_a = ApiClient(f"http://127.0.0.1:{b.api_port}/management-api", http_a.token)
        assert (await token_of_a.get("/v1/sims")).status == 200  # a token issued by A is good on B
        for device in devices:
            assert await answers(a.coap_port, device) != "2.04" and await answers(b.coap_port, device) != "2.04"

        # SIMs: enabled through A's API, accepted by both workers of A and by B at once
        for device in devices:
            changed = await http_a.put(f"/v1/sims/{device.iccid}", json={"iccid": device.iccid, "status": "Enabled"})
            assert changed.status == 200, changed.body
        started = time.monotonic()
        for device in devices:
            await wait_until(lambda d=device: _is(answers(b.coap_port, d), "2.04"), 1.0, "B did not follow")
            await wait_until(lambda d=device: _is(answers(a.coap_port, d), "2.04"), 1.0, "A did not follow")
        latency = time.monotonic() - started
        assert latency < 1.0, latency  # the poll would take up to 60 s
        print(f"NOTIFY: 2 SIMs enabled through A's API, accepted by B and both workers of A after {latency * 1000:.0f} ms "
              "(4 probes included)")

        # PSKs and integrations: set through B's API, reloaded by both workers of A at once
        reloads = len(a.events("reloaded"))
        sent = time.monotonic()
        psk = await http_b.post(f"/v1/integrate/devices/{devices[0].iccid}/psk",
                                json={"secretKey": "pg-secret-key", "protocol": "COAP"})
        assert psk.status in (200, 201), psk.body
        created = await http_b.post("/v1/integrate/clouds/webhooks", json={
            "name": "api-hook", "url": receiver.url + "/api", "jsonPayloadEnabled": True, "headers": {},
            "eventTypes": [{"type": "TELEMETRY_DATA", "version": "1.0.0"}]})
        assert created.status == 201, created.body
        def reloaded_in_both_workers() -> bool:
            seen = {(e["what"], str(e.get("worker"))) for e in a.events("reloaded")[reloads:]}
            return all(len({w for what, w in seen if what == name}) == 2 for name in ("PSKs", "integrations"))
        await wait_until(reloaded_in_both_workers, 1.0, f"A did not reload: {a.events('reloaded')[reloads:]}")
        assert time.monotonic() - sent < 1.5

        # a message stored by B is seen through A's API, and routed to the integration made on B
        assert await answers(b.coap_port, devices[1]) == "2.04"
        seen = await http_a.get(f"/v1/inspect/devices/{devices[1].iccid}/telemetry")
        assert seen.status == 200 and seen.body["state"]["COAP"]["payload"] == base64.b64encode(b"probe").decode()
        await wait_until(lambda: any(path.startswith("/hook/api") for path, _ in receiver.requests), 10,
                         "the integration made through B's API got nothing")

        # the CLI: in force in A's workers (control sockets) and in B when the command returns
        command = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "gateway", "sims", "set-status", devices[0].iccid, "Disabled",
                             "--config", str(tmp_path / "b.toml")], cwd=ROOT, capture_output=True, text=True,
            timeout=30)
        assert command.returncode == 0 and "did not confirm" not in command.stderr, command.stderr
        assert await answers(b.coap_port, devices[0]) != "2.04"
        assert await answers(a.coap_port, devices[0]) != "2.04"

        # once-only duties: each lease has one holder, and the three processes share them
        holders = lease_holders(store)
        ids = sorted(row["id"] for row in store.list_integrations())  # identities: PostgreSQL skips some
        assert len(ids) == 2 and set(holders) == {"retention", *(f"delivery/{i}" for i in ids)}, holders
    finally:
        assert a.stop() == 0
        assert b.stop() == 0
    assert lease_holders(store) == {}  # a clean stop hands every lease back
    store.close()


async def login(api_client: Any, email: str, port: int) -> Any:
    base = f"http://127.0.0.1:{port}/management-api"
    answer = await api_client(base).login(email)
    assert answer.status == 200, answer.body
    return api_client(base, answer.body["access_token"])


# failures -------------------------------------------------------------------------------------

async def test_kill_9_of_the_delivering_process_loses_nothing_and_the_other_delivers_on(tmp_path, receiver, ca_file,
                                                                                        processes):
    """Two gateway processes (two hosts) under load; the one holding ``delivery/1`` is killed."""
    import pg_support

    url = pg_support.fresh_database()
    devices = [sim(n) for n in range(25, 33)]
    store = pg_store(url)
    store.upsert_sims(devices)
    extra = "[process]\nlease_seconds = 3\n[registry]\npoll_interval_seconds = 0.5\n" + hook(receiver, ca_file)
    a = start(processes, config_for(tmp_path, "a", url, extra), 1)
    b = start(processes, config_for(tmp_path, "b", url, extra), 1)
    gateways = {a.process.pid: a, b.process.pid: b}
    try:
        holders = lease_holders(store)
        assert set(holders) == {"retention", "delivery/1"}
        delivering = gateways[holder_pid(holders["delivery/1"])]
        other = b if delivering is a else a
        acked: list[str] = []
        stop = threading.Event()
        # a balancer: half the SIMs on each host
        threads = [threading.Thread(target=post_numbered, args=((a, b)[i % 2].coap_port, d, stop, acked))
                   for i, d in enumerate(devices)]
        for thread in threads:
            thread.start()
        try:
            await wait_until(lambda: len(acked) >= 200, 20, "no load")
            os.kill(delivering.process.pid, signal.SIGKILL)
            delivering.process.wait(10)
            killed_at = len(acked)
            moved = await wait_until(lambda: holder_pid(lease_holders(store).get("delivery/1", "")) == other.process.pid,
                                     5, "the delivery lease did not move")  # a renewal round: 1 s; expiry: 3 s
            await wait_until(lambda: len(acked) >= killed_at + 100, 20, "the other process stopped acknowledging")
        finally:
            stop.set()
            for thread in threads:
                await asyncio.to_thread(thread.join)
        acknowledged = set(acked)
        stored = {m["payload"].decode() for m in store.messages(limit=10**6)}
        assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged messages were lost"
        await wait_until(lambda: acknowledged <= delivered(receiver), 20,
                         f"{len(acknowledged - delivered(receiver))} acknowledged never delivered")
        assert holder_pid(lease_holders(store)["delivery/1"]) == other.process.pid  # the lease moved
        print(f"kill -9: lease moved after {moved:.2f} s; {killed_at} acknowledged before the kill, "
              f"{len(acknowledged)} in all, all stored and "
              f"delivered; {len(receiver.of_type('TELEMETRY_DATA')) - len(delivered(receiver))} delivered twice")
        assert_in_order_per_sim(receiver.events, devices)
        assert other.stop() == 0  # the survivor stops cleanly (the fixture kills what a failure left)
    finally:
        store.close()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_postgresql_restart_under_two_processes_acknowledges_nothing_uncommitted_and_both_recover(
        tmp_path, receiver, ca_file, processes, mode):
    """The server is stopped (``pg_ctl -m fast``, or ``immediate``: a crash, WAL recovery at the
    start) under traffic to both processes and started again: no answer 2.04 while it is down;
    afterwards both acknowledge, store and deliver again, and LISTEN is back, without restarting
    a gateway."""
    import pg_support

    url = pg_support.fresh_database()
    devices = [sim(n) for n in range(25, 31)]
    probes = [sim(40), sim(41)]  # libcoap's one-try POSTs while the server is down
    store = pg_store(url)
    store.upsert_sims(devices + probes)
    store.close()
    extra = "[process]\nlease_seconds = 3\n[registry]\npoll_interval_seconds = 60\n" + hook(receiver, ca_file)
    a = start(processes, config_for(tmp_path, "a", url, extra), 1)
    b = start(processes, config_for(tmp_path, "b", url, extra), 1)
    acked: list[tuple[str, float, float]] = []
    stop = threading.Event()
    threads = [threading.Thread(target=post_timed, args=((a, b)[i % 2].coap_port, d, stop, acked))
               for i, d in enumerate(devices)]
    try:
        await a.wait_for_log('"event": "listen_started"')
        await b.wait_for_log('"event": "listen_started"')
        for thread in threads:
            thread.start()
        await wait_until(lambda: len(acked) >= 100, 20, "no load")
        await asyncio.to_thread(pg_support.server_down, mode)
        down_at = time.monotonic()
        if shutil.which("coap-client-notls"):  # libcoap, one try each: no 2.04 from either process
            outs = await asyncio.gather(*(post_once(probe.ip_address, f"coap://127.0.0.1:{g.coap_port}/?t=pg/down",
                                                    f"while down {k}", 2)
                                          for k, (g, probe) in enumerate(((a, probes[0]), (b, probes[1])))))
            assert not any("c:2.04" in out for out in outs), outs
        else:
            await asyncio.sleep(2.0)
        up_at = time.monotonic()
        await asyncio.to_thread(pg_support.server_up)
        back_at = time.monotonic()
        # a request sent after the server was down and answered before it was started again
        # could only have been acknowledged without its commit
        assert [p for p, sent, answered in acked if sent > down_at and answered < up_at] == []
        for gateway in (a, b):
            port = gateway.coap_port
            count = lambda port=port: sum(  # noqa: E731
                1 for p, sent, _ in acked if sent > back_at and p.rsplit("-", 1)[0] in
                {d.iccid for i, d in enumerate(devices) if (a, b)[i % 2].coap_port == port})
            await wait_until(lambda count=count: count() >= 20, 30, "a process did not acknowledge again")
        first_after = min(answered for _, _, answered in acked if answered > back_at) - back_at
        print(f"restart ({mode}): {sum(1 for _, _, t in acked if t < down_at)} acknowledged before the stop; answered "
              f"while it was down: {sum(1 for _, s, t in acked if down_at <= t < up_at)} (each sent before the stop "
              f"and stored), while it started: {sum(1 for _, _, t in acked if up_at <= t < back_at)}; "
              f"first acknowledgement {first_after:.2f} s after pg_ctl start returned")
    finally:
        stop.set()
        for thread in threads:
            if thread.ident is not None:  # started
                await asyncio.to_thread(thread.join)
    try:
        acknowledged = {p for p, _, _ in acked}
        store = pg_store(url)
        stored = [m["payload"].decode() for m in store.messages(limit=10**6)]
        assert acknowledged <= set(stored), f"{len(acknowledged - set(stored))} acknowledged were not stored"
        # unanswered; stored at most once if libcoap's one try got through after all
        assert stored.count("while down 0") <= 1 and stored.count("while down 1") <= 1
        await wait_until(lambda: acknowledged <= delivered(receiver), 30,
                         f"{len(acknowledged - delivered(receiver))} acknowledged never delivered")
        assert_in_order_per_sim(receiver.events, devices)
        holders = lease_holders(store)  # the duties are held again, by the two gateways only
        assert set(holders) == {"retention", "delivery/1"}, holders
        assert {holder_pid(h) for h in holders.values()} <= {a.process.pid, b.process.pid}
        # both processes noticed the LISTEN connection go and come back by themselves
        for gateway in (a, b):
            await gateway.wait_for_log('"event": "listen_lost"')
            await gateway.wait_for_log('"event": "listen_started"', 2, timeout=10)
        # and NOTIFY works again: a change reaches both at once (the poll is 60 s)
        store.update_sim(devices[0].iccid, status="Disabled")
        for gateway in (a, b):
            await wait_until(lambda port=gateway.coap_port: _is_not(answers(port, devices[0]), "2.04"), 1.0,
                             "a change after the restart did not arrive by NOTIFY")
        store.close()
    finally:
        assert a.stop() == 0
        assert b.stop() == 0
