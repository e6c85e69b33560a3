"""UDP sockets for the transports: a batched reader instead of asyncio's datagram transport.

asyncio's ``DatagramProtocol`` transport reads one datagram per event-loop iteration, so every
datagram pays for a selector wake-up and a loop turn. Under load that overhead dominates the
gateway's own work (measured for the DTLS port: about 130 µs of CPU per message with
DatagramProtocol against about 30 µs drained in batches). :class:`UdpEndpoint` registers the
socket with ``loop.add_reader`` and drains up to ``batch`` datagrams per wake-up.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

from ..workers import inherited
from .limits import LogSummary

log = logging.getLogger("nce.transport")

Address = tuple[str, int]


def enlarge_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a large receive buffer so a burst of datagrams waits in the kernel instead of
    being dropped while the event loop is busy (the kernel caps it at net.core.rmem_max)."""
    if size > 0:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except OSError as exc:
            log.warning("could not set the receive buffer to %d bytes: %s", size, exc)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


class UdpEndpoint:
    """A bound, non-blocking UDP socket whose datagrams go to ``on_datagram(data, addr)``."""

    def __init__(self, on_datagram: Callable[[bytes, Address], None], *, batch: int = 64) -> None:
        self.on_datagram = on_datagram
        self.batch = batch
        self.sock: socket.socket | None = None
        self.inherited = False  # the supervisor's socket (a slot of its SO_REUSEPORT group)
        self._paused: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.send_errors = 0
        self.handler_errors = 0
        self._failures = LogSummary(log, "handling a datagram failed", level=logging.ERROR)

    def open(self, bind: str, port: int, receive_buffer: int = 0) -> Address:
        """Bind ``bind:port`` (or, in a worker process, take the socket the supervisor bound
        for it: gateway/workers.py). After :meth:`pause` it is that socket again, emptied of
        what queued meanwhile (datagrams sent to an endpoint that was off get no answer)."""
        sock, self._paused = self._paused, None
        if sock is not None:
            _discard_queued(sock)
        else:
            sock = inherited(socket.SOCK_DGRAM, bind, port)
            self.inherited = sock is not None
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((bind, port))
            except OSError:
                sock.close()
                raise
        sock.setblocking(False)
        enlarge_receive_buffer(sock, receive_buffer)
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._drain)
        return sock.getsockname()[:2]

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1] if self.sock is not None else 0

    @property
    def closing(self) -> bool:
        return self.sock is None

    def _drain(self) -> None:
        sock = self.sock
        if sock is None:
            return
        recvfrom = sock.recvfrom
        handle = self.on_datagram
        for _ in range(self.batch):
            try:
                data, addr = recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP port unreachable reported on the socket
                log.debug("UDP receive error: %s", exc)
                continue
            try:
                handle(data, addr)
            except Exception as exc:  # one bad datagram must never stop the socket (nor fill the log)
                self.handler_errors += 1
                self._failures.note(f"{type(exc).__name__} from {addr[0]}", exc_info=True,
                                    event="datagram_handler_failed")

    def sendto(self, data: bytes, addr: Address) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self.send_errors += 1  # send buffer full: UDP may drop, the peer retransmits
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                log.debug("UDP send to %s failed: %s", addr, exc)
            self.send_errors += 1

    def pause(self) -> None:
        """Stop reading and answering, keeping the socket: an inherited socket is a slot of the
        supervisor's group, which this process could not bind again (gateway/endpoints.py turns
        an endpoint off this way in a worker). Devices get no answer, as from a closed port."""
        if self.sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self.sock.fileno())
            self._paused, self.sock = self.sock, None

    def close(self) -> None:
        self.pause()
        if self._paused is not None:
            self._paused.close()
            self._paused = None


def _discard_queued(sock: socket.socket) -> None:
    """Drop the datagrams that waited in a paused socket's buffer (answering them now would
    answer requests the devices gave up on, and store them as new)."""
    sock.setblocking(False)
    while True:
        try:
            sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # an ICMP error reported on the socket: keep draining
            continue
