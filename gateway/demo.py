"""``nce-gateway demo``: everything working, in one command.

One process tree: a gateway with a temporary store, a local HTTPS webhook sink that prints
each event, an active translation template (the SDK blueprint's), and a small emulated fleet
across every protocol, with a live view until Ctrl-C (or ``--duration``), then a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.errors import MarkupError
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from firmware_examples.coap_client import CoapClient
from firmware_examples.device import CoapsDevice, os_auth
from firmware_examples.emulator import send_udp
from firmware_examples.lwm2m_client import LwM2MClient
from firmware_examples.webhook_sink import Sink, describe
from inspector.records import Sim

from .app import Gateway
from .config import WebhookConfig, load_config

PROTOCOLS = ("UDP", "COAP", "COAPS", "LWM2M")


@dataclass
class DemoStats:
    sent: Counter = field(default_factory=Counter)
    acknowledged: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)


def demo_sims() -> dict[str, Sim]:
    """One SIM per emulated device kind, on 127.0.5.x."""
    kinds = ("UDP", "COAP", "COAPS", "LWM2M")
    return {kind: Sim(iccid=f"898828069000000{i:04d}", imsi=f"90140590000{i:04d}", ip_address=f"127.0.5.{10 + i}",
                      label=f"demo-{kind.lower()}") for i, kind in enumerate(kinds)}


def reading(counter: int) -> bytes:
    """The SDK blueprint's Energy Saver reading (selector 1, battery, signal, version)."""
    return bytes([1, 99 - counter % 50, 60 + random.randrange(30)]) + b"2.2.1"


async def udp_device(gw: Gateway, sim: Sim, stats: DemoStats, period: float) -> None:
    n = 0
    while True:
        await asyncio.to_thread(send_udp, "127.0.0.1", gw.udp_port, sim.ip_address, reading(n))
        stats.sent["UDP"] += 1
        stats.acknowledged["UDP"] += 1  # UDP has no answer
        n += 1
        await asyncio.sleep(period)


async def coap_device(gw: Gateway, sim: Sim, stats: DemoStats, period: float) -> None:
    n = 0
    with CoapClient(("127.0.0.1", gw.coap_port), sim.ip_address) as client:
        while True:
            stats.sent["COAP"] += 1
            result = await asyncio.to_thread(client.post, "/", reading(n), topic="demo/readings", timeout=10)
            (stats.acknowledged if result.ok else stats.failed)["COAP"] += 1
            n += 1
            await asyncio.sleep(period)


async def coaps_device(gw: Gateway, sim: Sim, stats: DemoStats, period: float) -> None:
    onboarding = await asyncio.to_thread(os_auth, ("127.0.0.1", gw.coap_port), sim.ip_address)
    n = 0
    async with CoapsDevice(("127.0.0.1", gw.coaps_port), onboarding, sim.ip_address) as device:
        while True:
            stats.sent["COAPS"] += 1
            code = await device.post(reading(n), topic="demo/secure")
            (stats.acknowledged if code == "2.04" else stats.failed)["COAPS"] += 1
            n += 1
            await asyncio.sleep(period)


async def lwm2m_device(gw: Gateway, sim: Sim, stats: DemoStats, period: float) -> None:
    client = await LwM2MClient.start(sim.iccid, sim.ip_address)
    try:
        await client.bootstrap(f"coap://127.0.0.1:{gw.coap_port}")
        await client.register()
        n = 0
        while True:
            stats.sent["LWM2M"] += 1
            response = await client.send({"/3303/0/5700": round(20 + random.uniform(-2, 2), 1),
                                          "/3303/0/5701": "Cel"})
            (stats.acknowledged if response.code.is_successful() else stats.failed)["LWM2M"] += 1
            n += 1
            await asyncio.sleep(period)
    finally:
        await client.close()


DEVICES: dict[str, Callable[[Gateway, Sim, DemoStats, float], Awaitable[None]]] = {
    "UDP": udp_device,
    "COAP": coap_device,
    "COAPS": coaps_device,
    "LWM2M": lwm2m_device,
}


# lines of the view besides the events: the table (title, 3 rule/header lines, a row per device,
# the bottom rule), two summary lines, a blank line; and one line rich's Live keeps for the cursor
FIXED_LINES = 1 + 3 + len(PROTOCOLS) + 1 + 2 + 1 + 1


def view(gw: Gateway, sink: Sink, stats: DemoStats, started: float, height: int = 24) -> Group:
    """The live view, never taller than ``height`` lines and never wrapping a line: a view
    taller than the terminal makes rich's Live leave copies of its first lines behind."""
    table = Table(title=f"nce-gateway demo — {time.monotonic() - started:.0f} s (Ctrl-C stops)", title_justify="left")
    for column in ("device", "sent", "acknowledged", "failed"):
        table.add_column(column, justify="right" if column != "device" else "left")
    for kind in DEVICES:
        table.add_row(kind, str(stats.sent[kind]), str(stats.acknowledged[kind]), str(stats.failed[kind]))
    delivered = ", ".join(f"{p} {sink.counts.get(f'TELEMETRY_DATA/{p}', 0)}" for p in ("UDP", "COAP", "LWM2M"))
    stored = ", ".join(f"{p} {int(v)}" for p, v in _stored(gw).items())
    summary = [f"stored: {stored}   ·   errors {sink.counts.get('ERROR', 0)}, "
               f"lifecycle {sink.counts.get('LIFECYCLE', 0)}",
               f"delivered: {delivered} (COAP = plain + DTLS)"]
    room = max(0, height - FIXED_LINES)
    events = stats.lines[-room:] if room else []
    return Group(table, *(_line(text) for text in [*summary, "", *events]))


def _line(markup: str) -> Text:
    """One line, cut with an ellipsis at the terminal's edge (an event's JSON is not markup)."""
    try:
        line = Text.from_markup(markup, overflow="ellipsis")
    except MarkupError:
        line = Text(markup, overflow="ellipsis")
    line.no_wrap = True
    return line


def _stored(gw: Gateway) -> dict[str, float]:
    return {p: gw.metrics.stored.labels(p)._value.get() for p in ("UDP", "COAP", "LWM2M")}


async def run_demo(duration: float | None, period: float, console: Console) -> int:
    stats = DemoStats()
    with tempfile.TemporaryDirectory(prefix="nce-demo-") as tmp:
        sink = Sink(on_event=lambda event: stats.lines.append(escape(describe(event))))
        await sink.start()
        ca_file = Path(tmp) / "sink-ca.pem"
        sink.write_ca(ca_file)
        config = load_config(environ={})
        config.store.path = str(Path(tmp) / "demo.db")
        config.store.synchronous = "normal"
        for section in (config.udp, config.coap, config.coaps):
            section.bind, section.port = "127.0.0.1", 0
        config.api.port = 0
        config.log.level = "WARNING"
        config.targets.allow_loopback = True  # the demo's sink is on this host
        config.webhooks = [WebhookConfig(name="demo-sink", url=f"https://localhost:{sink.port}/events",
                                         ca_file=str(ca_file), retry_schedule=[1, 2, 5])]
        gw = Gateway(config)
        sims = demo_sims()
        gw.store.upsert_sims(list(sims.values()))
        await gw.start()
        await install_template(gw)
        console.print(f"gateway: UDP {gw.udp_port}, CoAP {gw.coap_port}, CoAPs {gw.coaps_port}, "
                      f"API http://127.0.0.1:{gw.api_port}  ·  webhook sink https://localhost:{sink.port}/  ·  "
                      f"store {config.store.path}")
        tasks = [asyncio.create_task(device(gw, sims[kind], stats, period), name=f"demo-{kind}")
                 for kind, device in DEVICES.items()]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, stop.set)
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        started = time.monotonic()
        try:
            with Live(view(gw, sink, stats, started, console.height), console=console, refresh_per_second=4) as live:
                while not stop.is_set():
                    if duration is not None and time.monotonic() - started >= duration:
                        break
                    for task in tasks:
                        if task.done() and task.exception() is not None:
                            stats.lines.append(f"[red]{task.get_name()} stopped: {escape(repr(task.exception()))}[/red]")
                            tasks.remove(task)
                            break
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.25)
                    live.update(view(gw, sink, stats, started, console.height))
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                # let the last events arrive
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and gw.committer.pending_count:
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
                live.update(view(gw, sink, stats, started, console.height))
        finally:
            await gw.stop()
            await sink.stop()
    delivered = {p: sink.counts.get(f"TELEMETRY_DATA/{p}", 0) for p in ("UDP", "COAP", "LWM2M")}
    expected = {("COAP" if k == "COAPS" else k) for k in DEVICES}
    summary = {"sent": dict(stats.sent), "acknowledged": dict(stats.acknowledged), "failed": dict(stats.failed),
               "delivered": delivered, "errors": sink.counts.get("ERROR", 0)}
    print("\nsummary: " + json.dumps(summary), flush=True)
    missing = [p for p in sorted(expected) if not delivered.get(p)]
    if missing:
        console.print(f"[red]no events delivered for {', '.join(missing)}[/red]")
        return 1
    console.print("[green]events from every protocol were delivered[/green]")
    return 0


async def install_template(gw: Gateway) -> None:
    """Activate the SDK blueprint's translation template for UDP and CoAP."""
    await gw.templates.create(name="sdk-blueprint", template=BLUEPRINT_TEMPLATE, protocols=["UDP", "COAP"],
                              status="ACTIVE")


BLUEPRINT_TEMPLATE = {
    "name": "sdk-blueprint-energy-saver",
    "sense": [{
        "switch": {"byte": 0, "bytelength": 1, "type": "int"},
        "on": [{"case": 1, "do": [
            {"asset": "data_type", "value": "Energy_Saver"},
            {"asset": "battery_level", "value": {"byte": 1, "bytelength": 1, "type": "uint"}},
            {"asset": "signal_strength", "value": {"byte": 2, "bytelength": 1, "type": "uint"}},
            {"asset": "software_version", "value": {"byte": 3, "bytelength": 5, "type": "string"}},
        ]}],
    }],
}
