"""LwM2M over DTLS: bootstrap with the SIM's CoAP PSK, receive the LWM2M PSK in the Security
object, register with it over DTLS, Send, and be read through the DTLS session."""

from __future__ import annotations

import asyncio
import os
import random

import aiocoap
from aiocoap import CON
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import ACK

from firmware_examples.dtls_client import DtlsClient
from firmware_examples.lwm2m_client import LwM2MClient
from gateway.lwm2m import ContentFormat, encode
from tests._lwm2m_server_helpers import wait_action, wait_for
from tests.conftest import make_config, sim, webhook


class DtlsDevice:
    """A DTLS LwM2M device: the emulator's data model behind a DtlsClient, CoAP by hand."""

    def __init__(self, model: LwM2MClient, dtls: DtlsClient) -> None:
        self.model = model
        self.dtls = dtls
        self.responses: dict[bytes, asyncio.Future] = {}
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.dtls.connect()
        self.task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.dtls.close()

    async def _serve(self) -> None:
        while True:
            data = await self.dtls.recv()
            message = aiocoap.Message.decode(data)
            if message.code.is_response():
                future = self.responses.pop(message.token, None)
                if future is not None and not future.done():
                    future.set_result(message)
                continue
            if not message.code.is_request():
                continue
            answer = self.model.handle(message)
            answer.mtype = ACK
            answer.mid = message.mid
            answer.token = message.token
            await self.dtls.send(answer.encode())

    async def request(self, code: Code, path: str, payload: bytes = b"", query: list[str] | None = None,
                      content_format: int | None = None) -> aiocoap.Message:
        message = aiocoap.Message(code=code, payload=payload, uri_path=[p for p in path.split("/") if p])
        message.mtype = CON
        message.mid = random.randrange(0x10000)
        message.token = os.urandom(4)
        if query:
            message.opt.uri_query = query
        if content_format is not None:
            message.opt.content_format = content_format
        future = asyncio.get_running_loop().create_future()
        self.responses[message.token] = future
        await self.dtls.send(message.encode())
        return await asyncio.wait_for(future, 10)


async def test_bootstrap_register_send_and_read_over_dtls(tmp_path, receiver, ca_file, start_gateway):
    device = sim(33)
    hook = webhook(receiver, ca_file, event_types=["TELEMETRY_DATA"])
    gw = await start_gateway(make_config(tmp_path, webhooks=[hook]), [device])
    await gw.psks.set(device.iccid, "COAP", b"onboarding-key-33")
    server = ("127.0.0.1", gw.coaps_port)
    model = LwM2MClient(device.iccid, device.ip_address)
    model.values.update({"/0/0/0": f"coaps://127.0.0.1:{gw.coaps_port}", "/0/0/1": True, "/0/0/2": 0,
                         "/0/0/3": device.iccid.encode(), "/0/0/5": b"onboarding-key-33"})

    # bootstrap over DTLS with the SIM's CoAP key
    boot = DtlsDevice(model, DtlsClient(server, identity=device.iccid.encode(), psk=b"onboarding-key-33",
                                        local_host=device.ip_address))
    await boot.start()
    try:
        answer = await boot.request(Code.POST, "/bs", query=[f"ep={device.iccid}"])
        assert answer.code == Code.CHANGED
        await wait_for(lambda: device.iccid in gw.lwm2m.bootstrap.results, timeout=10)
        result = gw.lwm2m.bootstrap.results[device.iccid]
        assert result.ok and result.dtls, result.steps
    finally:
        await boot.stop()
    key = model.values["/0/1/5"]
    assert model.values["/0/1/2"] == 0  # PSK mode
    assert model.values["/0/1/3"] == device.iccid.encode()  # identity = ICCID
    assert model.values["/0/1/0"] == f"coaps://127.0.0.1:{gw.coaps_port}"
    # the LwM2M server account gets the key the device bootstrapped with (one credential per SIM)
    assert key == b"onboarding-key-33" and gw.psks.key(device.iccid, "LWM2M") == key
    assert model.values["/0/0/1"] is True  # the bootstrap account stays

    # register over DTLS with the LWM2M key, send, and be read through the session
    dev = DtlsDevice(model, DtlsClient(server, identity=device.iccid.encode(), psk=key,
                                       local_host=device.ip_address))
    await dev.start()
    try:
        answer = await dev.request(Code.POST, "/rd", model.link_list().encode(),
                                   [f"ep={device.iccid}", "lt=300", "lwm2m=1.1", "b=U"], ContentFormat.LINK_FORMAT)
        assert answer.code == Code.CREATED
        reg = gw.lwm2m.registrations.of(device.iccid)
        assert reg.transport == "coaps" and "/".join(answer.opt.location_path) == f"rd/{reg.id}"
        payload = encode(ContentFormat.SENML_CBOR, {"/3303/0/5700": 19.5}, "/")
        answer = await dev.request(Code.POST, "/dp", payload, content_format=ContentFormat.SENML_CBOR)
        assert answer.code == Code.CHANGED
        (event,) = await receiver.wait_for(1)
        assert event["source"] == "LWM2M" and event["payload"]["value"] == {"/3303/0/5700": 19.5}

        action = await gw.lwm2m.actions.submit(device.iccid, "read", "/3/0/0")
        record = await wait_action(gw, action["id"])
        assert record["status"] == "SUCCEEDED" and record["result"]["value"] == {"/3/0/0": "nce-gateway"}

        # an endpoint name other than the DTLS identity is refused
        answer = await dev.request(Code.POST, "/rd", b"</3/0>", [f"ep={sim(34).iccid}"], ContentFormat.LINK_FORMAT)
        assert answer.code == Code.FORBIDDEN
    finally:
        await dev.stop()


async def bootstrap_and_register(gw, device, model: LwM2MClient, key: bytes) -> str:
    """A DTLS bootstrap with ``key``, then a DTLS Register with what was written; the registration id."""
    server = ("127.0.0.1", gw.coaps_port)
    gw.lwm2m.bootstrap.results.pop(device.iccid, None)
    boot = DtlsDevice(model, DtlsClient(server, identity=device.iccid.encode(), psk=key, local_host=device.ip_address))
    await boot.start()
    try:
        answer = await boot.request(Code.POST, "/bs", query=[f"ep={device.iccid}"])
        assert answer.code == Code.CHANGED
        await wait_for(lambda: device.iccid in gw.lwm2m.bootstrap.results, timeout=10)
        assert gw.lwm2m.bootstrap.results[device.iccid].ok
    finally:
        await boot.stop()
    dev = DtlsDevice(model, DtlsClient(server, identity=device.iccid.encode(), psk=model.values["/0/1/5"],
                                       local_host=device.ip_address))
    await dev.start()
    try:
        answer = await dev.request(Code.POST, "/rd", model.link_list().encode(),
                                   [f"ep={device.iccid}", "lt=300", "lwm2m=1.1", "b=U"], ContentFormat.LINK_FORMAT)
        assert answer.code == Code.CREATED
        return answer.opt.location_path[1]
    finally:
        await dev.stop()


async def test_bootstrap_again_with_the_onboarding_key_never_locks_out(tmp_path, start_gateway):
    """Bootstrap, register, restart the client with the same credentials, bootstrap and register
    again: the device gets in every time; an explicit rotation reaches it through the bootstrap."""
    device = sim(35)
    gw = await start_gateway(make_config(tmp_path), [device])
    onboarding = await gw.psks.for_bootstrap(device.iccid)  # what GET /bootstrap handed out
    assert len(onboarding) == 16

    def fresh_model() -> LwM2MClient:  # a restarted client: only its bootstrap account survives
        model = LwM2MClient(device.iccid, device.ip_address)
        model.values.update({"/0/0/0": f"coaps://127.0.0.1:{gw.coaps_port}", "/0/0/1": True, "/0/0/2": 0,
                             "/0/0/3": device.iccid.encode(), "/0/0/5": onboarding})
        return model

    first = await bootstrap_and_register(gw, device, fresh_model(), onboarding)
    second = await bootstrap_and_register(gw, device, fresh_model(), onboarding)
    assert first != second and gw.lwm2m.registrations.of(device.iccid).id == second
    assert gw.psks.dtls_key(device.iccid) == onboarding  # GET /bootstrap hands out what the port accepts
    assert await gw.psks.for_bootstrap(device.iccid) == onboarding

    # an explicit rotation: the device still bootstraps with its onboarding key (grace period) and
    # is given the new key for its server account, which it registers with
    rotated = (await gw.psks.rotate(device.iccid)).key
    model = fresh_model()
    server = ("127.0.0.1", gw.coaps_port)
    refused = DtlsClient(server, identity=device.iccid.encode(), psk=onboarding, local_host=device.ip_address)
    try:  # the current key is offered first: the old key fails once ...
        await refused.connect(timeout=3)
        raise AssertionError("the previous key was taken on the first attempt")
    except (ConnectionError, TimeoutError):
        pass
    finally:
        await refused.close(notify=False)
    await bootstrap_and_register(gw, device, model, onboarding)  # ... and gets in on the next attempt
    assert model.values["/0/1/5"] == rotated and gw.psks.key(device.iccid, "LWM2M") == rotated
