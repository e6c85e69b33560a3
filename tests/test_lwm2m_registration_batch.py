"""One SIM's registrations never fail another SIM's (issue 19, item 6): two Registers of the same
SIM in one write batch, and a change the store refuses, leave the other changes of the batch
stored and answered, and the store matching memory."""

from __future__ import annotations

import asyncio

from gateway.lwm2m import storage
from gateway.lwm2m.registration import RegistrationWriter
from inspector.sqlite import SqliteStore
from tests.conftest import sim

A, B = sim(51).iccid, sim(52).iccid


def row(reg_id: str, iccid: str, now: int = 1000) -> tuple:
    return (reg_id, iccid, 300, "1.1", "U", 0, None, "</3/0>", "coap", "127.0.0.51", 5683, now, now, now + 300_000)


def test_two_registers_of_one_sim_in_one_batch(tmp_path):
    store = SqliteStore(tmp_path / "g.db")
    conn = store.connection()
    first = storage.apply_registration_ops(conn, [("put", row("a1", A)), ("put", row("b1", B)), ("put", row("a2", A))])
    assert first == [True, True, False]
    assert sorted((r[0], r[1]) for r in storage.load_registrations(conn)) == [("a2", A), ("b1", B)]


async def test_a_refused_change_fails_only_its_own_request(tmp_path):
    store = SqliteStore(tmp_path / "g.db")
    conn = store.connection()

    async def write(fn, *args):  # the committer's writer thread, in short
        return fn(*args)

    writer = RegistrationWriter(write, lambda: conn)
    writer.start()
    answered: list[tuple[str, bool]] = []
    try:
        writer.submit(("put", row("a1", A)), (lambda name, first: answered.append((name, first)), "a1"))
        bad = list(row("x1", None))  # iccid NOT NULL: the store refuses it
        writer.submit(("put", tuple(bad)), (lambda name, first: answered.append((name, first)), "x1"))
        writer.submit(("put", row("b1", B)), (lambda name, first: answered.append((name, first)), "b1"))
        await asyncio.wait_for(writer.flush(), 5)
    finally:
        await writer.stop()
    assert answered == [("a1", True), ("b1", True)]
    assert sorted(r[0] for r in storage.load_registrations(conn)) == ["a1", "b1"]
