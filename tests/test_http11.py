"""The webhook's HTTP/1.1 client against hand-written server responses (framing edge cases)."""

from __future__ import annotations

import asyncio

import pytest

from integrators.http11 import HttpError, HttpPool, check_header, request_head


async def raw_server(responses: list[bytes]):
    """A TCP server that answers the n-th request on a connection with responses[n] (then closes
    if the response says so); records the requests it got."""
    requests: list[bytes] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        index = 0
        while index < len(responses):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            requests.append(head + await reader.readexactly(length))
            writer.write(responses[index])
            await writer.drain()
            if b"Connection: close" in responses[index]:
                break
            index += 1
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port, requests, lambda: connections


async def test_content_length_chunked_and_keep_alive():
    server, port, requests, connections = await raw_server([
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n",
    ])
    pool = HttpPool(f"http://127.0.0.1:{port}", ssl_context=None, size=1)
    headers = [check_header("X-Key", "v")]
    assert await pool.post("/a?x=1", headers, b"{}") == 200
    assert await pool.post("/b", headers, b"[1]") == 201
    assert await pool.post("/c", headers, b"") == 503
    assert connections() == 1  # all three on one kept-alive connection
    assert requests[0] == (f"POST /a?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Key: v\r\n"
                           "Content-Length: 2\r\n\r\n{}").encode()
    pool.close()
    server.close()


async def test_connection_close_opens_a_new_connection():
    server, port, _, connections = await raw_server([b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"])
    pool = HttpPool(f"http://127.0.0.1:{port}", ssl_context=None, size=2)
    assert await pool.post("/", [], b"1") == 200
    assert await pool.post("/", [], b"2") == 200
    assert connections() == 2
    pool.close()
    server.close()


async def test_garbage_and_early_close_are_errors():
    server, port, _, _ = await raw_server([b"NOT HTTP AT ALL\r\n\r\n"])
    pool = HttpPool(f"http://127.0.0.1:{port}", ssl_context=None)
    with pytest.raises(HttpError, match="invalid HTTP response"):
        await pool.post("/", [], b"x")
    server.close()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()
    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    pool = HttpPool(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", ssl_context=None)
    with pytest.raises(HttpError, match="closed by the server"):
        await pool.post("/", [], b"x")
    server.close()


def test_header_and_target_injection_is_refused():
    with pytest.raises(ValueError, match="not allowed"):
        check_header("X-Evil", "a\r\nInjected: 1")
    with pytest.raises(ValueError, match="not allowed"):
        check_header("Bad Name", "v")
    with pytest.raises(ValueError, match="control characters"):
        request_head("/a b", b"h", [], 0)
