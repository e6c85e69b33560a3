"""RADIUS accounting from FreeRADIUS's radclient (the mobile core's stand-in) into the gateway:
binding, uplinks from the bound address, moves, counters, refusals."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket

import pytest
from pyrad import packet as rp

from gateway.connectivity.radius import dictionary
from inspector import bindings
from tests.conftest import sim, webhook
from tests.radius_support import SECRET, attributes, needs_radclient, radclient, radius_config, sample

pytestmark = needs_radclient

A, B = sim(10), sim(11)


async def start(tmp_path, start_gateway, **sections):
    return await start_gateway(radius_config(tmp_path, **sections), [A, B])


async def coap_post(source: str, port: int, payload: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "coap-client-notls", "-B", "5", "-a", source, "-m", "post", "-e", payload, f"coap://127.0.0.1:{port}/",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    return out.decode("utf-8", "replace")


@pytest.mark.skipif(shutil.which("coap-client-notls") is None, reason="coap-client-notls missing: apt-get install libcoap3-bin")
async def test_start_binds_and_the_next_coap_uplink_from_that_address_is_the_sim(tmp_path, start_gateway):
    gw = await start(tmp_path, start_gateway)
    assert gw.registry.sim_for_ip("127.0.0.77") is None
    rc, out = await radclient(gw.radius_port, attributes("Start", A.imsi, "127.0.0.77"))
    assert rc == 0 and "Received Accounting-Response" in out
    # answered means durable and visible
    assert gw.registry.enabled_sim_for_ip("127.0.0.77").iccid == A.iccid
    assert bindings.get(gw.store.connection(), A.iccid).ip_address == "127.0.0.77"
    await coap_post("127.0.0.77", gw.coap_port, "hello")
    await gw.committer.flush()
    telemetry = gw.store.events(event_type="TELEMETRY_DATA")
    assert len(telemetry) == 1
    assert telemetry[0]["device"] == {"iccid": A.iccid, "imsi": A.imsi, "ip": "127.0.0.77"}
    # Stop unbinds: the next datagram from that address is nobody's
    rc, _ = await radclient(gw.radius_port, attributes("Stop", A.imsi, "127.0.0.77"))
    assert rc == 0
    assert gw.registry.sim_for_ip("127.0.0.77") is None
    assert gw.registry.sim_for_ip(A.ip_address).iccid == A.iccid  # static address in force again
    await coap_post("127.0.0.77", gw.coap_port, "again")
    await gw.committer.flush()
    assert len(gw.store.events(event_type="TELEMETRY_DATA")) == 1


async def test_address_moves_to_another_sim_and_udp_follows(tmp_path, start_gateway):
    gw = await start(tmp_path, start_gateway)
    assert (await radclient(gw.radius_port, attributes("Start", A.imsi, "127.0.0.88", session="a1")))[0] == 0
    assert (await radclient(gw.radius_port, attributes("Start", B.imsi, "127.0.0.88", session="b1")))[0] == 0
    assert gw.registry.sim_for_ip("127.0.0.88").iccid == B.iccid
    assert gw.registry.bound_address(A.iccid) is None
    assert bindings.get(gw.store.connection(), A.iccid).ip_address is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.88", 0))
        s.sendto(b"moved", ("127.0.0.1", gw.udp_port))
    for _ in range(100):
        await gw.committer.flush()
        if gw.store.events(event_type="TELEMETRY_DATA"):
            break
        await asyncio.sleep(0.02)
    [event] = gw.store.events(event_type="TELEMETRY_DATA")
    assert event["device"]["iccid"] == B.iccid and event["device"]["ip"] == "127.0.0.88"
    # a late Stop of A's old session must not unbind anything
    assert (await radclient(gw.radius_port, attributes("Stop", A.imsi, "127.0.0.88", session="a1")))[0] == 0
    assert gw.registry.sim_for_ip("127.0.0.88").iccid == B.iccid


async def test_interim_counters_with_gigawords_wrap(tmp_path, start_gateway):
    gw = await start(tmp_path, start_gateway)
    await radclient(gw.radius_port, attributes("Start", A.imsi, "127.0.0.90"))
    await radclient(gw.radius_port, attributes("Interim-Update", A.imsi, "127.0.0.90",
                                               Acct_Input_Octets=4294967000, Acct_Output_Octets=1000))
    # the input counter wrapped: 1 gigaword + 100 octets
    await radclient(gw.radius_port, attributes("Interim-Update", A.imsi, "127.0.0.90", Acct_Input_Octets=100,
                                               Acct_Input_Gigawords=1, Acct_Output_Octets=1500))
    day = gw.store.read_with(bindings.daily_usage, A.iccid, "2000-01-01", "2999-12-31")
    assert [(rx, tx) for _, rx, tx in day] == [(1500, (1 << 32) + 100)]
    row = bindings.get(gw.store.connection(), A.iccid)
    assert (row.input_octets, row.output_octets) == ((1 << 32) + 100, 1500)
    quota = gw.store.read_with(bindings.quotas, A.iccid)[(A.iccid, "data")]
    assert quota["used"] == (1 << 32) + 100 + 1500
    assert sample(gw.metrics.radius_requests, status="Interim-Update") == 2


async def test_wrong_secret_is_dropped_and_counted(tmp_path, start_gateway):
    gw = await start(tmp_path, start_gateway)
    rc, out = await radclient(gw.radius_port, attributes("Start", A.imsi, "127.0.0.91"), secret="wrong", timeout=0.5)
    assert rc != 0 and "Received" not in out
    assert gw.registry.sim_for_ip("127.0.0.91") is None
    assert sample(gw.metrics.radius_dropped, reason="bad_authenticator") == 1  # radclient -r 1: one try


async def test_unknown_imsi_is_answered_counted_never_bound(tmp_path, start_gateway):
    gw = await start(tmp_path, start_gateway)
    rc, out = await radclient(gw.radius_port, attributes("Start", "001010123456789", "127.0.0.92"))
    assert rc == 0 and "Received Accounting-Response" in out
    assert gw.registry.sim_for_ip("127.0.0.92") is None
    assert sample(gw.metrics.radius_unknown_imsi) == 1
    assert gw.store.read_with(bindings.load_all) == []


def acct_request(imsi: str, ip: str, *, secret: str = SECRET, message_authenticator: bool = False) -> bytes:
    pkt = rp.AcctPacket(rp.AccountingRequest, 7, secret.encode(), dict=dictionary())
    pkt["Acct-Status-Type"] = 1
    pkt["3GPP-IMSI"] = imsi
    pkt["Framed-IP-Address"] = ip
    pkt["Acct-Session-Id"] = "raw-1"
    if message_authenticator:
        pkt.add_message_authenticator()
    return pkt.RequestPacket()


async def exchange(port: int, datagrams: list[bytes], wait: float = 1.0) -> list[bytes]:
    """Send datagrams from one socket; the answers received within ``wait``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        loop = asyncio.get_running_loop()
        answers = []
        for data in datagrams:
            s.sendto(data, ("127.0.0.1", port))
            try:
                answers.append(await asyncio.wait_for(loop.sock_recv(s, 4096), wait))
            except asyncio.TimeoutError:
                pass
        return answers


async def test_retransmission_answered_again_and_counted_once(tmp_path, start_gateway):
    gw = await start(tmp_path, start_gateway)
    raw = acct_request(A.imsi, "127.0.0.93")
    answers = await exchange(gw.radius_port, [raw, raw])
    assert len(answers) == 2 and answers[0] == answers[1] and answers[0][0] == rp.AccountingResponse
    assert sample(gw.metrics.radius_requests, status="Start") == 1
    assert sample(gw.metrics.radius_duplicates) == 1
    created = [e for e in gw.store.events(event_type="NETWORK_EVENT")
               if e["networkEvent"]["type"] == "SESSION_CREATED"]
    assert len(created) == 1


async def test_bad_message_authenticator_is_dropped(tmp_path, start_gateway):
    gw = await start(tmp_path, start_gateway)
    good = acct_request(A.imsi, "127.0.0.94", message_authenticator=True)
    at = good.index(bytes([80, 18])) + 2
    # a Message-Authenticator made with another key, the Request Authenticator made with the right one
    bad_ma = bytearray(good)
    bad_ma[at:at + 16] = bytes(16)
    import hashlib
    bad_ma[4:20] = hashlib.md5(bytes(bad_ma[:4]) + bytes(16) + bytes(bad_ma[20:]) + SECRET.encode()).digest()
    assert await exchange(gw.radius_port, [bytes(bad_ma)], wait=0.3) == []
    assert sample(gw.metrics.radius_dropped, reason="bad_message_authenticator") == 1
    answers = await exchange(gw.radius_port, [good])
    assert len(answers) == 1 and gw.registry.sim_for_ip("127.0.0.94").iccid == A.iccid


async def test_network_events_and_usage_reach_an_integration_that_selects_them(tmp_path, start_gateway, receiver,
                                                                               ca_file):
    hook = webhook(receiver, ca_file, event_types=["NETWORK_EVENT", "USAGE"])
    gw = await start(tmp_path, start_gateway, webhooks=[hook])
    await radclient(gw.radius_port, attributes(
        "Start", A.imsi, "127.0.0.95", _3GPP_IMEISV="3566780912345601", _3GPP_RAT_Type=8,
        _3GPP_User_Location_Info="0x0032f4030921b8e8", Called_Station_Id="iot.1nce.net"))
    await radclient(gw.radius_port, attributes(
        "Interim-Update", A.imsi, "127.0.0.96", _3GPP_IMEISV="3566780999999901", Acct_Input_Octets=10,
        Acct_Output_Octets=20, _3GPP_User_Location_Info="0x8232f210426d32f21000013e02"))
    got = await receiver.wait_for(6)
    kinds = [(e["type"], e.get("networkEvent", {}).get("type")) for e in got]
    assert kinds == [("NETWORK_EVENT", "SESSION_CREATED"), ("NETWORK_EVENT", "LOCATION_UPDATED"),
                     ("NETWORK_EVENT", "ADDRESS_CHANGED"), ("NETWORK_EVENT", "IMEI_CHANGED"),
                     ("NETWORK_EVENT", "LOCATION_UPDATED"), ("USAGE", None)]
    assert got[0]["networkEvent"] == {"type": "SESSION_CREATED", "description": "PDP context / session created",
                                      "sessionId": "sess-1", "ip": "127.0.0.95", "apn": "iot.1nce.net",
                                      "rat": "NB-IoT", "imei": "35667809123456", "nas": "127.0.0.1"}
    assert got[1]["networkEvent"]["location"] == {"type": "CGI", "mcc": "234", "mnc": "30", "lac": 0x0921,
                                                  "ci": 0xB8E8}
    assert got[4]["networkEvent"]["location"] == {"type": "TAI+ECGI", "mcc": "232", "mnc": "01", "tac": 0x426D,
                                                  "eci": 0x13E02}
    assert got[5]["usage"]["rxBytes"] == 20 and got[5]["usage"]["txBytes"] == 10
    assert got[5]["device"]["ip"] == "127.0.0.96"
    assert all(e["type"] != "TELEMETRY_DATA" for e in got)
    assert json.loads(json.dumps(got[3]))["networkEvent"]["previousImei"] == "35667809123456"
