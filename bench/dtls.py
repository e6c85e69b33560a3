"""DTLS 1.2 PSK benchmark: ``python -m bench.dtls [--quick]`` (about 30 s).

Measures, in one run:

1. bare python-mbedtls: client and server contexts ``wrap_buffers()`` in memory,
   no sockets, full handshakes (with the HelloVerifyRequest round trip) and
   encrypted request/response round trips; the server side's share of the time
   is clocked separately, so "per server core" is comparable with the engine;
2. the engine (:class:`DtlsServer`) in memory: the same clients, datagrams
   handed to ``datagram_received`` directly; server time clocked as above;
3. the engine behind a real asyncio UDP socket in its own process, driven by a
   load generator in another process (non-blocking sockets, many source
   addresses, a window of requests in flight); the server process' CPU time
   gives the rate per server core.

Targets per gateway core: >= 1,500 handshakes/s, >= 5,000 encrypted messages/s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import selectors
import socket
import sys
import time

from mbedtls.tls import (
    ClientContext,
    DTLSConfiguration,
    DTLSVersion,
    HandshakeStep,
    HelloVerifyRequest,
    ServerContext,
    WantReadError,
    WantWriteError,
)

from gateway.transports.dtls import DtlsConfig, DtlsServer

SUITE = "TLS-PSK-WITH-AES-128-CCM-8"
PAYLOAD = b"\x42\x02\x30\x39\x01\x02\xb4data\xff" + b"x" * 50  # ~ a small CoAP POST
HS_TARGET = 1500
MSG_TARGET = 5000
OVER = HandshakeStep.HANDSHAKE_OVER

# Bench limits: the load comes from a few hundred loopback addresses, so the
# per-IP budget is lifted; everything else is the production default.
BENCH_CONFIG = DtlsConfig(handshakes_per_ip_per_second=1e9, max_sessions=100_000)


def identity(i: int) -> bytes:
    return b"89882280666%08d" % i


def key(i: int) -> bytes:
    return b"psk-%08d" % i


def client_ctx(i: int) -> ClientContext:
    return ClientContext(
        DTLSConfiguration(
            ciphers=(SUITE,),
            lowest_supported_version=DTLSVersion.DTLSv1_2,
            highest_supported_version=DTLSVersion.DTLSv1_2,
            validate_certificates=False,
            pre_shared_key=(identity(i).decode(), key(i)),
        )
    )


def drain(buf) -> bytes:
    n = len(buf._output_buffer)
    if not n:
        return b""
    data = buf.peek_outgoing(n)
    buf.consume_outgoing(n)
    return data


def step(buf) -> bytes:
    """Client: run handshake steps until it waits (or is done, ValueError);
    return what it wrote."""
    while True:
        try:
            buf.do_handshake()
        except WantWriteError:
            continue
        except (WantReadError, ValueError):
            break
    return drain(buf)


def server_steps(buf) -> bool:
    """Server: the same minimal stepping as the engine; True when over."""
    while True:
        try:
            buf.do_handshake()
        except WantWriteError:
            continue
        except WantReadError:
            return False
        except ValueError:
            return True


# --------------------------------------------------------------------------- 1


def bare_handshakes(duration: float) -> dict:
    sctx = ServerContext(
        DTLSConfiguration(
            ciphers=(SUITE,),
            lowest_supported_version=DTLSVersion.DTLSv1_2,
            highest_supported_version=DTLSVersion.DTLSv1_2,
            validate_certificates=False,
            pre_shared_key_store={identity(i).decode(): key(i) for i in range(64)},
        )
    )
    cctxs = [client_ctx(i) for i in range(64)]
    n = 0
    server_time = 0.0
    clock, cpu = time.perf_counter, time.thread_time
    t0 = clock()
    end = t0 + duration
    while clock() < end:
        c = cctxs[n % 64].wrap_buffers(None)
        t = cpu()
        s = sctx.wrap_buffers()
        server_time += cpu() - t
        data = step(c)
        while True:
            t = cpu()
            s.setcookieparam(b"127.0.0.1:1000")
            s.receive_from_network(data)
            try:
                server_over = server_steps(s)
            except HelloVerifyRequest:
                server_over = False
            reply = drain(s)
            server_time += cpu() - t
            c.receive_from_network(reply)
            data = step(c)
            if server_over and not data:
                break
        n += 1
    wall = clock() - t0
    return {"n": n, "wall": wall, "server_cpu": server_time}


def bare_messages(duration: float) -> dict:
    sctx = ServerContext(
        DTLSConfiguration(
            ciphers=(SUITE,),
            validate_certificates=False,
            lowest_supported_version=DTLSVersion.DTLSv1_2,
            highest_supported_version=DTLSVersion.DTLSv1_2,
            pre_shared_key_store={identity(0).decode(): key(0)},
        )
    )
    c = client_ctx(0).wrap_buffers(None)
    s = sctx.wrap_buffers()
    data = step(c)
    while not (c._handshake_state is OVER and s._handshake_state is OVER):
        s.setcookieparam(b"x")
        s.receive_from_network(data)
        try:
            server_steps(s)
        except HelloVerifyRequest:
            pass
        c.receive_from_network(drain(s))
        data = step(c)
    rb = bytearray(4096)
    n = 0
    server_time = 0.0
    clock, cpu = time.perf_counter, time.thread_time
    t0 = clock()
    end = t0 + duration
    while clock() < end:
        for _ in range(100):
            c.write(PAYLOAD)
            rec = drain(c)
            t = cpu()
            s.receive_from_network(rec)
            k = s.readinto(rb, 4096)
            s.write(bytes(rb[:k]))
            answer = drain(s)
            server_time += cpu() - t
            c.receive_from_network(answer)
            c.readinto(rb, 4096)
        n += 100
    return {"n": n, "wall": clock() - t0, "server_cpu": server_time}


# --------------------------------------------------------------------------- 2


def engine_in_memory(duration: float) -> tuple[dict, dict]:
    async def run() -> tuple[dict, dict]:
        outbox: list[tuple[bytes, tuple]] = []
        keys = {identity(i): key(i) for i in range(64)}
        server = DtlsServer(
            psk_for_identity=lambda ident, addr: keys.get(ident),
            sendto=lambda d, a: outbox.append((d, a)),
            on_application_data=lambda sess, d: server.send(sess, d),
            config=BENCH_CONFIG,
        )
        cctxs = [client_ctx(i) for i in range(64)]
        clock, cpu = time.perf_counter, time.thread_time
        # handshakes
        n = 0
        server_time = 0.0
        t0 = clock()
        end = t0 + duration
        while clock() < end:
            addr = ("127.0.5.%d" % (1 + n % 200), 1024 + n % 60000)
            c = cctxs[n % 64].wrap_buffers(None)
            data = step(c)
            while c._handshake_state is not OVER:
                t = cpu()
                server.datagram_received(data, addr)
                server_time += cpu() - t
                for d, _ in outbox:
                    c.receive_from_network(d)
                outbox.clear()
                data = step(c)
            n += 1
            if n % 200 == 0:
                await asyncio.sleep(0)  # let the loop drop cancelled timers
        hs = {"n": n, "wall": clock() - t0, "server_cpu": server_time}
        # messages on one session (the last one)
        rb = bytearray(4096)
        m = 0
        server_time = 0.0
        t0 = clock()
        end = t0 + duration
        while clock() < end:
            for _ in range(100):
                c.write(PAYLOAD)
                rec = drain(c)
                t = cpu()
                server.datagram_received(rec, addr)
                server_time += cpu() - t
                c.receive_from_network(outbox[0][0])
                outbox.clear()
                c.readinto(rb, 4096)
            m += 100
        msgs = {"n": m, "wall": clock() - t0, "server_cpu": server_time}
        server.shutdown(notify=False)
        return hs, msgs

    return asyncio.run(run())


def memory_per_session(n: int = 2000) -> dict:
    """RSS growth per established session and per half-open handshake (engine
    in memory, n distinct identities and addresses)."""

    def rss_kib() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4

    async def run() -> dict:
        outbox: list[bytes] = []
        keys = {identity(i): key(i) for i in range(n)}
        cfg = DtlsConfig(handshakes_per_ip_per_second=1e9, max_half_open=n, max_sessions=2 * n)
        server = DtlsServer(
            psk_for_identity=lambda ident, addr: keys.get(ident),
            sendto=lambda d, a: outbox.append(d),
            on_application_data=lambda sess, d: None,
            config=cfg,
        )
        ctxs = [client_ctx(i) for i in range(n)]
        base = rss_kib()
        for i in range(n):  # established
            addr = ("127.0.6.%d" % (1 + i % 200), 2000 + i)
            c = ctxs[i].wrap_buffers(None)
            data = step(c)
            while data:
                server.datagram_received(data, addr)
                for d in outbox:
                    c.receive_from_network(d)
                outbox.clear()
                data = step(c)
            if i % 200 == 0:
                await asyncio.sleep(0)
        mid = rss_kib()
        assert server.session_count == n
        for i in range(n):  # half-open: stop after the ClientHello with cookie
            addr = ("127.0.7.%d" % (1 + i % 200), 2000 + i)
            c = ctxs[i].wrap_buffers(None)
            server.datagram_received(step(c), addr)
            c.receive_from_network(outbox.pop())
            server.datagram_received(step(c), addr)
            outbox.clear()
        end = rss_kib()
        assert server.half_open_count == n
        server.shutdown(notify=False)
        return {"established_kib": (mid - base) / n, "half_open_kib": (end - mid) / n}

    return asyncio.run(run())


# --------------------------------------------------------------------------- 3


def server_process(conn, reader: str) -> None:
    """The engine behind one UDP socket, in its own process.

    ``reader="protocol"``: asyncio's DatagramProtocol (one datagram per event
    loop iteration).  ``reader="batched"``: ``loop.add_reader`` on the raw
    non-blocking socket, draining up to 64 datagrams per wake-up.
    """

    async def main() -> None:
        loop = asyncio.get_running_loop()
        keys = {identity(i): key(i) for i in range(4096)}
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        transport = None
        if reader == "protocol":

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data, addr):
                    server.datagram_received(data, addr)

            transport, _ = await loop.create_datagram_endpoint(Proto, sock=sock)
            sendto = transport.sendto
        else:
            recvfrom = sock.recvfrom
            sendto = sock.sendto

            def on_readable() -> None:
                feed = server.datagram_received
                for _ in range(64):
                    try:
                        data, addr = recvfrom(65536)
                    except (BlockingIOError, InterruptedError):
                        return
                    feed(data, addr)

            loop.add_reader(sock.fileno(), on_readable)

        server = DtlsServer(
            psk_for_identity=lambda ident, addr: keys.get(ident),
            sendto=sendto,
            on_application_data=lambda sess, d: server.send(sess, d),
            config=BENCH_CONFIG,
            loop=loop,
        )
        done = loop.create_future()

        def on_cmd():
            cmd = conn.recv()
            if cmd == "stop":
                done.set_result(None)
                return
            t = os.times()
            conn.send({"cpu": time.process_time(), "sys": t.system, "wall": time.perf_counter(), **server.metrics(),
                       "rss_kib": int(open("/proc/self/statm").read().split()[1]) * 4})

        loop.add_reader(conn.fileno(), on_cmd)
        conn.send(sock.getsockname()[:2])
        await done
        server.shutdown(notify=False)
        if transport is not None:
            transport.close()
        else:
            loop.remove_reader(sock.fileno())
            sock.close()

    asyncio.run(main())


def lg_addr(i: int) -> str:
    return "127.0.%d.%d" % (10 + i // 250, 1 + i % 250)


def loadgen_handshakes(server, duration: float, slots: int, out) -> None:
    sel = selectors.DefaultSelector()
    ctxs = [client_ctx(i) for i in range(slots)]
    state: dict[int, list] = {}
    done = stalls = 0

    def start(i: int) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((lg_addr(i), 0))
        s.setblocking(False)
        buf = ctxs[i].wrap_buffers(None)
        s.sendto(step(buf), server)
        sel.register(s, selectors.EVENT_READ, i)
        state[i] = [s, buf, time.monotonic()]

    for i in range(slots):
        start(i)
    end = time.monotonic() + duration
    while (now := time.monotonic()) < end:
        for skey, _ in sel.select(0.2):
            i = skey.data
            s, buf, _t = state[i]
            try:
                while True:
                    buf.receive_from_network(s.recv(4096))
                    out_data = step(buf)
                    if out_data:
                        s.sendto(out_data, server)
            except BlockingIOError:
                pass
            if buf._handshake_state is OVER:
                done += 1
                sel.unregister(s)
                s.close()
                start(i)
        for i, (s, buf, t) in list(state.items()):
            if now - t > 2.0:  # lost or refused: start over
                stalls += 1
                sel.unregister(s)
                s.close()
                start(i)
    out.send({"n": done, "stalls": stalls})


def loadgen_messages(server, duration: float, sessions: int, window: int, out, gateway: bool = False) -> None:
    """``window`` encrypted requests in flight per session, each answer triggering the next.

    ``gateway``: every POST gets its own message ID (the gateway answers a repeated one from its
    exchange cache without storing it) and only a 2.04, sent after the commit, counts."""
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(sessions):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((lg_addr(1000 + i), 0))
        s.settimeout(5.0)
        buf = client_ctx(i).wrap_buffers(None)
        s.sendto(step(buf), server)
        while buf._handshake_state is not OVER:
            buf.receive_from_network(s.recv(4096))
            data = step(buf)
            if data:
                s.sendto(data, server)
        s.setblocking(False)
        conns.append([s, buf, i * 4096])
        sel.register(s, selectors.EVENT_READ, i)
    rb = bytearray(4096)
    request = bytearray(PAYLOAD)
    got = failed = 0

    def fire(conn) -> None:
        s, buf, mid = conn
        if gateway:
            conn[2] = mid = (mid + 1) & 0xFFFF
            request[2:4] = mid.to_bytes(2, "big")
        buf.write(bytes(request))
        s.sendto(drain(buf), server)

    for conn in conns:
        for _ in range(window):
            fire(conn)
    t0 = time.monotonic()
    end = t0 + duration
    while time.monotonic() < end:
        for skey, _ in sel.select(0.2):
            conn = conns[skey.data]
            s, buf, _mid = conn
            try:
                while True:
                    buf.receive_from_network(s.recv(4096))
                    while True:
                        try:
                            n = buf.readinto(rb, 4096)
                        except WantReadError:
                            break
                        if not gateway or (n >= 2 and rb[1] == 0x44):
                            got += 1
                        else:
                            failed += 1
                        fire(conn)
            except BlockingIOError:
                pass
    out.send({"n": got, "failed": failed, "wall": time.monotonic() - t0})


def loadgen_gateway_messages(server, duration: float, sessions: int, window: int, out) -> None:
    loadgen_messages(server, duration, sessions, window, out, gateway=True)


def over_udp(duration: float, reader: str) -> list[tuple[str, dict]]:
    fork = mp.get_context("fork")
    parent, child = fork.Pipe()
    proc = fork.Process(target=server_process, args=(child, reader), daemon=True)
    proc.start()
    server = tuple(parent.recv())
    results = []

    def phase(label: str, target, *args) -> None:
        parent.send("stats")
        before = parent.recv()
        rx, tx = fork.Pipe(duplex=False)
        lg = fork.Process(target=target, args=(server, duration, *args, tx), daemon=True)
        lg.start()
        res = rx.recv()
        lg.join()
        parent.send("stats")
        after = parent.recv()
        res["wall"] = after["wall"] - before["wall"] if "wall" not in res else res["wall"]
        res["server_cpu"] = after["cpu"] - before["cpu"]
        res["server_sys"] = after["sys"] - before["sys"]
        res["server_metrics"] = {k: after[k] - before.get(k, 0) for k in after if k.startswith("dtls_")}
        res["rss_kib"] = after["rss_kib"]
        results.append((label, res))

    phase(f"UDP, {reader} reader: full handshakes (64 in flight)", loadgen_handshakes, 64)
    phase(f"UDP, {reader} reader: round trips, 1 session (window 32)", loadgen_messages, 1, 32)
    phase(f"UDP, {reader} reader: round trips, 256 sessions (window 2)", loadgen_messages, 256, 2)
    parent.send("stop")
    proc.join(5)
    return results


# --------------------------------------------------------------------------- 4: the gateway


def over_gateway(duration: float) -> list[tuple[str, dict]]:
    """The real gateway (``nce-gateway serve``, its own process, default store durability)
    with SIMs and PSKs for the load generator's identities; answers are 2.04 after commit."""
    import subprocess
    import tempfile
    from pathlib import Path

    from inspector.records import Sim
    from inspector.sqlite import SqliteStore

    from .common import free_port, process_cpu

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = Path(tmp) / "bench.toml"
        config.write_text(f"""
[store]
path = "{Path(tmp) / 'bench.db'}"
[udp]
enabled = false
[coap]
enabled = false
[coaps]
bind = "127.0.0.1"
port = {port}
handshakes_per_ip_per_second = 1000000000
[api]
port = 0
[log]
level = "WARNING"
""")
        store = SqliteStore(Path(tmp) / "bench.db")
        sims = [Sim(iccid=identity(i).decode(), imsi=f"9014051{i:08d}", ip_address=lg_addr(i)) for i in range(300)]
        store.upsert_sims(sims)
        for i in range(300):
            store.set_psk(identity(i).decode(), "COAP", key(i), True)
        store.close()
        process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(config)],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert process.stdout is not None and "listening" in process.stdout.readline()
            server = ("127.0.0.1", port)
            fork = mp.get_context("fork")

            def phase(label: str, target, *args) -> None:
                wall0, cpu0 = time.perf_counter(), process_cpu(process.pid)
                rx, tx = fork.Pipe(duplex=False)
                lg = fork.Process(target=target, args=(server, duration, *args, tx), daemon=True)
                lg.start()
                res = rx.recv()
                lg.join()
                res.setdefault("wall", time.perf_counter() - wall0)
                res["server_cpu"] = process_cpu(process.pid) - cpu0
                res["server_sys"] = 0.0
                res["server_metrics"] = {}
                res["rss_kib"] = int(open(f"/proc/{process.pid}/statm").read().split()[1]) * 4
                results.append((label, res))

            phase("gateway: full handshakes (64 in flight)", loadgen_handshakes, 64)
            phase("gateway: CoAP POSTs acked after commit, 1 session (window 32)", loadgen_gateway_messages, 1, 32)
            phase("gateway: CoAP POSTs acked after commit, 256 sessions (window 2)", loadgen_gateway_messages,
                  256, 2)
        finally:
            process.terminate()
            process.wait(10)
    return results


# --------------------------------------------------------------------------- table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter phases (about 10 s in all)")
    args = ap.parse_args(argv)
    d_mem = 1.0 if args.quick else 2.0
    d_udp = 1.0 if args.quick else 3.0

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, suite {SUITE}, payload {len(PAYLOAD)} B")
    rows: list[tuple[str, dict]] = []
    bh = bare_handshakes(d_mem)
    rows.append(("bare python-mbedtls: full handshakes (client+server in memory)", bh))
    bm = bare_messages(d_mem)
    rows.append(("bare python-mbedtls: round trips (client+server in memory)", bm))
    eh, em = engine_in_memory(d_mem)
    rows.append(("engine in memory: full handshakes", eh))
    rows.append(("engine in memory: round trips, 1 session", em))
    rows.extend(over_udp(d_udp, "protocol"))
    rows.extend(over_udp(d_udp, "batched"))
    rows.extend(over_gateway(d_udp))
    mem = memory_per_session()

    def per_core(r: dict) -> float:
        return r["n"] / r["server_cpu"] if r["server_cpu"] else float("nan")

    bare_hs_core, bare_msg_core = per_core(bh), per_core(bm)
    w = max(len(label) for label, _ in rows)
    print()
    print(f"| {'measurement':<{w}} | {'count':>7} | {'wall /s':>9} | {'server CPU':>10} | {'busy':>5} | {'per server core /s':>18} | {'vs bare server':>14} |")
    print(f"|{'-' * (w + 2)}|{'-' * 9}|{'-' * 11}|{'-' * 12}|{'-' * 7}|{'-' * 20}|{'-' * 16}|")
    for label, r in rows:
        pc = per_core(r)
        ref = bare_hs_core if "handshake" in label else bare_msg_core
        busy = r["server_cpu"] / r["wall"] if r["wall"] else 0.0
        print(
            f"| {label:<{w}} | {r['n']:>7} | {r['n'] / r['wall']:>9,.0f} | {r['server_cpu']:>8.2f} s "
            f"| {busy:>5.0%} | {pc:>18,.0f} | {pc / ref:>13.2f}x |"
        )
    print()
    print("count: operations in the phase; wall /s: as the load generator saw it (on 2 cores the")
    print("single-process load generator is usually the limit); server CPU: CPU time the server side")
    print("used (thread CPU in memory, process CPU over UDP); busy: server CPU / wall; per server")
    print("core: count / server CPU, the figure the targets are about.")
    udp = [(label, r) for label, r in rows if label.startswith(("UDP", "gateway"))]
    for reader in ("protocol reader", "batched reader", "gateway"):
        mine = [r for label, r in udp if reader in label]
        hs_core = per_core(mine[0])
        msg_core = min(per_core(mine[1]), per_core(mine[2]))
        print(f"targets per gateway core ({reader}): handshakes {hs_core:,.0f}/s "
              f"(>= {HS_TARGET:,}: {'met' if hs_core >= HS_TARGET else 'NOT met'}), encrypted messages "
              f"{msg_core:,.0f}/s (>= {MSG_TARGET:,}: {'met' if msg_core >= MSG_TARGET else 'NOT met'})")
    for label, r in udp:
        print(f"  {label}: {r['server_cpu'] * 1e6 / max(1, r['n']):.0f} us server CPU per operation, "
              f"{r['server_sys'] / max(r['server_cpu'], 1e-9):.0%} in the kernel")
        extra = {k: v for k, v in r["server_metrics"].items() if v and ("failed" in k or "dropped" in k or "retrans" in k)}
        if extra or r.get("stalls"):
            print(f"    {extra} load-generator stalls={r.get('stalls', 0)} "
                  "(retransmissions: handshakes the generator abandoned when the previous phase ended)")
    print(f"  server RSS at the end: {udp[-1][1]['rss_kib'] / 1024:.0f} MiB")
    print(f"memory (RSS growth, 2,000 each): {mem['established_kib']:.1f} KiB per established session, "
          f"{mem['half_open_kib']:.1f} KiB per half-open handshake, 0 per ClientHello answered statelessly")


if __name__ == "__main__":
    main()
