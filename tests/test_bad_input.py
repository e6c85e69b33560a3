"""Bad input gets a defined answer or a drop, never a crash; the next good message is served."""

from __future__ import annotations

import asyncio
import random
import socket

from aiocoap import CON, NON, Message
from aiocoap.numbers.codes import Code

from firmware_examples.coap_client import CoapClient, build_request
from tests.conftest import make_config, sim
from tests.test_uplink_e2e import coap_post


def exchange(port: int, source_ip: str, datagrams: list[bytes], wait: float = 0.3) -> list[bytes]:
    """Send raw datagrams from source_ip; return every datagram received back within ``wait``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source_ip, 0))
        for data in datagrams:
            sock.sendto(data, ("127.0.0.1", port))
        sock.settimeout(wait)
        answers = []
        try:
            while True:
                answers.append(sock.recv(65535))
        except socket.timeout:
            return answers


def converse(port: int, source_ip: str, steps: list[list[bytes]]) -> list[bytes]:
    """From one socket: for each step send its datagrams, then read one answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source_ip, 0))
        sock.settimeout(3)
        answers = []
        for datagrams in steps:
            for data in datagrams:
                sock.sendto(data, ("127.0.0.1", port))
            answers.append(sock.recv(65535))
        return answers


def raw_post(mid: int, token: bytes, payload: bytes, query: list[str] | None = None, confirmable: bool = True) -> bytes:
    return build_request(Code.POST, "/", payload, query=query, confirmable=confirmable, mid=mid, token=token).encode()


async def test_retransmitted_con_is_answered_again_and_stored_once(tmp_path, start_gateway):
    device = sim(31)
    gw = await start_gateway(make_config(tmp_path), [device])
    request = raw_post(0x1234, b"\xaa\xbb", b"once")
    answers = await asyncio.to_thread(exchange, gw.coap_port, device.ip_address, [request], 0.5)
    answers += await asyncio.to_thread(exchange, gw.coap_port, device.ip_address, [request, request], 0.5)
    # each socket above had its own source port; real retransmissions come from one socket,
    # each after the previous answer was lost
    con = raw_post(0x2222, b"\x01", b"twice-sent")
    non = raw_post(0x3333, b"\x02", b"non-dup", confirmable=False)
    replies = await asyncio.to_thread(converse, gw.coap_port, device.ip_address, [[con], [con], [con], [non], [non]])
    replies, non_replies = replies[:3], replies[3:]
    assert len(set(replies)) == 1
    ack = Message.decode(replies[0])
    assert (ack.mtype, ack.code, ack.mid, ack.token) == (2, Code.CHANGED, 0x2222, b"\x01")
    assert len(set(non_replies)) == 1 and Message.decode(non_replies[0]).mtype == NON
    await gw.committer.flush()
    payloads = sorted(m["payload"] for m in gw.store.messages())
    # "once" was sent from two source ports: two exchanges, two messages
    assert payloads == [b"non-dup", b"once", b"once", b"twice-sent"]
    assert 'nce_uplink_duplicates_total{protocol="COAP"} 4.0' in gw.metrics.render().decode()


async def test_retransmission_while_committing_is_not_stored_twice(tmp_path, start_gateway):
    device = sim(34)
    gw = await start_gateway(make_config(tmp_path), [device])
    request = raw_post(0x4444, b"\x09", b"burst")
    first, again = await asyncio.to_thread(converse, gw.coap_port, device.ip_address, [[request] * 5, [request]])
    assert again == first
    await gw.committer.flush()
    assert [m["payload"] for m in gw.store.messages()] == [b"burst"]


async def test_malformed_random_and_oversize_input(tmp_path, start_gateway):
    device = sim(32)
    gw = await start_gateway(make_config(tmp_path, coap={"max_payload": 100}, udp={"max_payload": 50}), [device])
    rng = random.Random(1234)
    garbage = [b"", b"\x40", b"\x40\x02", b"\x4f\x02\x00\x01", b"\x80\x02\x00\x01",  # empty, short, tkl 15, version 2
               b"\x41\x02\x00\x07\x01\xf0",  # option delta 15 (reserved)
               b"\x40\x02\x00\x08\xbd",  # truncated extended option
               b"\x40\x02\x00\x09\xff",  # payload marker, no payload
               *[bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(300)]]
    answers = await asyncio.to_thread(exchange, gw.coap_port, device.ip_address, garbage, 1.0)
    for answer in answers:
        decoded = Message.decode(answer)  # every answer is well-formed CoAP
        assert decoded.code in (Code.EMPTY, Code.BAD_REQUEST, Code.NOT_FOUND, Code.METHOD_NOT_ALLOWED,
                                Code.BAD_OPTION, Code.CHANGED, Code.UNAUTHORIZED, Code.REQUEST_ENTITY_TOO_LARGE,
                                Code.NOT_IMPLEMENTED, Code.CONTENT, Code.UNSUPPORTED_CONTENT_FORMAT,
                                Code.INTERNAL_SERVER_ERROR) or decoded.mtype == 3
    # malformed CON with a readable header → reset
    (rst,) = await asyncio.to_thread(exchange, gw.coap_port, device.ip_address, [b"\x40\x02\x00\x08\xbd"])
    assert Message.decode(rst).mtype == 3 and Message.decode(rst).mid == 8
    # oversize and non-UTF-8 topics
    (big,) = await asyncio.to_thread(exchange, gw.coap_port, device.ip_address, [raw_post(5, b"\x05", b"x" * 101)])
    assert Message.decode(big).code == Code.REQUEST_ENTITY_TOO_LARGE
    bad_query = build_request(Code.POST, "/", b"x", mid=6, token=b"\x06")
    bad_query.opt.uri_query = ["t=ok"]
    data = bytearray(bad_query.encode())
    data[data.index(b"t=ok") + 2] = 0xFF  # t=\xffk: not UTF-8
    (answer,) = await asyncio.to_thread(exchange, gw.coap_port, device.ip_address, [bytes(data)])
    assert Message.decode(answer).code == Code.BAD_REQUEST
    # UDP: an oversize datagram is dropped, random ones from a SIM are messages
    await asyncio.to_thread(exchange, gw.udp_port, device.ip_address, [b"y" * 51, b"\x00\xff\x10"], 0.1)
    # the gateway still serves good messages
    assert (await coap_post(gw.coap_port, device.ip_address, b"still alive", topic="ok")).code == "2.04"
    await asyncio.sleep(0.2)
    await gw.committer.flush()
    stored = [m for m in gw.store.messages()]
    assert [m["payload"] for m in stored if m["protocol"] == "UDP"] == [b"\x00\xff\x10"]
    assert b"still alive" in [m["payload"] for m in stored if m["protocol"] == "COAP"]
    assert all(len(m["payload"]) <= 100 for m in stored)
    text = gw.metrics.render().decode()
    assert 'nce_uplink_rejected_total{protocol="UDP",reason="oversize"} 1.0' in text
    assert 'nce_uplink_rejected_total{protocol="COAP",reason="oversize"} 1.0' in text
    assert 'reason="malformed"' in text


async def test_uri_host_from_the_sdk_is_accepted(tmp_path, start_gateway):
    device = sim(33)
    gw = await start_gateway(make_config(tmp_path), [device])
    request = build_request(Code.POST, "/", b"sdk", mid=77, token=b"\x07", uri_host="coap.os.1nce.com",
                            query=["t=sdk"])
    (answer,) = await asyncio.to_thread(exchange, gw.coap_port, device.ip_address, [request.encode()])
    assert Message.decode(answer).code == Code.CHANGED
    await gw.committer.flush()
    assert [(m["payload"], m["topic"]) for m in gw.store.messages()] == [(b"sdk", "sdk")]
