"""A stand-in SMSC for the SMS tests: the SMPP server of the ``smpp34`` package (a Rust SMPP 3.4
implementation the project does not write), driven from the test: it records every submit_sm,
answers with its own message ids, can throttle, send delivery receipts and MO SMS."""

from __future__ import annotations

import asyncio
import itertools
import socket
from dataclasses import dataclass, field
from typing import Any

import smpp34


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Submit:
    destination: str
    source: str
    short_message: bytes
    data_coding: int
    esm_class: int
    registered_delivery: int
    message_id: str
    session_id: str


@dataclass
class Smsc:
    port: int
    receipts: bool = True  # answer each accepted submit with a DELIVRD receipt
    throttle_next: int = 0  # answer this many submits ESME_RTHROTTLED first
    reject_with: int = 0  # answer every submit with this error status
    receipt_stat: tuple[str, int] = ("DELIVRD", 2)  # receipt text stat and message_state
    submits: list[Submit] = field(default_factory=list)
    throttled: int = 0
    sessions: dict[str, Any] = field(default_factory=dict)
    mo_answers: list[int] = field(default_factory=list)
    _server: Any = None
    _task: asyncio.Task | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1000))
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._server = smpp34.Server("127.0.0.1", self.port, system_id="TESTSMSC")
        await self._server.start()
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        """Go down: unbind every ESME (smpp34's server keeps bound sessions past ``stop``)."""
        for esme in list(self.sessions.values()):
            try:
                await asyncio.wait_for(esme.unbind(), 2.0)
            except Exception:
                pass
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._server is not None:
            await self._server.stop()
        self.sessions.clear()

    async def _serve(self) -> None:
        while True:
            ev = await self._server.next()
            if isinstance(ev, smpp34.Esme):
                self.sessions[ev.session_id] = ev
            elif isinstance(ev, smpp34.Unbound):
                self.sessions.pop(ev.session_id, None)
            elif isinstance(ev, smpp34.SubmitSmEvent):
                if self.throttle_next > 0:
                    self.throttle_next -= 1
                    self.throttled += 1
                    ev.reject(smpp34.ESME_RTHROTTLED)
                    continue
                if self.reject_with:
                    ev.reject(self.reject_with)
                    continue
                message_id = f"M{next(self._ids)}"
                ev.accept(message_id)
                self.submits.append(Submit(ev.destination_addr, ev.source_addr, ev.short_message, ev.data_coding,
                                           ev.esm_class, ev.registered_delivery, message_id, ev.session_id))
                if self.receipts and ev.registered_delivery & 1:
                    asyncio.get_running_loop().create_task(self.receipt(ev.session_id, message_id,
                                                                        ev.destination_addr, ev.source_addr,
                                                                        *self.receipt_stat))
            self.changed.set()

    async def receipt(self, session_id: str, message_id: str, handset: str, esme_addr: str,
                      stat: str = "DELIVRD", state: int = 2) -> None:
        text = f"id:{message_id} sub:001 dlvrd:001 submit date:2612021500 done date:2612021500 stat:{stat} err:000"
        await self.sessions[session_id].deliver_sm(
            esme_addr or "0", text.encode(), source_addr=handset, esm_class=0x04,
            tlvs=[smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, message_id.encode() + b"\0"),
                  smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([state]))])

    async def mo(self, source: str, short_message: bytes, *, destination: str = "1234", data_coding: int = 0,
                 esm_class: int = 0) -> int:
        """Send an MO SMS to the bound gateway; the command_status it answered with."""
        esme = next(iter(self.sessions.values()))
        resp = await esme.deliver_sm(destination, short_message, source_addr=source, source_addr_ton=1,
                                     source_addr_npi=1, data_coding=data_coding, esm_class=esm_class)
        self.mo_answers.append(resp.command_status)
        return resp.command_status

    async def wait(self, predicate: Any, timeout: float = 10.0) -> None:
        async def _wait() -> None:
            while not predicate():
                self.changed.clear()
                try:
                    await asyncio.wait_for(self.changed.wait(), 0.1)
                except asyncio.TimeoutError:
                    pass
        await asyncio.wait_for(_wait(), timeout)
