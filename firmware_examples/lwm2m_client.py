"""An emulated LwM2M client (device side), on aiocoap, bound to the SIM's own source address.

It does what a 1NCE LwM2M blueprint does: client-initiated bootstrap (``POST /bs?ep=ICCID``),
accepting the bootstrap server's Delete/Write/Discover/Finish, Register with its object list,
Update, De-register, Send (SenML JSON or CBOR), answering Read/Write/Execute, and Observe.

    client = await LwM2MClient.start("8988280666000000010", "127.0.0.10")
    await client.bootstrap("coap://127.0.0.1:5683")      # → server URI, lifetime, binding
    await client.register()                              # → location /rd/xyz
    await client.send({"/3303/0/5700": 22.5})
    client.set_value("/3303/0/5700", 23.0)               # notifies observers
    await client.deregister(); await client.close()

Objects: Security (0), Server (1), Device (3), Location (6, optional) and an IPSO
Temperature sensor (3303). The data model is a flat ``{"/O/I/R": value}`` dictionary; the
gateway's own codecs (``gateway.lwm2m``) encode and decode it, so every content format the
gateway reads can be produced here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code

from gateway.lwm2m import ContentFormat, LwM2MPath, decode, encode
from gateway.lwm2m.errors import FormatError

log = logging.getLogger("nce.emulator.lwm2m")


def default_objects(iccid: str, temperature: float = 21.5, location: tuple[float, float] | None = None
                    ) -> dict[str, Any]:
    values: dict[str, Any] = {
        "/3/0/0": "nce-gateway", "/3/0/1": "lwm2m-emulator", "/3/0/2": iccid[-8:], "/3/0/3": "1.0.0",
        "/3/0/9": 87, "/3/0/11/0": 0, "/3/0/16": "U",
        "/3303/0/5700": temperature, "/3303/0/5701": "Cel", "/3303/0/5750": "room",
    }
    if location is not None:
        values.update({"/6/0/0": location[0], "/6/0/1": location[1], "/6/0/5": 1700000000})
    return values


class _Root(resource.ObservableResource):
    """Every path of the client's data model, plus ``/bs`` (Bootstrap-Finish)."""

    def __init__(self, client: "LwM2MClient") -> None:
        super().__init__()
        self.client = client

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return True

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            return self.client.handle(request)
        except FormatError as exc:
            return aiocoap.Message(code=Code.BAD_REQUEST, payload=str(exc).encode()[:200])

    async def add_observation(self, request: aiocoap.Message, serverobservation: Any) -> None:
        path = "/" + "/".join(request.opt.uri_path)
        observers = self.client.observers
        observers.setdefault(path, set()).add(serverobservation)

        def cancelled() -> None:
            observers.get(path, set()).discard(serverobservation)

        serverobservation.accept(cancelled)


class LwM2MClient:
    def __init__(self, iccid: str, source_ip: str, values: dict[str, Any] | None = None, *,
                 lwm2m_version: str = "1.1", read_format: int = ContentFormat.TLV,
                 send_format: int = ContentFormat.SENML_JSON) -> None:
        self.iccid = iccid
        self.source_ip = source_ip
        self.values: dict[str, Any] = values if values is not None else default_objects(iccid)
        self.lwm2m_version = lwm2m_version
        self.read_format = read_format
        self.send_format = send_format
        self.context: aiocoap.Context | None = None
        self.server_uri: str | None = None
        self.lifetime = 300
        self.binding = "U"
        self.location: str | None = None
        self.observers: dict[str, set] = {}
        self.bootstrapped = asyncio.Event()
        self.executed: list[tuple[str, bytes]] = []
        self.received: list[tuple[str, str]] = []  # (method, path) of requests from servers
        self.attributes: dict[str, dict[str, str]] = {}  # Write-Attributes, by path

    @classmethod
    async def start(cls, iccid: str, source_ip: str, values: dict[str, Any] | None = None,
                    **kwargs: Any) -> "LwM2MClient":
        client = cls(iccid, source_ip, values, **kwargs)
        client.context = await aiocoap.Context.create_server_context(_Root(client), bind=(source_ip, 0),
                                                                     loggername="nce.emulator.coap")
        return client

    async def close(self) -> None:
        if self.context is not None:
            await self.context.shutdown()
            self.context = None

    # requests to servers ----------------------------------------------------------------

    async def _request(self, code: Code, uri: str, payload: bytes = b"", content_format: int | None = None,
                       timeout: float = 15.0) -> aiocoap.Message:
        assert self.context is not None
        message = aiocoap.Message(code=code, uri=uri, payload=payload)
        if content_format is not None:
            message.opt.content_format = content_format
        return await asyncio.wait_for(self.context.request(message).response, timeout)

    async def bootstrap(self, bootstrap_uri: str, timeout: float = 15.0) -> str:
        """Client-initiated bootstrap; returns the LwM2M server URI it was given."""
        self.values.update({"/0/0/0": bootstrap_uri, "/0/0/1": True, "/0/0/2": 3, "/0/0/3": b"", "/0/0/4": b"",
                            "/0/0/5": b""})
        self.bootstrapped.clear()
        response = await self._request(Code.POST, f"{bootstrap_uri}/bs?ep={self.iccid}")
        if response.code != Code.CHANGED:
            raise RuntimeError(f"bootstrap request refused: {response.code} {response.payload!r}")
        await asyncio.wait_for(self.bootstrapped.wait(), timeout)
        return self.apply_bootstrap()

    def apply_bootstrap(self) -> str:
        """Take the server account that the bootstrap server wrote."""
        for path, value in sorted(self.values.items()):
            p = LwM2MPath.parse(path)
            if p.object_id == 0 and p.resource_id == 1 and value is False:
                iid = p.instance_id
                self.server_uri = self.values[f"/0/{iid}/0"]
                ssid = self.values.get(f"/0/{iid}/10")
                for spath, svalue in self.values.items():
                    sp = LwM2MPath.parse(spath)
                    if sp.object_id == 1 and sp.resource_id == 0 and svalue == ssid:
                        self.lifetime = int(self.values.get(f"/1/{sp.instance_id}/1", self.lifetime))
                        self.binding = str(self.values.get(f"/1/{sp.instance_id}/7", self.binding))
                return self.server_uri
        raise RuntimeError("bootstrap wrote no LwM2M server account")

    def link_list(self) -> str:
        instances = sorted({LwM2MPath.parse(p).ids[:2] for p in self.values if not p.startswith("/0/")})
        links = [f'</>;rt="oma.lwm2m";ct={ContentFormat.SENML_JSON}'] if self.lwm2m_version != "1.0" else []
        links += [f"</{o}/{i}>" for o, i in instances]
        return ",".join(links)

    async def register(self, server_uri: str | None = None, lifetime: int | None = None,
                       queue: bool = False) -> str:
        self.server_uri = server_uri or self.server_uri
        if lifetime is not None:
            self.lifetime = lifetime
        binding = self.binding + ("Q" if queue and self.lwm2m_version == "1.0" else "")
        self.forget_observations()  # a new registration starts without observations (Core §6.3)
        query = f"ep={self.iccid}&lt={self.lifetime}&lwm2m={self.lwm2m_version}&b={binding}"
        if queue and self.lwm2m_version != "1.0":
            query += "&Q"
        response = await self._request(Code.POST, f"{self.server_uri}/rd?{query}", self.link_list().encode(),
                                       ContentFormat.LINK_FORMAT)
        if response.code != Code.CREATED:
            raise RuntimeError(f"register refused: {response.code} {response.payload!r}")
        self.location = "/" + "/".join(response.opt.location_path)
        return self.location

    async def update(self, lifetime: int | None = None, with_links: bool = False) -> aiocoap.Message:
        query = f"?lt={lifetime}" if lifetime is not None else ""
        payload = self.link_list().encode() if with_links else b""
        return await self._request(Code.POST, f"{self.server_uri}{self.location}{query}", payload,
                                   ContentFormat.LINK_FORMAT if with_links else None)

    async def deregister(self) -> aiocoap.Message:
        response = await self._request(Code.DELETE, f"{self.server_uri}{self.location}")
        self.location = None
        return response

    async def send(self, values: dict[str, Any], content_format: int | None = None) -> aiocoap.Message:
        cf = content_format or self.send_format
        return await self._request(Code.POST, f"{self.server_uri}/dp", encode(cf, values, "/"), cf)

    def forget_observations(self) -> None:
        for observations in self.observers.values():
            for observation in list(observations):
                try:
                    observation.deregister("new registration")
                except Exception:  # already gone
                    pass
        self.observers.clear()

    # the data model ---------------------------------------------------------------------

    def set_value(self, path: str, value: Any) -> None:
        self.values[path] = value
        for observed, observations in list(self.observers.items()):
            if path == observed or path.startswith(observed + "/"):
                for observation in list(observations):
                    observation.trigger()

    def _select(self, path: LwM2MPath) -> dict[str, Any]:
        prefix = str(path)
        return {p: v for p, v in self.values.items()
                if p == prefix or p.startswith(prefix + "/" if prefix != "/" else "/")}

    def handle(self, request: aiocoap.Message) -> aiocoap.Message:
        segments = list(request.opt.uri_path)
        method = request.code
        self.received.append((str(method), "/" + "/".join(segments)))
        if segments == ["bs"] and method == Code.POST:
            self.bootstrapped.set()
            return aiocoap.Message(code=Code.CHANGED)
        try:
            path = LwM2MPath(*(int(s) for s in segments))
        except (ValueError, FormatError):
            return aiocoap.Message(code=Code.NOT_FOUND)
        if method in (Code.FETCH, Code.iPATCH):
            return self._composite(request, path)
        if method == Code.PUT and request.opt.content_format is None and request.opt.uri_query:
            return self._write_attributes(path, list(request.opt.uri_query))
        if method == Code.POST and len(path) == 1 and request.opt.content_format is not None:
            values = decode(int(request.opt.content_format), request.payload, path)
            created = {LwM2MPath.parse(p).ids[:2] for p in values}
            if any(self._select(LwM2MPath(*ids)) for ids in created):
                return aiocoap.Message(code=Code.BAD_REQUEST)  # Create of an instance that exists
            for p, v in values.items():
                self.set_value(p, v)
            location = sorted(created)[0] if created else None
            answer = aiocoap.Message(code=Code.CREATED)
            if location is not None:
                answer.opt.location_path = [str(i) for i in location]
            return answer
        if method == Code.GET:
            if request.opt.accept == ContentFormat.LINK_FORMAT:
                return self._discover(path)
            selected = self._select(path)
            if not selected or path.object_id == 0:
                return aiocoap.Message(code=Code.NOT_FOUND if not selected else Code.UNAUTHORIZED)
            cf = request.opt.accept if request.opt.accept is not None else self.read_format
            try:
                payload = encode(int(cf), selected, path)
            except FormatError:
                return aiocoap.Message(code=Code.NOT_ACCEPTABLE)
            return aiocoap.Message(code=Code.CONTENT, payload=payload, content_format=int(cf))
        if method == Code.PUT or (method == Code.POST and len(path) < 3):
            cf = request.opt.content_format
            if cf is None:
                return aiocoap.Message(code=Code.BAD_REQUEST)
            values = decode(int(cf), request.payload, path)
            if method == Code.PUT and len(path) == 2:
                for old in list(self._select(path)):
                    del self.values[old]
            for p, v in values.items():
                self.set_value(p, v)
            return aiocoap.Message(code=Code.CHANGED)
        if method == Code.POST and len(path) == 3:
            self.executed.append((str(path), request.payload))
            return aiocoap.Message(code=Code.CHANGED)
        if method == Code.DELETE:
            for p in list(self._select(path)):
                lp = LwM2MPath.parse(p)
                if lp.object_id == 0 and self.values.get(f"/0/{lp.instance_id}/1") is True:
                    continue  # the bootstrap-server account stays
                del self.values[p]
            return aiocoap.Message(code=Code.DELETED)
        return aiocoap.Message(code=Code.METHOD_NOT_ALLOWED)

    def _write_attributes(self, path: LwM2MPath, query: list[str]) -> aiocoap.Message:
        if not self._select(path):
            return aiocoap.Message(code=Code.NOT_FOUND)
        attrs = self.attributes.setdefault(str(path), {})
        for item in query:
            name, sep, value = item.partition("=")
            if name not in ("pmin", "pmax", "gt", "lt", "st"):
                return aiocoap.Message(code=Code.BAD_REQUEST)
            if sep and value:
                attrs[name] = value
            else:
                attrs.pop(name, None)
        return aiocoap.Message(code=Code.CHANGED)

    def _composite(self, request: aiocoap.Message, path: LwM2MPath) -> aiocoap.Message:
        """Read-Composite (FETCH) and Write-Composite (iPATCH) on / with SenML JSON (LwM2M 1.1)."""
        if self.lwm2m_version == "1.0" or not path.is_root:
            return aiocoap.Message(code=Code.METHOD_NOT_ALLOWED)
        if request.opt.content_format != ContentFormat.SENML_JSON:
            return aiocoap.Message(code=Code.UNSUPPORTED_CONTENT_FORMAT)
        if request.code == Code.iPATCH:
            for p, v in decode(ContentFormat.SENML_JSON, request.payload, path).items():
                self.set_value(p, v)
            return aiocoap.Message(code=Code.CHANGED)
        selected: dict[str, Any] = {}
        for item in json.loads(request.payload):
            selected.update(self._select(LwM2MPath.parse(item["n"])))
        payload = encode(ContentFormat.SENML_JSON, selected, path)
        return aiocoap.Message(code=Code.CONTENT, payload=payload, content_format=ContentFormat.SENML_JSON)

    def _discover(self, path: LwM2MPath) -> aiocoap.Message:
        instances = sorted({LwM2MPath.parse(p).ids[:2] for p in self._select(path)})
        links = [f'</>;lwm2m={self.lwm2m_version}']
        for oid, iid in instances:
            link = f"</{oid}/{iid}>"
            if oid == 0 and self.values.get(f"/0/{iid}/1") is False and f"/0/{iid}/10" in self.values:
                link += f";ssid={self.values[f'/0/{iid}/10']}"
            links.append(link)
        prefix = str(path)
        for attr_path, attrs in sorted(self.attributes.items()):
            if attrs and (attr_path == prefix or attr_path.startswith(prefix + "/")):
                links.append(f"<{attr_path}>" + "".join(f";{k}={v}" for k, v in sorted(attrs.items())))
        return aiocoap.Message(code=Code.CONTENT, payload=",".join(links).encode(),
                               content_format=ContentFormat.LINK_FORMAT)


def host_port(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri)
    return parts.hostname or "127.0.0.1", parts.port or 5683


async def run_once(iccid: str, source_ip: str, bootstrap_uri: str | None, server_uri: str | None,
                   send: dict[str, Any] | None, lifetime: int, stay: float) -> int:
    """The emulator CLI's ``lwm2m`` mode: bootstrap (or not), register, send, serve, deregister."""
    client = await LwM2MClient.start(iccid, source_ip)
    try:
        if bootstrap_uri:
            server_uri = await client.bootstrap(bootstrap_uri)
            print(f"bootstrapped: server {server_uri}, lifetime {client.lifetime}, binding {client.binding}")
        location = await client.register(server_uri, lifetime)
        print(f"registered at {location}")
        if send:
            response = await client.send(send)
            print(f"send: {response.code.dotted}")
        if stay > 0:
            print(f"answering requests for {stay:g} s (Ctrl-C stops)")
            await asyncio.sleep(stay)
        response = await client.deregister()
        print(f"deregistered: {response.code.dotted}")
        return 0
    finally:
        await client.close()


def parse_values(items: Iterable[str]) -> dict[str, Any]:
    """``/3303/0/5700=21.5`` → ``{"/3303/0/5700": 21.5}`` (numbers when they parse)."""
    out: dict[str, Any] = {}
    for item in items:
        path, _, text = item.partition("=")
        value: Any = text
        for kind in (int, float):
            try:
                value = kind(text)
                break
            except ValueError:
                continue
        out[str(LwM2MPath.parse(path))] = value
    return out
