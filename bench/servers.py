"""Baseline servers for the uplink benchmark, each run in its own process.

    python -m bench.servers echo PORT [uvloop]   bare asyncio UDP: answers a CoAP ACK 2.04 per datagram
    python -m bench.servers radius-echo PORT   bare asyncio UDP: a 20-byte Accounting-Response per datagram
    python -m bench.servers aiocoap PORT   bare aiocoap server: one resource answering 2.04
    python -m bench.servers webhook PORT CERT KEY   HTTPS receiver (aiohttp): reads the body, answers 200
    python -m bench.servers http10 PORT CERT KEY    HTTPS receiver on Python's http.server: HTTP/1.0,
                                                    200 without Content-Length, one connection per event
"""

from __future__ import annotations

import asyncio
import sys

from gateway.transports.sockets import enlarge_receive_buffer


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # the smallest correct answer: ACK, 2.04, same message ID, same token
        tkl = data[0] & 0x0F
        self.transport.sendto(bytes((0x60 | tkl, 0x44, data[2], data[3])) + data[4:4 + tkl], addr)


class _RadiusEcho(_Echo):
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # Accounting-Response, same identifier (no authenticator check: the baseline does no work)
        self.transport.sendto(bytes((5, data[1], 0, 20)) + data[4:20], addr)


async def echo(port: int, protocol: type = _Echo) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(protocol, local_addr=("127.0.0.1", port))
    enlarge_receive_buffer(transport.get_extra_info("socket"), 4 * 1024 * 1024)  # as the gateway does
    print("ready", flush=True)
    await asyncio.Event().wait()


async def bare_aiocoap(port: int) -> None:
    import aiocoap
    from aiocoap import resource

    class Changed(resource.Resource):
        async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
            return aiocoap.Message(code=aiocoap.CHANGED)

    site = resource.Site()
    site.add_resource([], Changed())
    site.add_resource(["rd"], Changed())  # the LwM2M bench registers here (any 2.xx counts)
    await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", port))
    print("ready", flush=True)
    await asyncio.Event().wait()


async def webhook(port: int, cert_file: str, key_file: str) -> None:
    import ssl

    from aiohttp import web

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context, backlog=1024).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def http10(port: int, cert_file: str, key_file: str) -> None:
    """What a newcomer writes with the standard library: the answer ends when the connection closes."""
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "webhook":
        asyncio.run(webhook(port, sys.argv[3], sys.argv[4]))
    elif kind == "http10":
        http10(port, sys.argv[3], sys.argv[4])
    elif kind == "echo" and sys.argv[3:] == ["uvloop"]:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(echo(port))
    else:
        asyncio.run({"echo": echo, "aiocoap": bare_aiocoap,
                     "radius-echo": lambda p: echo(p, _RadiusEcho)}[kind](port))
