"""gateway/runtime.py: the garbage collector tuned after start-up, the event loop chosen by
``serve --loop``; the real ``nce-gateway serve`` process on uvloop, answered by libcoap."""

from __future__ import annotations

import gc
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bench.common import coap_gateway_config, free_port
from gateway import runtime
from inspector.sqlite import SqliteStore
from tests.conftest import sim

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_gc():
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_gc_freezes_the_start_up_heap_and_raises_the_thresholds(restore_gc):
    kept = [[i] for i in range(1000)]  # start-up state: lives on, and is frozen
    frozen = runtime.tune_gc()
    assert frozen == gc.get_freeze_count() > len(kept)
    assert gc.get_threshold() == (50_000, 20, 20)
    assert runtime.tune_gc(gen0=1_000, older=(5, 7)) >= frozen
    assert gc.get_threshold() == (1_000, 5, 7)


def test_tune_gc_refuses_non_positive_thresholds(restore_gc):
    with pytest.raises(ValueError, match=r"GC thresholds must be positive, not 0, \(20, 20\)"):
        runtime.tune_gc(gen0=0)
    with pytest.raises(ValueError, match=r"not 700, \(10, 0\)"):
        runtime.tune_gc(gen0=700, older=(10, 0))


def test_gc_metrics_in_the_gateways_registry(restore_gc):
    registry = CollectorRegistry()
    runtime.register_gc_metrics(registry)
    gc.freeze()
    frozen_before = gc.get_freeze_count()  # frozen objects can only go now (freed by refcount)
    text = generate_latest(registry).decode()
    frozen_after = gc.get_freeze_count()
    assert 'python_gc_collections_total{generation="0"}' in text
    assert 'python_gc_objects_collected_total{generation="2"}' in text
    frozen = re.search(r"^nce_gc_frozen_objects (\S+)$", text, re.M)
    assert frozen is not None and frozen_after <= float(frozen.group(1)) <= frozen_before
    assert frozen_before - frozen_after < 100 and frozen_after > 1000
    assert "# HELP nce_gc_frozen_objects Objects moved to the permanent generation at start-up (gc.freeze)" in text


def test_loop_factory():
    import asyncio

    assert runtime.loop_factory("asyncio") is asyncio.new_event_loop
    with pytest.raises(ValueError, match="unknown event loop 'trio'; choose one of: asyncio, uvloop"):
        runtime.loop_factory("trio")
    assert runtime.run(asyncio.sleep(0, "done"), runtime.loop_factory("asyncio")) == "done"


def test_an_unknown_loop_is_refused_by_the_command_line():
    result = subprocess.run([sys.executable, "-m", "gateway", "serve", "--loop", "trio"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "argument --loop: invalid choice: 'trio' (choose from 'asyncio', 'uvloop')" in result.stderr


@pytest.mark.skipif(shutil.which("coap-client-notls") is None, reason="coap-client-notls missing: libcoap3-bin")
def test_serve_on_uvloop_answers_after_commit_and_reports_its_gc(tmp_path):
    pytest.importorskip("uvloop")
    device = sim(31)
    port = free_port()
    config = coap_gateway_config(tmp_path, port, '[log]\nlevel = "INFO"\nformat = "json"\n')
    SqliteStore(tmp_path / "bench.db").upsert_sims([device])
    process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(config), "--loop", "uvloop"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        api_port = int(re.search(r"API http://127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        answer = subprocess.run(["coap-client-notls", "-B", "5", "-a", device.ip_address, "-m", "post", "-e",
                                 "on uvloop", f"coap://127.0.0.1:{port}/?t=loop/uv"],
                                capture_output=True, text=True, timeout=30)
        assert answer.returncode == 0, answer.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    finally:
        process.terminate()
        process.wait(20)
    logs = [json.loads(entry) for entry in process.stderr.read().splitlines() if entry.startswith("{")]
    (tuned,) = [entry for entry in logs if entry.get("event") == "gc_tuned"]
    assert tuned["thresholds"] == [50_000, 20, 20] and tuned["frozen_objects"] > 10_000
    # frozen objects that are freed later leave the permanent generation: the gauge can only fall
    frozen = float(re.search(r"^nce_gc_frozen_objects (\S+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
    assert tuned["frozen_objects"] * 0.9 < frozen <= tuned["frozen_objects"]
    assert 'python_gc_collections_total{generation="0"}' in metrics
    rows = SqliteStore(tmp_path / "bench.db").connection().execute(
        "SELECT iccid, protocol, topic, payload FROM messages").fetchall()
    assert rows == [(device.iccid, "COAP", "loop/uv", b"on uvloop")]
