"""A lean HTTP/1.1 client for webhooks: httptools (llhttp) on asyncio protocols, own pool.

aiohttp's client costs about 300 µs of CPU per POST here, most of it in its request machinery;
h11's per-header validation in Python still costs about 100 µs. A webhook needs one thing:
POST a body and read the status. Responses are parsed by httptools (the C llhttp parser behind
uvicorn); this module adds what llhttp leaves to its caller, following RFC 9112 §6.3 and §9:

* the answer's end: Content-Length and chunked framing are llhttp's; an answer with neither
  (HTTP/1.0 servers such as Python's ``http.server``, ``Connection: close``) ends when the
  server closes the connection, which llhttp cannot see: ``connection_lost`` completes it;
* 1xx interim answers (100 Continue, 103 Early Hints) are skipped, the final answer counts;
  204 and 304 have no body (llhttp);
* kept-alive connections the server closes while idle (keep-alive timeout, request limit)
  are dropped from the pool when the close arrives; when a reused connection fails before
  any byte of the answer arrived (the close crossed the request), the request goes once more
  on a fresh connection (``HttpPool.resent``);
* separate timeouts for the TCP connect, the TLS handshake and the answer.

The request is a head this module writes, from header names and values checked once (no CR,
LF or NUL, so nothing can be injected).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

from .targets import TargetRefused

log = logging.getLogger("nce.http")

DNS_TTL = 10.0  # seconds an address lookup of an origin is used for new connections
TLS_CHECK_SECONDS = 5.0  # how often kept-alive connections check whether the TLS files changed


class HttpError(Exception):
    """The request could not be completed (connection, TLS, protocol); the message says why."""


class _Stale(HttpError):
    """A reused connection ended before any byte of the answer: safe to send on a fresh one."""


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


_FRAMING = (b"content-length", b"transfer-encoding")


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.keep_alive = False
        self.lost = False
        self.answers = 0  # final answers read on this connection (> 0: a reused connection)
        self.context: ssl.SSLContext | None = None  # the TLS context it was made with (None: plain HTTP)
        self._started = False  # a byte of the current answer arrived
        self._headers_done = False
        self._framed = False  # the current answer has Content-Length or Transfer-Encoding
        self._first = b""  # the first bytes of the current answer, for error messages

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # nothing asked: a server talking out of turn is not reused
            self.close()
            return
        if not self._started:
            self._started = True
            self._first = data[:32]
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"the answer is not valid HTTP ({exc}); it began with {self._first!r}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost decides what the close meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is None or self.waiter.done():
            return
        if self._headers_done and not self._framed and exc is None:
            # RFC 9112 §6.3 (8): no Content-Length, not chunked: the body ends with the connection
            self.keep_alive = False
            self.waiter.set_result(self.parser.get_status_code())
            return
        reason = f"connection lost: {exc}" if exc else "connection closed by the server"
        if self._headers_done:
            reason += " before the end of the answer"
        elif self._started:
            reason += " in the middle of the answer's head"
        elif self.answers:
            self.waiter.set_exception(_Stale(reason + " before answering (a kept-alive connection)"))
            return
        else:
            reason += " before answering"
        self.waiter.set_exception(HttpError(reason))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in _FRAMING:
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # interim answer: the final one follows on the same connection
            self._headers_done = self._framed = False
            return
        self.keep_alive = self.parser.should_keep_alive()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    # use
    async def post(self, head: bytes, body: bytes, timeout: float) -> int:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        self._started = self._headers_done = self._framed = False
        self.transport.write(head + body)
        timer = loop.call_later(timeout, self._time_out, waiter, timeout)
        try:
            status = await waiter
        finally:
            timer.cancel()
            self.waiter = None
        self.answers += 1
        if not self.keep_alive:
            self.close()
        return status

    def _time_out(self, waiter: asyncio.Future[int], timeout: float) -> None:
        if not waiter.done():
            waiter.set_exception(HttpError(f"no answer within {timeout:g} s"))
            self.close()

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


class HttpPool:
    """Up to ``size`` kept-alive connections to one origin (scheme, host, port).

    ``ssl_context`` is a callable so the caller can hand out a new context when its
    certificate files changed; it is asked once per new connection, and every
    ``TLS_CHECK_SECONDS`` while connections are reused: when it hands out a new context, the
    kept-alive connections made with the old one are closed (after their request), so a renewed
    client certificate or a replaced CA is in use within that time, not at the next reconnect. ``check_address`` says why
    a resolved address must not be connected to (``integrators.targets``: public addresses only
    by default), or None; it runs on every address before a connection is opened, so a name that
    resolves to a forbidden address (DNS rebinding included) is refused.
    """

    def __init__(self, url: str, *, ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
                 size: int = 64, connect_timeout: float = 10.0, tls_timeout: float = 10.0,
                 answer_timeout: float = 20.0, on_connect: Callable[[], object] | None = None,
                 on_resend: Callable[[], object] | None = None,
                 check_address: Callable[[str], str | None] | None = None) -> None:
        parts = urlsplit(url)
        self.check_address = check_address
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.https = parts.scheme == "https"
        self._ssl = ssl_context if callable(ssl_context) else (lambda: ssl_context)
        self.host_header = parts.netloc.rsplit("@", 1)[-1].encode("idna")
        self.size = size
        self.connect_timeout = connect_timeout
        self.tls_timeout = tls_timeout
        self.answer_timeout = answer_timeout
        self.where = f"{self.host}:{self.port}"
        self.connections = 0  # connections opened
        self.resent = 0  # requests sent again after a kept-alive connection closed under them
        self._on_connect = on_connect or (lambda: None)  # e.g. a Prometheus counter's inc
        self._on_resend = on_resend or (lambda: None)
        self._idle: deque[_Connection] = deque()
        self._tls_now: ssl.SSLContext | None = None  # the context new connections get
        self._tls_checked = 0.0
        self._addrs: list[tuple[str, int]] = []
        self._resolved_at = 0.0
        self._open = 0
        self._freed = asyncio.Condition()

    async def _addresses(self) -> list[tuple[str, int]]:
        """The origin's addresses, looked up at most every DNS_TTL seconds: a receiver that
        closes after each answer would otherwise cost a resolver round trip (in a thread) per
        event. aiohttp's client caches for the same 10 s."""
        loop = asyncio.get_running_loop()
        if self._resolved_at + DNS_TTL < loop.time() or not self._addrs:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            self._addrs = [info[4][:2] for info in infos]
            self._resolved_at = loop.time()
        return self._addrs

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                error: OSError | None = None
                addresses = await self._addresses()
                if self.check_address is not None:
                    refusals = {a: self.check_address(a[0]) for a in addresses}
                    addresses = [a for a in addresses if refusals[a] is None]
                    if not addresses:
                        reasons = "; ".join(dict.fromkeys(r for r in refusals.values() if r)) or "no address"
                        raise TargetRefused(f"target {self.host} refused: {reasons}")
                for host, port in addresses:
                    try:
                        transport, conn = await loop.create_connection(_Connection, host, port)
                        break
                    except OSError as exc:
                        error = exc
                else:
                    self._addrs = []  # look up again next time
                    raise error or OSError(f"{self.host} has no address")
        except TimeoutError:
            raise HttpError(f"no TCP connection to {self.where} within {self.connect_timeout:g} s") from None
        if self.https:
            context = self._ssl()
            assert context is not None
            self._tls_now, self._tls_checked = context, loop.time()
            conn.context = context
            try:
                async with asyncio.timeout(self.tls_timeout):
                    tls = await loop.start_tls(transport, conn, context, server_hostname=self.host,
                                               ssl_handshake_timeout=self.tls_timeout + 1)
            except TimeoutError:
                transport.abort()
                raise HttpError(f"TLS handshake with {self.where} did not finish within {self.tls_timeout:g} s") \
                    from None
            except BaseException:
                transport.abort()
                raise
            conn.transport = tls  # type: ignore[assignment]
        self.connections += 1
        self._on_connect()
        return conn

    def _check_tls(self) -> None:
        """Ask for the context again at most every TLS_CHECK_SECONDS; a new one retires the
        idle connections made with the old one (a file that cannot be read keeps the old)."""
        now = asyncio.get_running_loop().time()
        if not self.https or now - self._tls_checked < TLS_CHECK_SECONDS:
            return
        self._tls_checked = now
        try:
            context = self._ssl()
        except (OSError, ssl.SSLError):
            return  # the next new connection reports it
        if context is not self._tls_now:
            self._tls_now = context
            kept = deque(c for c in self._idle if c.context is context)
            for conn in self._idle:
                if conn.context is not context:
                    conn.close()
                    self._open -= 1
            self._idle = kept

    async def _acquire(self, fresh: bool = False) -> _Connection:
        self._check_tls()
        while True:
            while self._idle and not fresh:
                conn = self._idle.pop()
                if not conn.lost:
                    return conn
                self._open -= 1
            if self._open < self.size:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._open -= 1
                    raise
            if fresh and self._idle:  # full: make room by dropping the oldest idle connection
                self._idle.popleft().close()
                self._open -= 1
                continue
            async with self._freed:
                await self._freed.wait()

    async def _release(self, conn: _Connection) -> None:
        if not conn.lost and conn.context is not self._tls_now:
            conn.close()  # made with TLS files that changed since
        if conn.lost:
            self._open -= 1
        else:
            self._idle.append(conn)
        async with self._freed:
            self._freed.notify()

    async def post(self, target: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
        """POST ``body``; the final status code, or HttpError/OSError/ssl.SSLError."""
        head = request_head(target, self.host_header, headers, len(body))
        try:
            return await self._post(head, body, fresh=False)
        except _Stale as exc:
            self.resent += 1
            self._on_resend()
            log.debug("%s; sending again on a new connection", exc)
            return await self._post(head, body, fresh=True)

    async def _post(self, head: bytes, body: bytes, *, fresh: bool) -> int:
        conn = await self._acquire(fresh)
        try:
            return await conn.post(head, body, self.answer_timeout)
        except BaseException:
            conn.close()
            raise
        finally:
            await self._release(conn)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
        self._open = 0
