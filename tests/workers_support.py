"""Gateway processes as children of the test (tests/test_workers.py on SQLite,
tests/test_workers_postgres.py on PostgreSQL): start, read the log, stop; who holds the leases."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from inspector import leases

ROOT = Path(__file__).resolve().parents[1]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Supervised:
    """``nce-gateway serve`` as a child process (``workers`` > 1: a supervisor and its workers;
    1: one gateway process); its log lines collected."""

    def __init__(self, config: Path, workers: int, env: dict[str, str] | None = None) -> None:
        environ = dict(os.environ, NCE_PROCESS_WORKERS=str(workers), **(env or {}))
        self.process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(config)],
                                        cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        assert self.process.stdout is not None
        self.lines: list[str] = []
        self.first = ""
        for line in self.process.stdout:  # a supervisor says it first; one process after its start
            if line.startswith("nce-gateway listening"):
                self.first = line
                break
            self.lines.append(line)
        if not self.first:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"the gateway did not start:\n{''.join(self.lines[-30:])}")
        if workers > 1:
            assert f"({workers} workers)" in self.first, self.first
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def api_port(self) -> int:
        return int(self.first.rsplit(":", 1)[1].split()[0])

    @property
    def coap_port(self) -> int:
        return int(self.first.split("CoAP ", 1)[1].split(",", 1)[0])

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log records with ``"event": event``."""
        out = []
        for line in list(self.lines):
            if f'"event": "{event}"' in line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    async def wait_for_log(self, text: str, count: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(text in line for line in list(self.lines)) < count:
            assert time.monotonic() < deadline, f"no {count} x {text!r} in the log:\n{''.join(self.lines[-30:])}"
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL if still running (a test's cleanup after a failure)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(40)
        self._reader.join(5)
        return code


def lease_holders(store: Any) -> dict[str, str]:
    """name -> holder of every lease in ``store`` (a path: a SQLite file, opened and closed here)."""
    if isinstance(store, (str, Path)):
        from inspector.sqlite import SqliteStore
        opened = SqliteStore(store)
        try:
            return lease_holders(opened)
        finally:
            opened.close()
    return {lease.name: lease.holder for lease in store.read_with(leases.holders)}
