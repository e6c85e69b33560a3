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
