"""What a worker process was given by its supervisor (gateway/supervisor.py): its slot and sockets.

The supervisor binds every listening socket itself and passes them down (``pass_fds``), so
the reuseport groups keep their order when a worker restarts (gateway/transports/reuseport.py)
and the API's accept queue outlives any one worker. It names them in the environment:

- ``NCE_WORKER=k/N``: this process is worker k of N;
- ``NCE_WORKER_SOCKETS=udp/127.0.0.1/5683=7,tcp/127.0.0.1/8080=9``: inherited descriptors by
  protocol, bind address and port (the worker's config carries the bound ports, so the
  transports ask for exactly what they would have bound).

A process started otherwise (tests, ``workers = 1``) is worker 0 of 1 and binds its own sockets.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

WORKER_VARIABLE = "NCE_WORKER"
SOCKETS_VARIABLE = "NCE_WORKER_SOCKETS"


@dataclass(frozen=True)
class WorkerSlot:
    index: int = 0
    count: int = 1

    @property
    def several(self) -> bool:
        return self.count > 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def slot_from_environ(environ: dict[str, str] | None = None) -> WorkerSlot:
    value = (os.environ if environ is None else environ).get(WORKER_VARIABLE, "")
    if not value:
        return WorkerSlot()
    index, _, count = value.partition("/")
    slot = WorkerSlot(int(index), int(count))
    if not 0 <= slot.index < slot.count:
        raise ValueError(f"{WORKER_VARIABLE}={value}: not k/N with 0 <= k < N")
    return slot


def socket_key(kind: int, bind: str, port: int) -> str:
    return f"{'udp' if kind == socket.SOCK_DGRAM else 'tcp'}/{bind}/{port}"


_inherited: dict[str, int] | None = None


def _table() -> dict[str, int]:
    global _inherited
    if _inherited is None:
        _inherited = {}
        for item in filter(None, os.environ.get(SOCKETS_VARIABLE, "").split(",")):
            key, _, fd = item.rpartition("=")
            _inherited[key] = int(fd)
    return _inherited


def inherited(kind: int, bind: str, port: int) -> socket.socket | None:
    """The socket the supervisor bound for this protocol, address and port (taken once), or None."""
    fd = _table().pop(socket_key(kind, bind, port), None)
    if fd is None:
        return None
    return socket.socket(socket.AF_INET, kind, fileno=fd)


def encode_sockets(socks: dict[str, int]) -> str:
    return ",".join(f"{key}={fd}" for key, fd in socks.items())
