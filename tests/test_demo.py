"""``nce-gateway demo --duration N`` exits 0 and its summary shows every protocol delivered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_and_delivers_every_protocol():
    result = subprocess.run([sys.executable, "-m", "gateway", "demo", "--duration", "6", "--period", "0.5"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "TERM": "dumb"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("summary: "))
    summary = json.loads(line.removeprefix("summary: "))
    for protocol, kinds in (("UDP", ["UDP"]), ("COAP", ["COAP", "COAPS"]), ("LWM2M", ["LWM2M"])):
        assert summary["delivered"][protocol] >= 3, summary
        for kind in kinds:
            assert summary["acknowledged"][kind] >= 3 and not summary["failed"].get(kind), summary
    assert "events from every protocol were delivered" in result.stdout


def test_the_live_view_fits_an_80_by_24_terminal():
    """Taller than the terminal, rich's Live leaves copies of the first lines (the title) behind."""
    import io
    import time
    from types import SimpleNamespace

    from rich.console import Console
    from rich.markup import escape

    from firmware_examples.webhook_sink import Sink, describe
    from gateway.demo import DemoStats, view
    from gateway.metrics import Metrics

    stats = DemoStats()
    event = {"type": "TELEMETRY_DATA", "source": "LWM2M", "device": {"iccid": "8988280690000000003"},
             "payload": {"type": "JSON", "value": {f"/3303/0/{5700 + i}": 21.5 for i in range(20)}}}
    stats.lines.extend(describe(event) for _ in range(40))
    stopped = "OSError('[/x] a message long enough to be cut at the edge of an 80-column terminal')"
    stats.lines.append(f"[red]demo-UDP stopped: {escape(stopped)}[/red]")
    console = Console(width=80, height=24, file=io.StringIO(), color_system=None)
    gw, sink = SimpleNamespace(metrics=Metrics()), Sink()
    console.print(view(gw, sink, stats, time.monotonic()))  # the default: 24 lines
    lines = console.file.getvalue().splitlines()
    assert len(lines) == 23  # one line is left for the cursor
    assert max(len(line) for line in lines) <= 80
    assert lines[0].startswith("nce-gateway demo — 0 s (Ctrl-C stops)")
    assert sum(line.startswith("nce-gateway demo") for line in lines) == 1
    assert lines[9:12] == ["stored: UDP 0, COAP 0, LWM2M 0   ·   errors 0, lifecycle 0",
                            "delivered: UDP 0, COAP 0, LWM2M 0 (COAP = plain + DTLS)", ""]
    assert lines[-1].startswith("demo-UDP stopped: OSError(") and lines[-1].endswith("…")
    small = Console(width=60, height=15, file=io.StringIO(), color_system=None)
    small.print(view(gw, sink, stats, time.monotonic(), small.height))
    assert len(small.file.getvalue().splitlines()) == 14
