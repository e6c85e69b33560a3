"""LwM2M refusals are counted as LWM2M (issue 12): a Register, Update or Send from an address of
no SIM or of a disabled SIM is counted under protocol="LWM2M", not "COAP"."""

from __future__ import annotations

import asyncio

from aiocoap.numbers.codes import Code

from firmware_examples.coap_client import CoapClient, build_request
from gateway.lwm2m.resources import refusal_reason
from tests.conftest import make_config, sim


def post(port: int, source_ip: str, path: str, query: list[str]) -> str:
    with CoapClient(("127.0.0.1", port), source_ip) as client:
        return client.request(build_request(Code.POST, path, b"</3/0>", query=query), timeout=5).code


def rejected(gw) -> dict[tuple[str, str], float]:
    out = {}
    for metric in gw.metrics.rejected.collect():
        for s in metric.samples:
            if s.name.endswith("_total"):
                out[(s.labels["protocol"], s.labels["reason"])] = s.value
    return out


async def test_lwm2m_refusals_are_counted_as_lwm2m(tmp_path, start_gateway):
    enabled, disabled = sim(43), sim(44, "Disabled")
    gw = await start_gateway(make_config(tmp_path), [enabled, disabled])
    for ip, path in (("127.0.0.97", "/rd"), (disabled.ip_address, "/rd"), ("127.0.0.97", "/dp")):
        assert await asyncio.to_thread(post, gw.coap_port, ip, path, [f"ep={disabled.iccid}"]) == "4.01"
    counts = rejected(gw)
    assert sum(v for (protocol, _), v in counts.items() if protocol == "LWM2M") == 3
    assert sum(v for (protocol, _), v in counts.items() if protocol == "COAP") == 0


def test_refusal_reason_tells_disabled_from_unknown(tmp_path):
    from gateway.identity import SimRegistry
    from inspector.sqlite import SqliteStore

    disabled = sim(44, "Disabled")
    store = SqliteStore(tmp_path / "s.db")
    store.upsert_sims([disabled])
    registry = SimRegistry(store)
    registry.reload()

    class Remote:
        def __init__(self, reason):
            self.refusal_reason = reason

    assert refusal_reason(Remote(lambda: registry.refusal_for_ip(disabled.ip_address))) == "disabled_sim"
    assert refusal_reason(Remote(lambda: registry.refusal_for_ip("127.0.0.97"))) == "unknown_sim"
    assert refusal_reason(Remote(lambda: registry.refusal_for_iccid(disabled.iccid))) == "disabled_sim"
    assert refusal_reason(Remote(lambda: registry.refusal_for_iccid("8988280666000000077"))) == "unknown_sim"
    assert refusal_reason(object()) == "unknown_sim"
