"""Helpers shared by the LwM2M server tests (not collected: no test_ prefix)."""

from __future__ import annotations

import asyncio
from typing import Any

from firmware_examples.coap_client import CoapClient, build_request
from firmware_examples.lwm2m_client import LwM2MClient


async def wait_action(gw: Any, action_id: str, timeout: float = 10.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        record = await gw.lwm2m.actions.get(action_id)
        if record["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return record
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"action still {record['status']}: {record}")
        await asyncio.sleep(0.05)


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def registered_client(gw: Any, device: Any, **kwargs: Any) -> LwM2MClient:
    client = await LwM2MClient.start(device.iccid, device.ip_address, **kwargs)
    await client.register(f"coap://127.0.0.1:{gw.coap_port}")
    return client


async def raw_request(port: int, source_ip: str, method: Any, path: str, payload: bytes = b"",
                      query: list[str] | None = None, content_format: int | None = None) -> Any:
    """One CoAP request from a plain socket (for inputs the emulator would never send)."""
    def _run() -> Any:
        message = build_request(method, path, payload, query=query)
        if content_format is not None:
            message.opt.content_format = content_format
        with CoapClient(("127.0.0.1", port), source_ip) as client:
            return client.request(message, timeout=5)
    return await asyncio.to_thread(_run)
