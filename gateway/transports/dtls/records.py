"""DTLS record-layer helpers (RFC 6347 §4.1): just enough parsing to route a
datagram before Mbed TLS sees it, and to cut Mbed TLS' outgoing byte stream
back into datagrams.

Record header: type(1) version(2) epoch(2) sequence_number(6) length(2) = 13 bytes.
"""

from __future__ import annotations

from typing import NamedTuple

HEADER_LEN = 13

CT_CHANGE_CIPHER_SPEC = 20
CT_ALERT = 21
CT_HANDSHAKE = 22
CT_APPLICATION_DATA = 23
CONTENT_TYPES = frozenset((20, 21, 22, 23))

HS_CLIENT_HELLO = 1


class ClientHelloInfo(NamedTuple):
    random: bytes
    cookie: bytes


def split_records(data: bytes) -> list[bytes] | None:
    """Split a byte string into whole DTLS records; None if it does not parse."""
    out = []
    i, n = 0, len(data)
    while i < n:
        if n - i < HEADER_LEN:
            return None
        end = i + HEADER_LEN + ((data[i + 11] << 8) | data[i + 12])
        if end > n:
            return None
        out.append(data[i:end])
        i = end
    return out


def pack_datagrams(stream: bytes, max_size: int) -> list[bytes]:
    """Cut Mbed TLS' outgoing stream at record boundaries into datagrams of at
    most ``max_size`` bytes (several records may share a datagram, RFC 6347
    §4.1.1; a record is never split).  A single record larger than ``max_size``
    goes alone."""
    if len(stream) <= max_size:
        return [stream]
    records = split_records(stream)
    if records is None:  # cannot happen with whole records from Mbed TLS
        return [stream]
    out: list[bytes] = []
    cur = b""
    for rec in records:
        if cur and len(cur) + len(rec) > max_size:
            out.append(cur)
            cur = b""
        cur += rec
    if cur:
        out.append(cur)
    return out


def parse_client_hello(data: bytes) -> ClientHelloInfo | None:
    """Random and cookie of an unfragmented ClientHello at the start of a datagram.

    Layout after the record header: msg_type(1) length(3) message_seq(2)
    fragment_offset(3) fragment_length(3), then client_version(2) random(32)
    session_id<0..32> cookie<0..255> ...
    """
    if len(data) < HEADER_LEN + 12 + 2 + 32 + 1 + 1:
        return None
    if data[0] != CT_HANDSHAKE or data[13] != HS_CLIENT_HELLO:
        return None
    body = HEADER_LEN + 12
    pos = body + 2 + 32
    random = data[body + 2 : pos]
    sid_len = data[pos]
    if sid_len > 32:
        return None
    pos += 1 + sid_len
    if pos >= len(data):
        return None
    cookie_len = data[pos]
    pos += 1
    if pos + cookie_len > len(data):
        return None
    return ClientHelloInfo(random, data[pos : pos + cookie_len])
