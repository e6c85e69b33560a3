"""The LwM2M bootstrap server: client-initiated bootstrap (``POST /bs?ep=ICCID``).

The sequence, as Eclipse Leshan's bootstrap server runs it and Wakaama and Zephyr clients
expect it (LwM2M 1.1 Core §6.1, §8.2):

1. ``POST /bs?ep=ICCID`` from the SIM that owns that ICCID → ``2.04``; anything else → ``4.03``
   (``4.00`` without ``ep``).
2. Bootstrap-Discover ``GET /0`` (link format) to learn which Security instance is the
   bootstrap-server account; a 1.0 client that cannot discover is assumed to keep it at an
   instance other than the one we write.
3. Bootstrap-Delete ``/0`` and ``/1``: the client deletes every instance except its
   bootstrap-server account.
4. Bootstrap-Write ``/0/{i}`` (Security, TLV): our server URI, not a bootstrap server, mode
   NoSec (3) over plain CoAP, or PSK (0) with identity = ICCID and the SIM's current DTLS key
   over DTLS (the key the device bootstrapped with, unless the key was rotated since: then the
   new one; stored as the SIM's ``LWM2M`` PSK too), short server id. The same key for both
   accounts means a device that bootstraps again with its onboarding credentials always gets in.
5. Bootstrap-Write ``/1/0`` (Server, TLV): short server id, lifetime, notification storing,
   binding.
6. Bootstrap-Finish ``POST /bs`` → the client registers with what it was given.

A client answering an error to a Delete is tolerated (some 1.0 clients have nothing to delete);
an error to a Write or to Finish ends the bootstrap (logged and kept in :attr:`results`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiocoap.numbers.codes import Code

from ..config import LwM2MConfig
from .client_requests import DeviceRequests, DeviceResponse
from .formats import ContentFormat, encode
from .linkformat import parse_link_format
from .objects import ObjectRegistry

log = logging.getLogger("nce.lwm2m.bootstrap")

SECURITY_NOSEC = 3
SECURITY_PSK = 0


@dataclass
class BootstrapResult:
    iccid: str
    dtls: bool
    steps: list[tuple[str, str]] = field(default_factory=list)  # (operation, code or error)
    ok: bool = False
    finished_ms: int = 0


def parse_query(query: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in query:
        name, sep, value = item.partition("=")
        out.setdefault(name, value if sep else None)
    return out


class BootstrapServer:
    def __init__(self, config: LwM2MConfig, requests: DeviceRequests, objects: ObjectRegistry, psks: Any,
                 server_uris: Callable[[], tuple[str, str]]) -> None:
        self.config = config
        self.requests = requests
        self.objects = objects
        self.psks = psks  # gateway.psk.PskService
        self._server_uris = server_uris
        self.running: dict[str, asyncio.Task] = {}
        self.results: OrderedDict[str, BootstrapResult] = OrderedDict()

    @staticmethod
    def check(sim: Any, remote: Any, query: list[str]) -> tuple[int, str] | None:
        """None when the request may bootstrap, else (CoAP code as (class, detail) int, reason)."""
        params = parse_query(query)
        ep = params.get("ep")
        if not ep:
            return 0x80, "ep (endpoint name = ICCID) is required"  # 4.00
        if sim is None or ep != sim.iccid:
            return 0x83, "endpoint name is not the ICCID of the sending SIM"  # 4.03
        identity = getattr(remote, "psk_identity", None)
        if identity is not None:
            if isinstance(identity, bytes):
                identity = identity.decode("utf-8", "replace")
            if identity != ep:
                return 0x83, "endpoint name is not the DTLS identity"
        return None

    @staticmethod
    def is_dtls(remote: Any) -> bool:
        return getattr(remote, "psk_identity", None) is not None or getattr(remote, "scheme", "coap") == "coaps"

    def start(self, sim: Any, remote: Any) -> None:
        """Run the bootstrap sequence for this device in the background (once at a time)."""
        task = self.running.get(sim.iccid)
        if task is not None and not task.done():
            return
        self.running[sim.iccid] = asyncio.get_running_loop().create_task(
            self.run(sim.iccid, remote), name=f"lwm2m-bootstrap-{sim.iccid}")

    async def run(self, iccid: str, remote: Any) -> BootstrapResult:
        dtls = self.is_dtls(remote)
        result = BootstrapResult(iccid, dtls)
        try:
            await asyncio.sleep(0.02)  # let the 2.04 to the Bootstrap-Request go out first
            await self._sequence(iccid, remote, dtls, result)
        except Exception as exc:  # pragma: no cover - a bug must not kill the loop
            log.exception("bootstrap of %s failed", iccid)
            result.steps.append(("internal error", str(exc)))
        finally:
            result.finished_ms = time.time_ns() // 1_000_000
            self.results[iccid] = result
            self.results.move_to_end(iccid)
            while len(self.results) > 1000:
                self.results.popitem(last=False)
            self.running.pop(iccid, None)
        log.info("bootstrap %s", "finished" if result.ok else "failed",
                 extra={"event": "lwm2m_bootstrap", "iccid": iccid, "ok": result.ok, "dtls": dtls,
                        "steps": [f"{op} {code}" for op, code in result.steps]})
        return result

    async def _step(self, result: BootstrapResult, name: str, remote: Any, code: Code, path: list[str],
                    payload: bytes = b"", **options: Any) -> DeviceResponse:
        response, _ = await self.requests.send_to(remote, code, path, payload, **options)
        result.steps.append((name, response.code or response.error or "?"))
        return response

    async def _sequence(self, iccid: str, remote: Any, dtls: bool, result: BootstrapResult) -> None:
        cfg = self.config
        discover = await self._step(result, "discover /0", remote, Code.GET, ["0"],
                                    accept=ContentFormat.LINK_FORMAT)
        bootstrap_iid = None
        if discover.ok:
            try:
                for uri, attrs in parse_link_format(discover.payload):
                    parts = [p for p in uri.split("/") if p]
                    if len(parts) == 2 and parts[0] == "0" and parts[1].isdigit():
                        if "ssid" not in attrs:
                            bootstrap_iid = int(parts[1])
            except ValueError:
                pass
        elif not discover.answered:
            return  # the device is gone
        for path in ("0", "1"):
            await self._step(result, f"delete /{path}", remote, Code.DELETE, [path])
        # beside the bootstrap account; unknown (no discover in 1.0): clients keep it at /0/0
        security_iid = 1 if bootstrap_iid in (None, 0) else 0
        coap_uri, coaps_uri = self._server_uris()
        ssid = cfg.short_server_id
        base = f"/0/{security_iid}"
        if dtls:
            key = await self.lwm2m_key(iccid)
            security = {f"{base}/0": coaps_uri, f"{base}/1": False, f"{base}/2": SECURITY_PSK,
                        f"{base}/3": iccid.encode("ascii"), f"{base}/4": b"", f"{base}/5": key, f"{base}/10": ssid}
        else:
            security = {f"{base}/0": coap_uri, f"{base}/1": False, f"{base}/2": SECURITY_NOSEC,
                        f"{base}/3": b"", f"{base}/4": b"", f"{base}/5": b"", f"{base}/10": ssid}
        tlv = ContentFormat.TLV
        response = await self._step(result, f"write {base}", remote, Code.PUT, ["0", str(security_iid)],
                                    encode(tlv, security, base, self.objects), content_format=tlv)
        if not response.ok:
            return
        server = {"/1/0/0": ssid, "/1/0/1": cfg.lifetime, "/1/0/6": True, "/1/0/7": cfg.binding}
        response = await self._step(result, "write /1/0", remote, Code.PUT, ["1", "0"],
                                    encode(tlv, server, "/1/0", self.objects), content_format=tlv)
        if not response.ok:
            return
        response = await self._step(result, "finish", remote, Code.POST, ["bs"])
        result.ok = response.ok

    async def lwm2m_key(self, iccid: str) -> bytes:
        """The key written into the LwM2M server account: the SIM's current DTLS key, stored as
        its LWM2M key before it is written. Not a fresh one, so bootstrapping again never
        changes (and never locks out) the device's credential; after an explicit rotation
        the device gets the new key here."""
        return await self.psks.for_lwm2m_server(iccid)
