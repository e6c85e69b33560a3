"""``nce-gateway serve`` with ``[process] workers`` > 1: one supervisor, N worker processes.

The supervisor does no device work. It

1. binds every listening socket once: for each UDP transport (udp, coap, coaps, radius) a
   ``SO_REUSEPORT`` group of N sockets whose classic BPF program sends a source address
   always to the same socket (gateway/transports/reuseport.py), and one listening TCP socket
   for the management API that every worker accepts from (one shared accept queue: a
   connection waiting there is served by whichever worker is free, and none is lost with a
   worker that dies, as it would be in a per-worker ``SO_REUSEPORT`` TCP queue);
2. starts worker k as ``python -m gateway serve`` with socket k of each group and the shared
   API socket inherited (gateway/workers.py), the bound ports in its environment;
3. restarts a worker that dies, after a delay that doubles while it keeps dying quickly
   (``process.restart_delay_seconds`` up to ``process.restart_delay_max_seconds``), logged;
   the worker's ``nce_worker_restarts`` metric says how often its slot was restarted. The
   supervisor keeps the sockets open meanwhile, so the dead worker's sources keep their slot
   and their datagrams wait in its socket buffer (nothing moves to another worker);
4. forwards SIGTERM and SIGINT to every worker for a clean stop (each finishes its commits
   and hands back its leases), SIGKILL after ``STOP_SECONDS``.

Workers get SIGTERM if the supervisor itself dies (``PR_SET_PDEATHSIG``), so a ``kill -9`` of
the supervisor leaves no orphan holding the ports.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from inspector.sqlite import SqliteStore

from .config import GatewayConfig
from .transports.reuseport import bind_group
from .workers import SOCKETS_VARIABLE, WORKER_VARIABLE, encode_sockets, socket_key

log = logging.getLogger("nce.supervisor")

STOP_SECONDS = 30.0
#: a worker that lived this long is considered healthy: its next restart waits the base delay
HEALTHY_SECONDS = 30.0
UDP_SECTIONS = ("udp", "coap", "coaps", "radius")
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass
class Slot:
    index: int
    fds: dict[str, int]
    process: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    delay: float = 0.0
    due: float = 0.0  # monotonic time of the next start, while waiting


@dataclass
class Listening:
    """The sockets the supervisor bound, and the ports they got (port 0 in the config)."""

    groups: dict[str, list[socket.socket]] = field(default_factory=dict)
    api: socket.socket | None = None
    ports: dict[str, int] = field(default_factory=dict)

    def close(self) -> None:
        for socks in self.groups.values():
            for sock in socks:
                sock.close()
        if self.api is not None:
            self.api.close()


def bind_all(config: GatewayConfig, workers: int) -> Listening:
    bound = Listening()
    try:
        for section in UDP_SECTIONS:
            cfg = getattr(config, section)
            if not cfg.enabled:
                continue
            try:
                bound.groups[section] = bind_group(cfg.bind, cfg.port, workers)
            except OSError as exc:
                raise OSError(exc.errno, f"{section} {cfg.bind}:{cfg.port}: {exc.strerror or exc}") from None
            bound.ports[section] = bound.groups[section][0].getsockname()[1]
        if config.api.enabled:
            api = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            api.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                api.bind((config.api.bind, config.api.port))
            except OSError as exc:
                api.close()
                raise OSError(exc.errno, f"API {config.api.bind}:{config.api.port}: {exc.strerror or exc}") from None
            api.listen(1024)
            bound.api = api
            bound.ports["api"] = api.getsockname()[1]
    except BaseException:
        bound.close()
        raise
    return bound


class Supervisor:
    def __init__(self, config: GatewayConfig, workers: int, config_path: str | None = None,
                 argv: list[str] | None = None) -> None:
        self.config = config
        self.config_path = os.path.abspath(config_path) if config_path else None
        self.workers = workers
        self.argv = argv or [sys.executable, "-m", "gateway", "serve"]
        store = SqliteStore(config.store.path, config.store.synchronous, config.store.secrets_key())
        store.close()  # migrated once here: N workers opening a new store at once would race
        self.bound = bind_all(config, workers)
        self.slots = [Slot(k, self._fds_of(k)) for k in range(workers)]
        self.stopping = False

    def _fds_of(self, k: int) -> dict[str, int]:
        fds = {}
        for section, socks in self.bound.groups.items():
            cfg = getattr(self.config, section)
            fds[socket_key(socket.SOCK_DGRAM, cfg.bind, self.bound.ports[section])] = socks[k].fileno()
        if self.bound.api is not None:
            fds[socket_key(socket.SOCK_STREAM, self.config.api.bind, self.bound.ports["api"])] = self.bound.api.fileno()
        return fds

    def environment(self, slot: Slot) -> dict[str, str]:
        env = dict(os.environ)
        if self.config_path:
            env["NCE_CONFIG"] = self.config_path  # the same file (and the same NCE_* overrides)
        env["NCE_PROCESS_WORKERS"] = "1"  # a worker runs the gateway itself, never another supervisor
        env[WORKER_VARIABLE] = f"{slot.index}/{self.workers}"
        env[SOCKETS_VARIABLE] = encode_sockets(slot.fds)
        env["NCE_WORKER_RESTARTS"] = str(slot.restarts)
        for section, port in self.bound.ports.items():
            env[f"NCE_{section.upper()}_PORT"] = str(port)
        return env

    def start(self, slot: Slot) -> None:
        slot.process = subprocess.Popen(self.argv, env=self.environment(slot), pass_fds=tuple(slot.fds.values()),
                                        preexec_fn=_die_with_parent)
        slot.started = time.monotonic()
        log.info("worker %d started (pid %d)", slot.index, slot.process.pid,
                 extra={"event": "worker_started", "worker": slot.index, "pid": slot.process.pid,
                        "restarts": slot.restarts})

    def _reap(self, slot: Slot, now: float) -> None:
        """A worker ended: schedule its restart with backoff."""
        assert slot.process is not None
        code = slot.process.returncode
        lived = now - slot.started
        base = self.config.process.restart_delay_seconds
        slot.delay = base if lived >= HEALTHY_SECONDS or slot.delay == 0 else min(
            slot.delay * 2, self.config.process.restart_delay_max_seconds)
        slot.due = now + slot.delay
        slot.restarts += 1
        log.error("worker %d (pid %d) ended with %s after %.1f s; restarting in %.1f s", slot.index,
                  slot.process.pid, _describe(code), lived, slot.delay,
                  extra={"event": "worker_died", "worker": slot.index, "pid": slot.process.pid, "code": code,
                         "restart_in": slot.delay, "restarts": slot.restarts})
        slot.process = None

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        ports = self.bound.ports
        print(f"nce-gateway listening: UDP {ports.get('udp', 0)}, CoAP {ports.get('coap', 0)}, "
              f"CoAPs {ports.get('coaps', 0)}, API http://{self.config.api.bind}:{ports.get('api', 0)} "
              f"({self.workers} workers)\n", end="", flush=True)  # one write, newline included (app.serve)
        try:
            for slot in self.slots:
                self.start(slot)
            while not self.stopping:
                now = time.monotonic()
                for slot in self.slots:
                    if slot.process is not None and slot.process.poll() is not None:
                        self._reap(slot, now)
                    if slot.process is None and now >= slot.due and not self.stopping:
                        self.start(slot)
                time.sleep(0.1)
        finally:
            self._stop_all()
            self.bound.close()
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        if not self.stopping:
            log.info("stopping %d workers (%s)", self.workers, signal.Signals(signum).name,
                     extra={"event": "stopping"})
        self.stopping = True

    def _stop_all(self) -> None:
        running = [s.process for s in self.slots if s.process is not None and s.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop within %g s; killing it", process.pid, STOP_SECONDS,
                          extra={"event": "worker_killed", "pid": process.pid})
                process.kill()
                process.wait()
        log.info("supervisor stopped", extra={"event": "stopped"})


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            pass
    return f"exit code {code}"
