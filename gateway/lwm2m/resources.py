"""The LwM2M server's CoAP face: ``/bs``, ``/rd``, ``/rd/{id}`` and ``/dp``.

Two ways in, one behaviour (:class:`~gateway.lwm2m.server.LwM2MServer`):

* **fast handlers** on the CoAP service for Register, Update, De-register and Send as most
  clients send them (no Block1 or other option the scanner does not process): no aiocoap
  task per request, the answer is encoded directly (aiocoap's machinery tops out at a few
  thousand requests/s, below the 3,000 registrations/s target);
* **aiocoap resources** for everything else on those paths (block-wise transfers, ...) and for
  the bootstrap request, which then sends requests to the device through aiocoap.
"""

from __future__ import annotations

import asyncio
import functools
from functools import partial
from typing import Any

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code

from ..coap_site import request_sim
from ..transports import coap_wire as wire
from .bootstrap import BootstrapServer
from .server import BAD_REQUEST, METHOD_NOT_ALLOWED, NOT_FOUND, UNAUTHORIZED, LwM2MServer, Reply


# fast path ---------------------------------------------------------------------------------

class FastHandlers:
    """``POST /rd``, ``POST /rd/{id}``, ``DELETE /rd/{id}``, ``POST /dp`` on the CoAP service."""

    def __init__(self, server: LwM2MServer, service: Any) -> None:
        self.server = server
        self.service = service

    def install(self) -> None:
        self.service.add_fast_handler(wire.POST, b"rd", self.post_rd)
        self.service.add_fast_handler(wire.DELETE, b"rd", self.delete_rd)
        self.service.add_fast_handler(wire.POST, b"dp", self.post_dp)
        self.service.path_protocols.update({b"rd": "LWM2M", b"bs": "LWM2M", b"dp": "LWM2M"})

    def _done(self, link: Any, req: wire.Request, key: Any, reply: Reply) -> None:
        options = [(wire.LOCATION_PATH, s.encode()) for s in reply.location] if reply.location else None
        self.service.reply(link, req, key, reply.code, reply.payload, options)

    def post_rd(self, link: Any, req: wire.Request, sim: Any) -> None:
        key = self.service.begin_exchange(link, req)
        if key is None:
            return
        done = partial(self._done, link, req, key)
        path = req.path
        if len(path) == 1:
            self.server.register(sim, link, req.query, req.content_format, req.payload, done)
        elif len(path) == 2:
            self.server.update(sim, link, _text(path[1]), req.query, req.content_format, req.payload, done)
        else:
            done(Reply(NOT_FOUND, b"no such resource"))

    def delete_rd(self, link: Any, req: wire.Request, sim: Any) -> None:
        key = self.service.begin_exchange(link, req)
        if key is None:
            return
        done = partial(self._done, link, req, key)
        if len(req.path) == 2:
            self.server.deregister(sim, link, _text(req.path[1]), done)
        else:
            if len(req.path) == 1:
                done(Reply(METHOD_NOT_ALLOWED, b"DELETE needs a registration: /rd/{id}"))
            else:
                done(Reply(NOT_FOUND, b"no such resource"))

    def post_dp(self, link: Any, req: wire.Request, sim: Any) -> None:
        key = self.service.begin_exchange(link, req)
        if key is None:
            return
        done = partial(self._done, link, req, key)
        if len(req.path) != 1:
            done(Reply(NOT_FOUND, b"no such resource"))
            return
        self.server.send(sim, link, req.content_format, req.payload, done)


def _text(segment: bytes) -> str:
    return segment.decode("utf-8", "replace")


# aiocoap resources -------------------------------------------------------------------------

def with_sim(render: Any) -> Any:
    """Answer 4.01 to a request from an unknown or disabled SIM before the handler runs (counted
    once as ``LWM2M`` ``unknown_sim`` or ``disabled_sim``: aiocoap answers a retransmission from
    its own cache without calling the handler again), and give the handler the SIM."""
    @functools.wraps(render)
    async def checked(self: Any, request: aiocoap.Message) -> aiocoap.Message:
        sim = request_sim(request)
        if sim is None:
            metrics = getattr(self, "metrics", None)
            if metrics is not None:
                metrics.reject("LWM2M", refusal_reason(request.remote))
            return _refusal(UNAUTHORIZED, "unknown or disabled SIM")
        return await render(self, request, sim)
    return checked


def refusal_reason(remote: Any) -> str:
    """``disabled_sim``, ``blocked_sim`` or ``unknown_sim`` for the remote's address (plain CoAP)
    or DTLS identity: the transport's remote says (``refusal_reason()``, from the SIM directory)."""
    reason = getattr(remote, "refusal_reason", None)
    return reason() if callable(reason) else "unknown_sim"


async def _answer(call: Any, *args: Any) -> aiocoap.Message:
    future: asyncio.Future = asyncio.get_running_loop().create_future()

    def done(reply: Reply) -> None:
        if not future.done():
            future.set_result(reply)

    call(*args, done)
    reply: Reply = await future
    message = aiocoap.Message(code=Code(reply.code), payload=reply.payload)
    if reply.location:
        message.opt.location_path = reply.location
    return message


def _refusal(code: int, text: str) -> aiocoap.Message:
    return aiocoap.Message(code=Code(code), payload=text.encode())


def _cf(request: aiocoap.Message) -> int | None:
    cf = request.opt.content_format
    return int(cf) if cf is not None else None


class RegisterResource(resource.Resource):
    """``POST /rd`` (Register)."""

    def __init__(self, server: LwM2MServer) -> None:
        super().__init__()
        self.server = server

    @with_sim
    async def render_post(self, request: aiocoap.Message, sim: Any) -> aiocoap.Message:
        return await _answer(self.server.register, sim, request.remote, list(request.opt.uri_query),
                             _cf(request), request.payload)


class RegistrationResource(resource.Resource, resource.PathCapable):
    """``POST /rd/{id}`` (Update) and ``DELETE /rd/{id}`` (De-register)."""

    def __init__(self, server: LwM2MServer) -> None:
        super().__init__()
        self.server = server

    @with_sim
    async def render_post(self, request: aiocoap.Message, sim: Any) -> aiocoap.Message:
        if len(request.opt.uri_path) != 1:
            return _refusal(NOT_FOUND, "no such registration")
        return await _answer(self.server.update, sim, request.remote, request.opt.uri_path[0],
                             list(request.opt.uri_query), _cf(request), request.payload)

    @with_sim
    async def render_delete(self, request: aiocoap.Message, sim: Any) -> aiocoap.Message:
        if len(request.opt.uri_path) != 1:
            return _refusal(NOT_FOUND, "no such registration")
        return await _answer(self.server.deregister, sim, request.remote, request.opt.uri_path[0])


class SendResource(resource.Resource):
    """``POST /dp`` (Send)."""

    def __init__(self, server: LwM2MServer) -> None:
        super().__init__()
        self.server = server

    @with_sim
    async def render_post(self, request: aiocoap.Message, sim: Any) -> aiocoap.Message:
        return await _answer(self.server.send, sim, request.remote, _cf(request), request.payload)


class BootstrapResource(resource.Resource):
    """``POST /bs?ep=ICCID`` (Bootstrap-Request)."""

    def __init__(self, bootstrap: BootstrapServer) -> None:
        super().__init__()
        self.bootstrap = bootstrap

    @with_sim
    async def render_post(self, request: aiocoap.Message, sim: Any) -> aiocoap.Message:
        refused = self.bootstrap.check(sim, request.remote, list(request.opt.uri_query))
        if refused is not None:
            return _refusal(*refused)
        self.bootstrap.start(sim, request.remote)
        return aiocoap.Message(code=aiocoap.CHANGED)


def add_resources(site: resource.Site, server: LwM2MServer, bootstrap: BootstrapServer) -> None:
    for path, res in ((["bs"], BootstrapResource(bootstrap)), (["rd"], RegisterResource(server)),
                      (["rd"], RegistrationResource(server)), (["dp"], SendResource(server))):
        res.metrics = server.metrics  # refusals of unknown and disabled SIMs (with_sim)
        site.add_resource(path, res)


__all__ = ["FastHandlers", "add_resources", "BAD_REQUEST"]
