"""Emulate a fleet of SIMs against a gateway: a load generator with a live view and a summary.

    python -m firmware_examples.fleet --generate 1000 --sims fleet.csv --import-config examples/gateway.toml
    python -m firmware_examples.fleet --sims fleet.csv --protocol coap --rate 2000/s --duration 60s

Protocols: udp, coap (CON), coap-non, coaps (each SIM onboards with GET /bootstrap, then one
DTLS session per SIM), lwm2m (each SIM registers, then Sends SenML JSON to /dp).

Every SIM sends from its own source address (the ``ip_address`` column, 127.x.y.z on one
machine), exactly as real devices are told apart by the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import re
import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from .device import CoapsDevice, os_auth
from .loadgen import LoadStats, run_coap_load, run_udp_load, source_ips
from .lwm2m_fleet import register_request, run_registrations

PROTOCOLS = ("udp", "coap", "coap-non", "coaps", "lwm2m")

# what an LwM2M device of the fleet Sends: a temperature in SenML JSON (content format 110)
LWM2M_SEND = b'[{"bn":"/3303/0/","n":"5700","v":21.5}]'
SENML_JSON = 110


def parse_rate(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(/s)?\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"rate {text!r}: expected e.g. 2000/s")
    return float(match.group(1))


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"duration {text!r}: expected e.g. 60s, 2m, 500ms")
    value = float(match.group(1))
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def generate_sims(path: Path, count: int, first_ip: str = "127.2.0.0") -> None:
    """A SIM file for ``count`` emulated devices on consecutive loopback addresses."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["iccid", "imsi", "ip_address", "msisdn", "imei", "label", "status"])
        for i, ip in enumerate(source_ips(count, first_ip)):
            writer.writerow([f"8988280680{i:09d}", f"90140530{i:07d}", ip, "", "", f"fleet-{i}", "Enabled"])


def read_sims(path: Path) -> list[tuple[str, str]]:
    """(ICCID, IP address) of the enabled SIMs of a SIM file."""
    with path.open(newline="") as source:
        return [(row["iccid"], row["ip_address"]) for row in csv.DictReader(source)
                if row.get("status", "Enabled") == "Enabled"]


def register_lwm2m(server: tuple[str, int], sims: list[tuple[str, str]], window: int) -> LoadStats:
    """Register every SIM as an LwM2M client (endpoint name = ICCID) before it Sends."""
    requests = [register_request(iccid, i) for i, (iccid, _) in enumerate(sims)]
    registered = run_registrations(server, [ip for _, ip in sims], requests, window=window)
    stats = LoadStats()
    for reason, count in registered.failed.items():
        stats.fail(f"register {reason}", count)
    return stats


async def run_coaps_load(plain: tuple[str, int], secure: tuple[str, int], ips: list[str], *, duration: float,
                         rate: float | None, window: int, payload: bytes, topic: str | None,
                         progress=None) -> LoadStats:
    """Each SIM onboards (GET /bootstrap, like the SDK's os_auth), opens its DTLS session, then
    the fleet sends CON POSTs over DTLS, round robin, at ``rate`` (at most ``window`` in flight)."""
    stats = LoadStats()
    devices: list[CoapsDevice] = []
    for ip in ips:
        try:
            onboarding = await asyncio.to_thread(os_auth, plain, ip)
            device = CoapsDevice(secure, onboarding, ip)
            await device.connect()
            devices.append(device)
        except Exception as exc:  # counted, the rest of the fleet goes on
            stats.fail(f"onboarding: {type(exc).__name__}")
    if not devices:
        return stats
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + duration
    interval = 1.0 / rate if rate else 0.0
    slots = asyncio.Semaphore(window)
    pending: set[asyncio.Task] = set()

    async def one(device: CoapsDevice) -> None:
        sent_at = loop.time()
        code = await device.post(payload, topic=topic)
        if code == "2.04":
            stats.acknowledged += 1
            stats.latencies.append(loop.time() - sent_at)
        else:
            stats.fail(code)
        slots.release()

    busy: set[CoapsDevice] = set()
    n = 0
    next_progress = start + 0.5
    while (now := loop.time()) < end:
        await slots.acquire()
        device = devices[n % len(devices)]
        n += 1
        if device in busy:  # one request at a time per device session
            slots.release()
            await asyncio.sleep(0)
            continue
        busy.add(device)
        stats.sent += 1
        task = asyncio.create_task(one(device))
        task.add_done_callback(lambda t, d=device: busy.discard(d))
        pending.add(task)
        task.add_done_callback(pending.discard)
        if interval:
            await asyncio.sleep(max(0.0, start + n * interval - loop.time()))
        if progress is not None and now >= next_progress:
            next_progress = now + 0.5
            stats.seconds = now - start
            progress(stats, now - start)
    await asyncio.gather(*pending, return_exceptions=True)
    stats.seconds = loop.time() - start
    for device in devices:
        await device.close()
    return stats


def summary_table(protocol: str, stats: LoadStats, final: bool) -> Table:
    table = Table(title=f"fleet: {protocol}" + ("" if final else " (running)"), title_justify="left")
    for column in ("elapsed s", "sent", "acknowledged", "rate/s", "failed", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    lat = stats.latencies
    acknowledged = "-" if protocol == "udp" else f"{stats.acknowledged:,}"
    rate = (stats.sent if protocol == "udp" else stats.acknowledged) / stats.seconds if stats.seconds else 0.0
    failed = ", ".join(f"{k}: {v:,}" for k, v in sorted(stats.failed.items())) or "0"
    table.add_row(f"{stats.seconds:.1f}", f"{stats.sent:,}", acknowledged, f"{rate:,.0f}", failed,
                  f"{stats.percentile(50) * 1000:.2f}" if lat else "-",
                  f"{stats.percentile(99) * 1000:.2f}" if lat else "-",
                  f"{max(lat) * 1000:.2f}" if lat else "-")
    return table


def run(args: argparse.Namespace) -> LoadStats:
    sims = read_sims(args.sims)
    ips = [ip for _, ip in sims]
    if not ips:
        raise SystemExit(f"{args.sims}: no enabled SIMs")
    port = args.port or (4445 if args.protocol == "udp" else 5683)
    server = (args.host, port)
    console = Console(stderr=True)
    state: dict[str, object] = {}
    latest = LoadStats()

    def progress(stats: LoadStats, elapsed: float) -> None:
        snapshot = LoadStats(stats.sent, stats.acknowledged, dict(stats.failed), stats.latencies[-20000:], elapsed)
        state["snapshot"] = snapshot

    def work() -> None:
        if args.protocol == "coaps":
            coaps_port = args.coaps_port or 5684
            state["result"] = asyncio.run(run_coaps_load(
                (args.host, port), (args.host, coaps_port), ips, duration=args.duration, rate=args.rate,
                window=args.window, payload=args.payload, topic=args.topic, progress=progress))
        elif args.protocol == "lwm2m":
            registration = register_lwm2m(server, sims, args.window)
            result = run_coap_load(server, ips, duration=args.duration, window=args.window, rate=args.rate,
                                   payload=LWM2M_SEND, path="/dp", content_format=SENML_JSON, progress=progress)
            for reason, count in registration.failed.items():
                result.fail(reason, count)
            state["result"] = result
        elif args.protocol == "udp":
            state["result"] = run_udp_load(server, ips, duration=args.duration, rate=args.rate,
                                           payload=args.payload, progress=progress)
        else:
            state["result"] = run_coap_load(server, ips, duration=args.duration, window=args.window, rate=args.rate,
                                            payload=args.payload, topic=args.topic,
                                            confirmable=args.protocol == "coap", progress=progress)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    if args.quiet:
        thread.join()
    else:
        with Live(summary_table(args.protocol, latest, False), console=console, refresh_per_second=4) as live:
            while thread.is_alive():
                thread.join(0.25)
                snapshot = state.get("snapshot")
                if isinstance(snapshot, LoadStats):
                    live.update(summary_table(args.protocol, snapshot, False))
    result = state["result"]
    assert isinstance(result, LoadStats)
    Console().print(summary_table(args.protocol, result, True))
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m firmware_examples.fleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=Path, required=True, help="SIM file (CSV with ip_address); written with --generate")
    parser.add_argument("--generate", type=int, metavar="N", help="first write a SIM file for N emulated devices")
    parser.add_argument("--import-config", metavar="FILE",
                        help="import the SIM file into the gateway whose config this is (same as nce-gateway sims import)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="coap")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="default 4445 (udp) or 5683 (coap, lwm2m, and coaps onboarding)")
    parser.add_argument("--coaps-port", type=int, help="coaps: the DTLS port (default 5684)")
    parser.add_argument("--rate", type=parse_rate, default=None, help="messages per second in total, e.g. 2000/s")
    parser.add_argument("--duration", type=parse_duration, default=parse_duration("10s"), help="e.g. 60s, 2m")
    parser.add_argument("--window", type=int, default=256, help="CoAP: requests in flight at most")
    parser.add_argument("--topic", help="CoAP: t= query")
    parser.add_argument("--payload-hex", default="016354322e322e31", help="payload bytes (default: an Energy Saver reading)")
    parser.add_argument("--quiet", action="store_true", help="no live view, only the summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.payload = bytes.fromhex(args.payload_hex)
    except ValueError:
        print(f"error: --payload-hex {args.payload_hex!r} is not hex", file=sys.stderr)
        return 2
    if args.generate:
        generate_sims(args.sims, args.generate)
        print(f"wrote {args.generate} SIMs to {args.sims}")
    if args.import_config:
        from gateway.cli import main as gateway_cli
        code = gateway_cli(["sims", "import", str(args.sims), "--config", args.import_config])
        if code:
            return code
    if args.protocol == "udp" and args.rate is None:
        args.rate = 1000.0
    if args.duration <= 0:  # only generate and/or import
        return 0
    stats = run(args)
    return 0 if not stats.failed else 1


if __name__ == "__main__":
    sys.exit(main())
