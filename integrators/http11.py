"""A lean HTTP/1.1 keep-alive client for webhooks: httptools on asyncio protocols.

aiohttp's client costs about 300 µs of CPU per POST here, most of it in its request machinery,
which capped webhook delivery near 3,000 events/s per core; h11 halved that but its per-header
validation in Python still cost about 100 µs. A webhook needs one thing: POST a body on a
kept-alive connection and read the status. Responses are parsed by httptools (the C llhttp
parser behind uvicorn: status line, headers, Content-Length and chunked bodies, keep-alive
and ``Connection: close``); the request is a head this module writes, from header names and
values checked once (no CR, LF or NUL, so nothing can be injected).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import httptools


class HttpError(Exception):
    """The request could not be completed (connection, TLS, protocol); the message says why."""


def check_header(name: str, value: str) -> tuple[bytes, bytes]:
    """A header as bytes, refused if it could break the request's framing."""
    raw_name, raw_value = name.encode("latin-1"), value.encode("latin-1")
    if not raw_name or any(c in raw_name for c in b" \t\r\n:\x00") or any(c in raw_value for c in b"\r\n\x00"):
        raise ValueError(f"header {name!r} has characters not allowed in HTTP headers")
    return raw_name, raw_value


def request_head(target: str, host: bytes, headers: list[tuple[bytes, bytes]], length: int) -> bytes:
    """``POST target HTTP/1.1`` with Host, the given headers and Content-Length."""
    if any(c in target for c in " \r\n\x00"):
        raise ValueError(f"request target {target!r} contains spaces or control characters")
    lines = [b"POST ", target.encode("ascii"), b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    for name, value in headers:
        lines += [name, b": ", value, b"\r\n"]
    lines += [b"Content-Length: ", str(length).encode("ascii"), b"\r\n\r\n"]
    return b"".join(lines)


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.keep_alive = False
        self.lost = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"invalid HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(HttpError(f"connection lost: {exc}" if exc else "connection closed by the server"))

    # httptools callbacks
    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    # use
    async def post(self, head: bytes, body: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(head + body)
        status = await self.waiter
        self.waiter = None
        if not self.keep_alive:
            self.close()
        return status

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


class HttpPool:
    """Up to ``size`` kept-alive connections to one origin (scheme, host, port)."""

    def __init__(self, url: str, *, ssl_context: ssl.SSLContext | None, size: int = 64,
                 connect: Any = None) -> None:
        """``connect``: opens connections instead of ``loop.create_connection`` (same arguments);
        the webhook sender passes ``integrators.targets.guarded_connect`` to check the address."""
        parts = urlsplit(url)
        self.connect = connect
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl_context if parts.scheme == "https" else None
        self.host_header = parts.netloc.rsplit("@", 1)[-1].encode("idna")
        self.size = size
        self._idle: deque[_Connection] = deque()
        self._open = 0
        self._freed = asyncio.Condition()

    async def _acquire(self) -> _Connection:
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.lost:
                    return conn
                self._open -= 1
            if self._open < self.size:
                self._open += 1
                try:
                    _, conn = await (self.connect or asyncio.get_running_loop().create_connection)(
                        _Connection, self.host, self.port, ssl=self.ssl,
                        server_hostname=self.host if self.ssl else None)
                except BaseException:
                    self._open -= 1
                    raise
                return conn
            async with self._freed:
                await self._freed.wait()

    async def _release(self, conn: _Connection) -> None:
        if conn.lost:
            self._open -= 1
        else:
            self._idle.append(conn)
        async with self._freed:
            self._freed.notify()

    async def post(self, target: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
        """POST ``body``; the status code, or HttpError/OSError/ssl.SSLError/TimeoutError."""
        head = request_head(target, self.host_header, headers, len(body))
        conn = await self._acquire()
        try:
            return await conn.post(head, body)
        except BaseException:
            conn.close()
            raise
        finally:
            await self._release(conn)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
        self._open = 0
