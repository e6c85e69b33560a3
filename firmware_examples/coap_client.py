"""A small CoAP-over-UDP client for emulated devices, bound to the device's own source address.

Real devices talk from their SIM's IP; on one machine every emulated SIM binds its own
127.x.y.z address. Messages are built and read with aiocoap's message model; the client does
its own CON retransmission (RFC 7252 §4.2 timing) because it owns a plain socket.
"""

from __future__ import annotations

import os
import random
import socket
import time
from dataclasses import dataclass

from aiocoap import CON, NON, Message
from aiocoap.numbers.codes import Code

ACK_TIMEOUT = 2.0
ACK_RANDOM_FACTOR = 1.5
MAX_RETRANSMIT = 4


@dataclass
class CoapResult:
    code: str  # "2.04", or "timeout"
    payload: bytes
    retransmissions: int

    @property
    def ok(self) -> bool:
        return self.code.startswith("2.")


def code_text(code: Code) -> str:
    return code.dotted


def build_request(method: Code, path: str, payload: bytes = b"", *, query: list[str] | None = None,
                  confirmable: bool = True, mid: int | None = None, token: bytes | None = None,
                  uri_host: str | None = None) -> Message:
    message = Message(code=method, payload=payload)
    message.mtype = CON if confirmable else NON
    message.mid = random.randrange(0x10000) if mid is None else mid
    message.token = os.urandom(4) if token is None else token
    message.opt.uri_path = [p for p in path.split("/") if p]
    if query:
        message.opt.uri_query = query
    if uri_host:
        message.opt.uri_host = uri_host
    return message


class CoapClient:
    """One device's CoAP endpoint (a UDP socket on its source IP)."""

    def __init__(self, server: tuple[str, int], source_ip: str = "127.0.0.1", source_port: int = 0) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source_ip, source_port))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "CoapClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, message: Message, timeout: float | None = None) -> CoapResult:
        """Send and wait for the matching response (CON: retransmit on RFC 7252 timing)."""
        data = message.encode()
        confirmable = message.mtype == CON
        wait = ACK_TIMEOUT * random.uniform(1.0, ACK_RANDOM_FACTOR)
        deadline = time.monotonic() + (timeout if timeout is not None else 93.0)
        attempts = 0
        self.sock.sendto(data, self.server)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return CoapResult("timeout", b"", attempts)
            self.sock.settimeout(min(wait, remaining) if confirmable else remaining)
            try:
                raw, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                if confirmable and attempts < MAX_RETRANSMIT and time.monotonic() < deadline:
                    attempts += 1
                    wait *= 2
                    self.sock.sendto(data, self.server)
                    continue
                if not confirmable or attempts >= MAX_RETRANSMIT:
                    return CoapResult("timeout", b"", attempts)
                continue
            try:
                reply = Message.decode(raw)
            except Exception:
                continue
            if reply.token != message.token:
                continue
            if reply.code == Code.EMPTY:  # separate response follows
                confirmable = False
                continue
            return CoapResult(code_text(reply.code), reply.payload, attempts)

    def post(self, path: str, payload: bytes, *, topic: str | None = None, confirmable: bool = True,
             timeout: float | None = None) -> CoapResult:
        query = [f"t={topic}"] if topic is not None else None
        return self.request(build_request(Code.POST, path, payload, query=query, confirmable=confirmable), timeout)

    def get(self, path: str, *, confirmable: bool = True, uri_host: str | None = None,
            timeout: float | None = None) -> CoapResult:
        return self.request(build_request(Code.GET, path, confirmable=confirmable, uri_host=uri_host), timeout)
