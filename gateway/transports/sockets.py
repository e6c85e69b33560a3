"""Socket settings shared by the UDP-based transports."""

from __future__ import annotations

import logging
import socket

log = logging.getLogger("nce.transport")


def enlarge_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a large receive buffer so a burst of datagrams waits in the kernel instead of
    being dropped while the event loop is busy (the kernel caps it at net.core.rmem_max)."""
    if size > 0:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except OSError as exc:
            log.warning("could not set the receive buffer to %d bytes: %s", size, exc)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
