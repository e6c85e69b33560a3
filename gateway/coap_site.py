"""The aiocoap resource tree: everything the uplink fast path hands over.

Uplink POSTs reach this site only when they need aiocoap's machinery (block-wise transfer,
unusual options); the answers are the same as on the fast path. Other features (PSK bootstrap,
LwM2M) add their resources here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiocoap
from aiocoap import resource

from .topics import BadTopic, topic_from_query


def request_sim(request: aiocoap.Message) -> Any:
    """The enabled SIM behind a request's remote (UDP address or DTLS identity), or None."""
    sim_of = getattr(request.remote, "sim", None)
    return sim_of() if sim_of is not None else None


def request_refusal_reason(request: aiocoap.Message) -> str:
    """``unknown_sim`` or ``disabled_sim`` for a request that found no enabled SIM."""
    reason_of = getattr(request.remote, "refusal_reason", None)
    return reason_of() if reason_of is not None else "unknown_sim"


def error_response(code: aiocoap.numbers.codes.Code, text: str) -> aiocoap.Message:
    return aiocoap.Message(code=code, payload=text.encode("utf-8"))


class UplinkResource(resource.Resource):
    """``POST /`` and ``POST /data`` when the fast path could not take them."""

    def __init__(self, pipeline: Any, metrics: Any, max_payload: int) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.metrics = metrics
        self.max_payload = max_payload

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        sim = request_sim(request)
        if sim is None:
            self.metrics.reject("COAP", request_refusal_reason(request))
            return error_response(aiocoap.UNAUTHORIZED, "unknown or disabled SIM")
        try:
            query = [q.encode("utf-8", "surrogateescape") for q in request.opt.uri_query]
            topic = topic_from_query(query)
        except (BadTopic, UnicodeError) as exc:
            self.metrics.reject("COAP", "bad_topic")
            return error_response(aiocoap.BAD_REQUEST, str(exc))
        if len(request.payload) > self.max_payload:
            self.metrics.reject("COAP", "oversize")
            return error_response(aiocoap.REQUEST_ENTITY_TOO_LARGE, "payload too large")
        done = asyncio.get_running_loop().create_future()
        self.pipeline.uplink(sim, "COAP", request.payload, topic, (done.set_result, None))
        await done
        return aiocoap.Message(code=aiocoap.CHANGED)


def build_site(pipeline: Any, metrics: Any, max_payload: int) -> resource.Site:
    site = resource.Site()
    uplink = UplinkResource(pipeline, metrics, max_payload)
    site.add_resource([], uplink)
    site.add_resource(["data"], uplink)
    return site
