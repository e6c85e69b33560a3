"""PSK onboarding: plain-CoAP ``GET /bootstrap`` answers ``ICCID,PSK[,coaps URL]`` (SPEC §1).

This is what the 1NCE SDK's ``os_auth`` does before it talks CoAP over DTLS: the device is
known by its source IP (the SIM's address), so the request itself needs no credentials. The
SDK sends it as NON with a Uri-Host naming 1NCE's host; the host is ignored as everywhere.
"""

from __future__ import annotations

from typing import Any

import aiocoap
from aiocoap import resource

from .coap_site import error_response, request_refusal_reason, request_sim


class BootstrapResource(resource.Resource):
    def __init__(self, psks: Any, metrics: Any, public_url: str = "") -> None:
        super().__init__()
        self.psks = psks
        self.metrics = metrics
        self.public_url = public_url

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        if getattr(request.remote, "scheme", "coap") != "coap":
            return error_response(aiocoap.FORBIDDEN, "bootstrap is plain CoAP only")
        sim = request_sim(request)
        if sim is None:
            self.metrics.reject("COAP", request_refusal_reason(request))
            return error_response(aiocoap.UNAUTHORIZED, "unknown or disabled SIM")
        key = await self.psks.for_bootstrap(sim.iccid, "COAP")  # durable before it is handed out
        if not (key.isascii() and key.decode("ascii").isprintable() and b"," not in key):
            # a binary key set by a user cannot travel as text; handing out a mangled one is worse
            return error_response(aiocoap.FORBIDDEN, "this SIM's PSK is not printable text; provision it on the device")
        answer = f"{sim.iccid},{key.decode('ascii')}"
        if self.public_url:
            answer += f",{self.public_url}"
        return aiocoap.Message(code=aiocoap.CONTENT, payload=answer.encode("ascii"),
                               content_format=0)
