"""The webhook's HTTP/1.1 client against hand-written server responses (framing edge cases)."""

from __future__ import annotations

import asyncio
import ssl

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
    with pytest.raises(HttpError, match="not valid HTTP"):
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


async def serve(handle) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    return await reader.readexactly(length)


async def test_answer_ended_by_close_http10_and_http11():
    """RFC 9112 §6.3 (8): neither Content-Length nor chunked: the body ends with the connection."""
    answers = [b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6\r\n\r\nthanks\n",
               b"HTTP/1.1 201 Created\r\nConnection: close\r\n\r\nno length",
               b"HTTP/1.1 500 Oops\r\n\r\n"]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answers.pop(0))
        await writer.drain()
        writer.close()

    server, url = await serve(handle)
    pool = HttpPool(url, size=1)
    assert [await pool.post("/", [], b"x") for _ in range(3)] == [200, 201, 500]
    assert pool.connections == 3
    server.close()


async def test_interim_1xx_answers_are_skipped_and_204_304_have_no_body():
    answers = [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
               b"HTTP/1.1 204 No Content\r\n\r\n",
               b"HTTP/1.1 304 Not Modified\r\n\r\n",
               b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await read_request(reader)
            writer.write(answer)
        writer.close()

    server, url = await serve(handle)
    pool = HttpPool(url, size=1)
    assert [await pool.post("/", [], b"x") for _ in range(4)] == [200, 204, 304, 202]
    assert pool.connections == 1  # all on one kept-alive connection
    server.close()


async def test_kept_alive_connection_closed_under_the_request_is_resent_on_a_new_one():
    """The server's idle close crosses the next request: no byte of an answer came, so the
    request goes again on a fresh connection (not a failed attempt)."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        seen.append(await read_request(reader))  # reads the next request, then hangs up unanswered
        writer.close()

    server, url = await serve(handle)
    pool = HttpPool(url, size=1)
    assert await pool.post("/", [], b"1") == 200
    assert await pool.post("/", [], b"2") == 200
    assert seen == [b"1", b"2", b"2"]
    assert (pool.connections, pool.resent) == (2, 1)
    server.close()


async def test_a_new_connection_closed_before_answering_is_an_error_not_resent():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    server, url = await serve(handle)
    pool = HttpPool(url)
    with pytest.raises(HttpError, match="^connection closed by the server before answering$"):
        await pool.post("/", [], b"x")
    assert pool.resent == 0
    server.close()


async def test_answer_cut_in_the_middle_is_an_error():
    for answer, reason in ((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "before the end of the answer"),
                           (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "before the end"),
                           (b"HTTP/1.1 200 OK\r\nContent-Le", "in the middle of the answer's head")):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer=answer) -> None:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
            writer.close()

        server, url = await serve(handle)
        with pytest.raises(HttpError, match=reason):
            await HttpPool(url).post("/", [], b"x")
        server.close()


async def test_answer_and_tls_handshake_timeouts():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(5)
        writer.close()

    server, url = await serve(silent)
    pool = HttpPool(url, answer_timeout=0.2)
    with pytest.raises(HttpError, match=r"^no answer within 0.2 s$"):
        await pool.post("/", [], b"x")
    tls = HttpPool(url.replace("http:", "https:"), ssl_context=ssl.create_default_context(), tls_timeout=0.2)
    with pytest.raises(HttpError, match=r"^TLS handshake with 127.0.0.1:\d+ did not finish within 0.2 s$"):
        await tls.post("/", [], b"x")
    server.close()


async def test_unasked_data_on_an_idle_connection_retires_it():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")  # unasked
        await asyncio.sleep(1)
        writer.close()

    server, url = await serve(handle)
    pool = HttpPool(url, size=2)
    assert await pool.post("/", [], b"1") == 200
    await asyncio.sleep(0.2)
    assert await pool.post("/", [], b"2") == 200  # not the 408 meant for nobody: a new connection
    assert pool.connections == 2
    pool.close()
    server.close()
