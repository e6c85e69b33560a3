"""SMS benchmark: MT SMS/s from the outbox to an SMSC over SMPP, against bare submit loops.

    python -m bench.sms [--sms 3000] [--window 10]

The SMSC is smpp34's server (Rust) in its own process, accepting every submit_sm. Rows:
* smpp34's own client (Rust session): ``window`` concurrent submit_sm loops, the ceiling of
  the SMSC on this machine;
* the gateway's SMPP session (``gateway/sms/smpp.py``) alone: the same loops;
* the gateway: ``--sms`` MT SMS committed to the outbox first, then a gateway (transports off)
  starts and sends them all; measured until every SMS is SENT in the store (each submit also
  costs a commit of its message id).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
import tempfile
import time
from pathlib import Path

from .common import child, free_port, print_table

MSISDN = "491700000001"


def smsc_main(port: int) -> None:
    import smpp34

    async def run() -> None:
        server = smpp34.Server("127.0.0.1", port, system_id="BENCH")
        await server.start()
        print("ready", flush=True)
        n = 0
        while True:
            ev = await server.next()
            if isinstance(ev, smpp34.SubmitSmEvent):
                n += 1
                ev.accept(f"B{n}")
    asyncio.run(run())


async def loops(submit, count: int, window: int) -> float:
    per = count // window

    async def one() -> None:
        for _ in range(per):
            await submit()
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(window)))
    return time.perf_counter() - started


async def bare_smpp34(port: int, count: int, window: int) -> tuple[float, float]:
    import smpp34
    client = smpp34.Client(host="127.0.0.1", port=port, system_id="b1", password="x", bind_type="TRX",
                           window_size=window)
    smsc = await client.connect()

    async def submit() -> None:
        resp = await smsc.submit_sm(MSISDN, b"bench", source_addr="1")
        assert resp.is_success
    cpu = time.process_time()
    wall = await loops(submit, count, window)
    cpu = time.process_time() - cpu
    await smsc.unbind()
    await client.stop()
    return wall, cpu


async def session_only(port: int, count: int, window: int) -> tuple[float, float]:
    from gateway.sms.smpp import SessionSettings, SmppSession

    async def on_deliver(_pdu) -> int:
        return 0
    session = SmppSession(SessionSettings("127.0.0.1", port, "b2", "x", window=window), on_deliver)
    session.start()
    assert await session.wait_bound(10)

    async def submit() -> None:
        await session.submit(source_addr="1", destination_addr=MSISDN, short_message=b"bench", registered_delivery=1)
    cpu = time.process_time()
    wall = await loops(submit, count, window)
    cpu = time.process_time() - cpu
    await session.stop()
    return wall, cpu


async def gateway_run(port: int, count: int, window: int, directory: Path) -> tuple[float, float]:
    from gateway.app import Gateway
    from gateway.config import load_config
    from gateway.sms.mt import build_mt
    from inspector import sms as repo
    from inspector.records import Sim

    config = load_config(environ={})
    config.store.path = str(directory / "sms.db")
    config.udp.enabled = config.coap.enabled = config.coaps.enabled = config.api.enabled = False
    config.lwm2m.enabled = False
    config.sms.enabled, config.sms.port, config.sms.system_id, config.sms.window = True, port, "b3", window
    config.connectivity.sms_quota = count + 1
    sim = Sim("8988280690000000001", "901405300000001", "10.9.0.1", msisdn=MSISDN)
    gateway = Gateway(config)
    gateway.store.upsert_sims([sim])
    now = int(time.time() * 1000)
    new = build_mt(sim, {"payload": "bench"}, default_source="1", validity_hours=1, now_ms=now)
    for _ in range(count):
        repo.queue_mt(gateway.store, new, now)  # preloaded outbox: not counted
    cpu = time.process_time()
    started = time.perf_counter()
    await gateway.start()
    while (await gateway.read(repo.counts_by_status, gateway.store)).get("MT SENT", 0) < count:
        await asyncio.sleep(0.02)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    await gateway.stop()
    return wall, cpu


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sms")
    parser.add_argument("--sms", type=int, default=3000)
    parser.add_argument("--window", type=int, default=10)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    port = free_port(socket.SOCK_STREAM)
    rows = []
    with child(["-c", f"import bench.sms as b; b.smsc_main({port})"]), tempfile.TemporaryDirectory() as tmp:
        for name, run in (("smpp34 client (Rust session), bare submit loops", bare_smpp34),
                          ("gateway SMPP session alone, bare submit loops", session_only)):
            wall, cpu = asyncio.run(run(port, args.sms, args.window))
            rows.append((name, args.sms, args.sms / wall, args.sms / cpu if cpu else 0.0))
        wall, cpu = asyncio.run(gateway_run(port, args.sms, args.window, Path(tmp)))
        rows.append(("gateway: outbox → SMSC, until every SMS is SENT", args.sms, args.sms / wall,
                     args.sms / cpu if cpu else 0.0))
    print_table(f"MT SMS to an SMSC (smpp34 server, own process), window {args.window}",
                ("path", "SMS", "SMS/s", "SMS per CPU-s (client side)"), rows,
                "CPU is this process's (all threads); the SMSC's is not counted.")


if __name__ == "__main__":
    main(sys.argv[1:])
