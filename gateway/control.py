"""Changes made by another process (the CLI) in force at once, not after the next poll.

The store follower (``gateway/follow.py``) polls the store's version numbers every
``registry.poll_interval_seconds``, so a script that activates a template and sends a message
straight away would race it. So the running gateway also listens on a local control socket;
the CLI, after committing its change, connects and sends ``apply``; the gateway runs the
follower's check (reloading whatever moved) and answers ``applied`` once the change is in
force. The CLI returns only then.

The socket is a Linux abstract Unix socket named after the store file (its real path), so
every process that opens the same store finds the same gateway, there is no socket file to
go stale after a crash, and no path length limit. A peer can only ask for that check, or
(``metrics``) for the worker's Prometheus text, the same that ``GET /metrics`` serves without a
token: the gateway reads nothing else from it, and serves a bounded number of connections, each
with a deadline. No listener (no gateway running on this store) means there is nothing to wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("nce.control")

REQUEST = b"apply\n"
ANSWER = b"applied\n"
METRICS = b"metrics\n"  # this worker's Prometheus text, for /metrics of the worker a scrape reached
MAX_CONNECTIONS = 8
READ_TIMEOUT = 2.0


def available() -> bool:
    """Abstract Unix sockets are a Linux feature; elsewhere the follower's polling is all."""
    return sys.platform.startswith("linux")


def address(store_path: str | Path, worker: int | None = None) -> str:
    """The abstract socket name of the gateway serving this store file or database URL
    (``StoreConfig.identity()``; of its worker k when several processes serve it: each has its
    own socket, gateway/supervisor.py)."""
    name = os.fspath(store_path)
    real = name if "://" in name else os.path.realpath(name)
    name = "\0nce-gateway/" + hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return name if worker is None else f"{name}/w{worker}"


class ControlServer:
    """Answers ``apply`` after ``check()`` (the follower's reload of what changed) has run."""

    def __init__(self, store_path: str | Path, check: Callable[[], Awaitable[None]],
                 worker: int | None = None, metrics: Callable[[], bytes] | None = None) -> None:
        self.address = address(store_path, worker)
        self.check = check
        self.metrics = metrics
        self._server: asyncio.AbstractServer | None = None
        self._open = 0

    async def start(self) -> bool:
        """Listen; False (logged) when another gateway on the same store already does."""
        if not available():
            return False
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=self.address)
        except OSError as exc:
            log.warning("control socket not available (%s): changes made by the CLI reach this gateway "
                        "within registry.poll_interval_seconds", exc.strerror or exc,
                        extra={"event": "control_unavailable"})
            return False
        return True

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        try:
            if self._open > MAX_CONNECTIONS:
                return
            try:
                line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
            except (asyncio.TimeoutError, ConnectionError, ValueError):
                return
            if line == REQUEST:
                await self.check()
                writer.write(ANSWER)
            elif line == METRICS and self.metrics is not None:
                writer.write(self.metrics())  # what GET /metrics shows: no device data, no secrets
            else:
                writer.write(b"unknown request\n")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            self._open -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


MAX_WORKERS = 256


def apply_now(store_path: str | Path, timeout: float = 5.0) -> bool | None:
    """Ask the gateway running on this store to apply the store's changes now (blocking).

    True: it confirmed, the change is in force. None: no gateway is running on this store (or
    the platform has no control socket). False: a gateway listens but did not confirm within
    ``timeout``; it still applies the change at its next poll. Several worker processes
    (``[process] workers``) each have their own socket, asked in turn (0, 1, ... up to the
    first that is not there): True only when every one confirmed.
    """
    if not available():
        return None
    answers = [_ask(address(store_path), timeout)]
    for worker in range(MAX_WORKERS):
        answer = _ask(address(store_path, worker), timeout)
        if answer is None:
            break
        answers.append(answer)
    found = [a for a in answers if a is not None]
    if not found:
        return None
    return all(found)


def _ask(name: str, timeout: float) -> bool | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(name)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except OSError:
            return False
        try:
            sock.sendall(REQUEST)
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(64)
                if not chunk:
                    break
                answer += chunk
        except OSError:
            return False
        return answer == ANSWER


async def worker_metrics(store_path: str | Path, worker: int, timeout: float = 2.0) -> bytes | None:
    """Another worker's Prometheus text over its control socket; None when it does not answer
    (restarting, or stuck) within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(address(store_path, worker))
            try:
                writer.write(METRICS)
                await writer.drain()
                return await reader.read()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return None
