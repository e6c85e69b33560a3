"""CoAP against an attacker on the same network (issue 19): what unknown sources cost, what they
get back, what reaches the log, reused message IDs, and bounded block-wise uploads."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import shutil
import socket
import tracemalloc

import pytest
from aiocoap import CON, NON, Message
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption

from tests.conftest import make_config, sim
from tests.test_bad_input import converse, exchange, raw_post
from tests.test_coap_interop import coap_client


def sample(gw, name: str, **labels: str) -> float:
    """One value of the gateway's /metrics (0 when the series does not exist yet)."""
    gw.metrics.render()  # flushes the per-datagram counters
    return gw.metrics.registry.get_sample_value(name, labels) or 0.0


async def until(condition, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


# 1: refusals cost no memory per request -------------------------------------------------------

async def test_a_flood_from_an_unknown_source_leaves_no_state(tmp_path, start_gateway):
    device = sim(20)
    gw = await start_gateway(make_config(tmp_path), [device])
    service = gw.coap_service
    service.exchanges.max_entries = 500  # a flood that took entries would push the SIM's out
    service.refusals.recent.max_keys = 200
    request = raw_post(0x0101, b"\x01", b"real")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as real:
        real.bind((device.ip_address, 0))
        real.settimeout(3)
        real.sendto(request, ("127.0.0.1", gw.coap_port))
        first = await asyncio.to_thread(real.recv, 100)
        assert len(service.exchanges) == 1

        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        flood = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
        try:
            for sock in flood:
                sock.bind(("127.0.0.99", 0))
            for chunk in range(30):  # 3,000 CON POSTs, paced so the socket buffer drops none
                for i in range(100):
                    n = chunk * 100 + i
                    flood[n % 8].sendto(raw_post(n, n.to_bytes(4, "big"), b"x"), ("127.0.0.1", gw.coap_port))
                await until(lambda: sample(gw, "nce_uplink_rejected_total", protocol="COAP",
                                           reason="unknown_sim") == chunk * 100 + 100)
        finally:
            for sock in flood:
                sock.close()
        gc.collect()  # what is still alive, not what awaits collection
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename")
                    if "/gateway/" in stat.traceback[0].filename)

        assert len(service.exchanges) == 1  # the SIM's exchange, nothing of the flood
        assert len(service.refusals.recent) == 200  # bounded
        assert len(service.refusals.per_source) == 1
        assert grown < 60_000, grown  # the 200 recent refusals (~150 bytes each); before: ~300 per refusal
        # the SIM's exchange survived: its retransmission is answered again and stored once
        real.sendto(request, ("127.0.0.1", gw.coap_port))
        assert await asyncio.to_thread(real.recv, 100) == first
    await gw.committer.flush()
    assert [m["payload"] for m in gw.store.messages()] == [b"real"]
    assert sample(gw, "nce_uplink_duplicates_total", protocol="COAP") == 1


# 13: no reflection ---------------------------------------------------------------------------

async def test_answers_to_unknown_sources_are_no_larger_than_the_request(tmp_path, start_gateway):
    gw = await start_gateway(make_config(tmp_path), [sim(21)])
    port = gw.coap_port
    # the smallest request there is (4 bytes) gets a 4-byte ACK 4.01
    assert await asyncio.to_thread(exchange, port, "127.0.0.90", [b"\x40\x02\x12\x34"]) == [b"\x60\x81\x12\x34"]
    # header and token only: no diagnostic payload
    request = raw_post(0x2000, b"\xa1\xa2\xa3\xa4", b"hello", query=["t=x"])
    (answer,) = await asyncio.to_thread(exchange, port, "127.0.0.91", [request])
    assert answer == b"\x64\x81\x20\x00\xa1\xa2\xa3\xa4" and len(answer) < len(request)
    (answer,) = await asyncio.to_thread(exchange, port, "127.0.0.91",
                                        [raw_post(0x2001, b"\xb1", b"non", confirmable=False)])
    decoded = Message.decode(answer)
    assert (len(answer), decoded.mtype, decoded.code, decoded.token, decoded.payload) == \
        (5, NON, Code.UNAUTHORIZED, b"\xb1", b"")
    # an empty CON (ping) or a response from an unknown source: counted, not answered
    assert await asyncio.to_thread(exchange, port, "127.0.0.91", [b"\x40\x00\x00\x07", b"\x60\x45\x00\x08"]) == []


async def test_answers_to_unknown_sources_are_rate_limited_per_source(tmp_path, start_gateway):
    config = make_config(tmp_path, coap={"unauthorized_answers_per_ip_per_second": 0.001})
    gw = await start_gateway(config, [sim(22)])
    requests = [raw_post(0x3000 + i, b"\x07", b"x") for i in range(20)]
    answers = await asyncio.to_thread(exchange, gw.coap_port, "127.0.0.92", requests)
    assert [Message.decode(a).mid for a in answers] == [0x3000, 0x3001, 0x3002, 0x3003, 0x3004]  # burst of 5
    # another source has its own budget
    assert len(await asyncio.to_thread(exchange, gw.coap_port, "127.0.0.93", requests[:7])) == 5
    assert sample(gw, "nce_coap_refusals_unanswered_total", reason="rate_limit") == 15 + 2
    assert sample(gw, "nce_uplink_rejected_total", protocol="COAP", reason="unknown_sim") == 27


async def test_answers_to_unknown_sources_are_limited_in_total(tmp_path, start_gateway):
    config = make_config(tmp_path, coap={"unauthorized_answers_per_second": 0.001,  # a burst of 1
                                         "unauthorized_answers_per_ip_per_second": 100})
    gw = await start_gateway(config, [sim(23)])
    got = 0
    for source in ("127.0.0.94", "127.0.0.95", "127.0.0.96"):
        got += len(await asyncio.to_thread(exchange, gw.coap_port, source, [raw_post(1, b"", b"x"),
                                                                             raw_post(2, b"", b"x")], 0.2))
    assert got == 1
    assert sample(gw, "nce_coap_refusals_unanswered_total", reason="rate_limit") == 5


async def test_random_datagrams_from_unknown_sources_get_nothing_larger(tmp_path, start_gateway):
    config = make_config(tmp_path, coap={"unauthorized_answers_per_ip_per_second": 10_000})
    gw = await start_gateway(config, [sim(38)])
    rng = random.Random(19)
    garbage = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))) for _ in range(400)]
    garbage += [bytes([0x40 | rng.randrange(0x30), rng.randrange(256), 0, 0])
                + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))) for _ in range(400)]
    by_mid = {}
    for n, datagram in enumerate(garbage):  # a distinct message ID for each, to match the answers
        if len(datagram) >= 4:
            garbage[n] = datagram = datagram[:2] + n.to_bytes(2, "big") + datagram[4:]
            by_mid[n] = datagram
    answers = await asyncio.to_thread(exchange, gw.coap_port, "127.0.0.87", garbage, 1.0)
    assert answers
    for answer in answers:
        decoded = Message.decode(answer)
        request = by_mid[decoded.mid] if decoded.mtype == 2 else None  # NON answers have our own IDs
        assert decoded.code == Code.UNAUTHORIZED and not decoded.payload
        if request is not None:
            assert len(answer) <= len(request) and 0 < request[1] < 32
            assert answer[4:] == request[4:4 + (request[0] & 0x0F)]
    assert len(gw.coap_service.exchanges) == 0
    assert gw.coap.endpoint.handler_errors == 0


async def test_silence_for_unknown_sources_is_configurable(tmp_path, start_gateway):
    gw = await start_gateway(make_config(tmp_path, coap={"answer_unauthorized": False}), [sim(24)])
    assert await asyncio.to_thread(exchange, gw.coap_port, "127.0.0.97", [raw_post(1, b"\x01", b"x")]) == []
    assert sample(gw, "nce_coap_refusals_unanswered_total", reason="config") == 1
    assert sample(gw, "nce_uplink_rejected_total", protocol="COAP", reason="unknown_sim") == 1


# rejection metrics (issue 12, item 4) --------------------------------------------------------

async def test_disabled_and_unknown_sims_counted_apart_and_once_per_request(tmp_path, start_gateway):
    disabled = sim(25, status="Disabled")
    gw = await start_gateway(make_config(tmp_path), [sim(26), disabled])
    request = raw_post(0x4000, b"\x40", b"x")
    # a CON and two retransmissions (same source port, message ID and token): one refusal
    answers = await asyncio.to_thread(exchange, gw.coap_port, disabled.ip_address, [request] * 3)
    assert len(answers) == 3 and {Message.decode(a).code for a in answers} == {Code.UNAUTHORIZED}
    assert sample(gw, "nce_uplink_rejected_total", protocol="COAP", reason="disabled_sim") == 1
    # the same message ID with another token is another request
    await asyncio.to_thread(exchange, gw.coap_port, disabled.ip_address, [raw_post(0x4000, b"\x41", b"x")])
    assert sample(gw, "nce_uplink_rejected_total", protocol="COAP", reason="disabled_sim") == 2
    await asyncio.to_thread(exchange, gw.coap_port, "127.0.0.89", [request] * 2)
    assert sample(gw, "nce_uplink_rejected_total", protocol="COAP", reason="unknown_sim") == 1
    assert sample(gw, "nce_uplink_rejected_total", protocol="COAP", reason="disabled_sim") == 2
    # UDP keeps its own split
    await asyncio.to_thread(exchange, gw.udp_port, disabled.ip_address, [b"u"], 0.1)
    await until(lambda: sample(gw, "nce_uplink_rejected_total", protocol="UDP", reason="disabled_sim") == 1)


# 5: no log amplification ---------------------------------------------------------------------

# 8 bytes: an empty message / a 2.05 response / a 4.00 response, each with a Uri-Path of 3 bytes
# that are not UTF-8; aiocoap's decoder raises UnicodeDecodeError on them
UNDECODABLE = [bytes([0x40, code, code, n, 0xB3, 0xFF, 0xFE, 0xFD]) for code in (0x00, 0x45, 0x80) for n in range(100)]
# type and code that do not fit: an empty NON, a POST as ACK, a GET as RST, a 2.05 as RST, 1.00, 7.31
MISFITS = [bytes([first, code, 0x77, n]) for first, code in ((0x50, 0), (0x60, 2), (0x70, 1), (0x70, 0x45),
                                                              (0x40, 32), (0x40, 0xFF)) for n in range(50)]


async def test_undecodable_datagrams_are_counted_not_logged(tmp_path, start_gateway, caplog):
    device = sim(27)
    gw = await start_gateway(make_config(tmp_path), [device])
    caplog.set_level(logging.DEBUG)
    caplog.clear()  # the start-up lines are not what this test is about
    await asyncio.to_thread(exchange, gw.coap_port, "127.0.0.88", UNDECODABLE, 0.3)
    await until(lambda: sample(gw, "nce_uplink_rejected_total", protocol="COAP", reason="unknown_sim") == 300)
    # unknown sources: never decoded past the header, nothing logged
    assert [r for r in caplog.records if r.name.startswith("nce")] == []
    answers = await asyncio.to_thread(exchange, gw.coap_port, device.ip_address, UNDECODABLE + MISFITS, 0.3)
    await until(lambda: sample(gw, "nce_uplink_rejected_total", protocol="COAP", reason="malformed") == 600)
    # a known SIM's: counted, and one summary line with no traceback (aiocoap warns about none)
    logged = [r for r in caplog.records if r.name.startswith("nce") and r.levelno >= logging.INFO]
    assert len(logged) == 1 and logged[0].exc_info is None and logged[0].occurrences == 1
    assert "UnicodeDecodeError" in logged[0].getMessage()
    assert answers == []
    assert gw.coap.endpoint.handler_errors == 0


# 9: a reused message ID with another token is a new message -------------------------------------

async def test_reused_message_id_with_another_token_is_a_new_message(tmp_path, start_gateway):
    device = sim(28)
    gw = await start_gateway(make_config(tmp_path), [device])
    before_reboot = raw_post(0x0500, b"\x01", b"before reboot")
    after_reboot = raw_post(0x0500, b"\x02", b"after reboot")  # the device restarted its IDs
    same_token_new_payload = raw_post(0x0500, b"\x02", b"another")
    replies = await asyncio.to_thread(converse, gw.coap_port, device.ip_address,
                                      [[before_reboot], [after_reboot], [after_reboot], [same_token_new_payload]])
    decoded = [Message.decode(r) for r in replies]
    assert [(m.code, m.mid, m.token) for m in decoded] == [
        (Code.CHANGED, 0x0500, b"\x01"), (Code.CHANGED, 0x0500, b"\x02"), (Code.CHANGED, 0x0500, b"\x02"),
        (Code.CHANGED, 0x0500, b"\x02")]
    assert replies[2] == replies[1]  # a true retransmission gets the cached answer
    await gw.committer.flush()
    assert sorted(m["payload"] for m in gw.store.messages()) == [b"after reboot", b"another", b"before reboot"]
    assert sample(gw, "nce_uplink_duplicates_total", protocol="COAP") == 1


# 2: block-wise uploads -----------------------------------------------------------------------

def block(mid: int, num: int, more: bool, payload: bytes, *, szx: int = 4, size1: int | None = None,
          query: str = "t=blocks", token: bytes = b"\xb1") -> bytes:
    message = Message(code=Code.POST, payload=payload)
    message.mtype, message.mid, message.token = CON, mid, token
    message.opt.uri_query = [query]
    message.opt.block1 = BlockOption.BlockwiseTuple(num, more, szx)
    if size1 is not None:
        message.opt.size1 = size1
    return message.encode()


def blocks_of(body: bytes, first_mid: int, size: int = 256, **kwargs) -> list[list[bytes]]:
    chunks = [body[i:i + size] for i in range(0, len(body), size)]
    return [[block(first_mid + n, n, n < len(chunks) - 1, chunk, **kwargs)] for n, chunk in enumerate(chunks)]


async def test_block1_upload_up_to_the_limit_and_refused_at_the_first_block_beyond(tmp_path, start_gateway):
    device = sim(29)
    gw = await start_gateway(make_config(tmp_path, coap={"max_payload": 1000}), [device])
    body = bytes(range(250)) * 4  # exactly max_payload
    replies = [Message.decode(r) for r in
               await asyncio.to_thread(converse, gw.coap_port, device.ip_address, blocks_of(body, 0x100))]
    assert [r.code for r in replies] == [Code.CONTINUE] * 3 + [Code.CHANGED]
    assert replies[-1].opt.block1 == (3, False, 4)
    # one byte more: 4.13 (with Size1 = the limit) for the last block, the one that goes over
    replies = [Message.decode(r) for r in
               await asyncio.to_thread(converse, gw.coap_port, device.ip_address, blocks_of(body + b"!", 0x200))]
    assert [r.code for r in replies] == [Code.CONTINUE] * 3 + [Code.REQUEST_ENTITY_TOO_LARGE]
    assert replies[-1].opt.size1 == 1000
    # a Size1 announcing too much is refused at block 0
    (refused,) = await asyncio.to_thread(converse, gw.coap_port, device.ip_address,
                                         [[block(0x300, 0, True, b"x" * 256, size1=40_000_000)]])
    assert (Message.decode(refused).code, Message.decode(refused).opt.size1) == (Code.REQUEST_ENTITY_TOO_LARGE, 1000)
    # a far block number without an upload: 4.13 as well (never a 40 MB spool)
    (refused,) = await asyncio.to_thread(converse, gw.coap_port, device.ip_address,
                                         [[block(0x301, 150_000, True, b"x" * 256)]])
    assert Message.decode(refused).code == Code.REQUEST_ENTITY_TOO_LARGE
    await gw.committer.flush()
    assert [m["payload"] for m in gw.store.messages()] == [body]
    assert sample(gw, "nce_uplink_rejected_total", protocol="COAP", reason="oversize") == 3
    assert sample(gw, "nce_coap_block1_transfers") == 0 and sample(gw, "nce_coap_block1_bytes") == 0


async def test_block1_out_of_order_and_bad_sizes(tmp_path, start_gateway):
    device = sim(30)
    gw = await start_gateway(make_config(tmp_path), [device])
    replies = await asyncio.to_thread(converse, gw.coap_port, device.ip_address, [
        [block(0x10, 0, True, b"a" * 256)], [block(0x11, 2, True, b"c" * 256)],  # block 1 skipped
        [block(0x12, 1, True, b"b" * 100)],  # "more", but shorter than the block size
        [block(0x13, 0, True, b"a" * 1024, szx=7)]])  # BERT: CoAP over TCP only
    assert [Message.decode(r).code for r in replies] == [
        Code.CONTINUE, Code.REQUEST_ENTITY_INCOMPLETE, Code.BAD_REQUEST, Code.BAD_REQUEST]
    assert sample(gw, "nce_coap_block1_transfers") == 0


async def test_block1_uploads_are_capped_per_sim_and_in_total(tmp_path, start_gateway):
    a, b = sim(35), sim(36)
    config = make_config(tmp_path, coap={"max_block1_transfers": 3, "max_block1_transfers_per_sim": 2})
    gw = await start_gateway(config, [a, b])

    def first_block(mid: int, query: str) -> list[bytes]:
        return [block(mid, 0, True, b"z" * 256, query=query)]

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock_a:
        sock_a.bind((a.ip_address, 0))
        sock_a.settimeout(3)

        def send_a(datagram: bytes) -> Message:
            sock_a.sendto(datagram, ("127.0.0.1", gw.coap_port))
            return Message.decode(sock_a.recv(2000))

        codes = [(await asyncio.to_thread(send_a, first_block(0x20 + i, f"t=up{i}")[0])).code for i in range(3)]
        assert codes == [Code.CONTINUE, Code.CONTINUE, Code.SERVICE_UNAVAILABLE]  # 2 per SIM
        assert sample(gw, "nce_coap_block1_transfers") == 2 and sample(gw, "nce_coap_block1_bytes") == 512
        (busy,) = await asyncio.to_thread(converse, gw.coap_port, b.ip_address, [first_block(0x30, "t=b0")])
        assert Message.decode(busy).code == Code.CONTINUE
        (busy,) = await asyncio.to_thread(converse, gw.coap_port, b.ip_address, [first_block(0x31, "t=b1")])
        busy = Message.decode(busy)
        assert busy.code == Code.SERVICE_UNAVAILABLE and 1 <= busy.opt.max_age <= 93  # 3 in total
        # finishing an upload frees its place
        done = await asyncio.to_thread(send_a, block(0x40, 1, False, b"end", query="t=up0"))
        assert (done.code, done.opt.block1) == (Code.CHANGED, (1, False, 4))
        assert (await asyncio.to_thread(send_a, first_block(0x41, "t=up3")[0])).code == Code.CONTINUE
    await gw.committer.flush()
    assert [(m["payload"], m["topic"]) for m in gw.store.messages()] == [(b"z" * 256 + b"end", "up0")]
    assert sample(gw, "nce_uplink_rejected_total", protocol="COAP", reason="busy") == 2


@pytest.mark.skipif(shutil.which("coap-client-notls") is None,
                    reason="coap-client-notls missing: apt-get install libcoap3-bin")
async def test_libcoap_blockwise_upload_over_the_limit_is_refused_early(tmp_path, start_gateway):
    device = sim(37)
    gw = await start_gateway(make_config(tmp_path, coap={"max_payload": 4000}), [device])
    url = f"coap://127.0.0.1:{gw.coap_port}/data?t=big"
    rc, out = await coap_client("-a", device.ip_address, "-b", "1024", "-m", "post", "-e", "y" * 3900, url)
    assert rc == 0 and "t:ACK c:2.04" in out and "Block1:3/_/1024" in out, out
    assert sample(gw, "nce_uplink_received_total", protocol="COAP") == 4  # 4 blocks
    # libcoap announces the size (Size1) in block 0: refused there, not 49 blocks later
    rc, out = await coap_client("-a", device.ip_address, "-b", "1024", "-m", "post", "-e", "n" * 50_000, url)
    assert "Size1:50000" in out and "t:ACK c:4.13" in out, out
    assert sample(gw, "nce_uplink_received_total", protocol="COAP") == 5
    await gw.committer.flush()
    assert [m["payload"] for m in gw.store.messages()] == [b"y" * 3900]


class _Remote:
    """Just what the spool reads of a remote (the network tests above use real sockets)."""

    blockwise_key = ("127.0.0.1", 1)

    def sim(self):
        return None


def test_block1_reassembly_keeps_blocks_and_joins_them_once():
    from gateway.metrics import Metrics
    from gateway.transports.block1 import Block1Limits, BoundedBlock1Spool
    from aiocoap.blockwise import ContinueException

    limits = Block1Limits(Metrics(), max_payload=4 << 20, max_transfers=1, max_transfers_per_sim=1)
    spool = BoundedBlock1Spool(limits)
    body = bytes(range(256)) * 8192  # 2 MiB in 2,048 blocks of 1 KiB
    remote = _Remote()
    result = None
    for n in range(2048):
        message = Message.decode(block(n, n, n < 2047, body[n * 1024:(n + 1) * 1024], szx=6), remote=remote)
        try:
            result = spool.feed_and_take(message)
        except ContinueException:
            (assembly,) = limits.assemblies.values()
            # the first block's message is not grown block by block: no quadratic recopy
            assert len(assembly.chunks) == n + 1 and len(assembly.request.payload) == 1024
    assert result is not None and result.payload == body and result.opt.block1 == (2047, False, 6)
    assert not limits.assemblies and limits.bytes == 0
