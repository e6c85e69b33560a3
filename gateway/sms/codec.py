"""What goes into ``short_message``: GSM 03.38 text, UCS-2, binary; concatenation headers.

SMPP carries the GSM default alphabet *unpacked* (one septet per octet, ``data_coding`` 0):
the SMSC packs septets for the air interface, so this module never packs. The table is the
GSM 03.38 one; smpplib's ``gsm_encode`` is not used because its table lacks ``§`` (0x5F) and
maps the back-tick onto it. Splitting and the concatenation header (IEI 0x00, 8-bit reference)
follow 3GPP TS 23.040 §9.2.3.24.1; a GSM escape pair is never cut between two parts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DCS_GSM = 0
DCS_BINARY = 4
DCS_UCS2 = 8
ESM_UDHI = 0x40

_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
          "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E,
              "|": 0x40, "€": 0x65}
_ENCODE = {ch: bytes([i]) for i, ch in enumerate(_BASIC) if ch != "\x1b"}
_ENCODE.update({ch: bytes([0x1B, code]) for ch, code in _EXTENSION.items()})
_DECODE_EXT = {code: ch for ch, code in _EXTENSION.items()}

SINGLE_LIMIT = {DCS_GSM: 160, DCS_UCS2: 140, DCS_BINARY: 140}  # octets of short_message without UDH
MAX_PARTS = 255


class SmsEncodingError(ValueError):
    """A text or payload that cannot be sent as asked; the message says why."""


def gsm_encode(text: str) -> bytes:
    """Unpacked GSM 03.38 septets; raises :class:`SmsEncodingError` naming the first character
    outside the GSM alphabet."""
    try:
        return b"".join(_ENCODE[ch] for ch in text)
    except KeyError as exc:
        raise SmsEncodingError(f"character {exc.args[0]!r} is not in the GSM 7-bit alphabet") from None


def gsm_decode(data: bytes) -> str:
    out = []
    escape = False
    for b in data:
        b &= 0x7F
        if escape:
            out.append(_DECODE_EXT.get(b, " "))  # unknown extension: space (TS 23.038 §6.2.1.1)
            escape = False
        elif b == 0x1B:
            escape = True
        else:
            out.append(_BASIC[b])
    return "".join(out)


def is_gsm(text: str) -> bool:
    return all(ch in _ENCODE for ch in text)


def encode_text(text: str, dcs: int | None = None) -> tuple[bytes, int]:
    """(octets, data_coding) for a text: GSM when it fits the alphabet (or ``dcs`` 0 asked),
    else UCS-2 (UTF-16BE; characters beyond the BMP take two code units)."""
    if dcs == DCS_GSM or (dcs is None and is_gsm(text)):
        return gsm_encode(text), DCS_GSM
    if dcs not in (None, DCS_UCS2):
        raise SmsEncodingError(f"dcs {dcs}: a text is sent with dcs 0 (GSM) or 8 (UCS-2)")
    return text.encode("utf-16-be"), DCS_UCS2


def decode_payload(data: bytes, dcs: int) -> str:
    """A received body as the API shows it: text for GSM and UCS-2, hex for anything else."""
    coding = dcs
    if dcs & 0xF0 == 0xF0:  # F0..FF: message class group, bit 2 says 8-bit data
        coding = DCS_BINARY if dcs & 0x04 else DCS_GSM
    if coding == DCS_GSM:
        return gsm_decode(data)
    if coding == DCS_UCS2:
        return data.decode("utf-16-be", errors="replace")
    if coding in (1, 3):  # IA5 / Latin-1
        return data.decode("latin-1")
    return data.hex().upper()


def _chunks(body: bytes, size: int, gsm: bool) -> list[bytes]:
    parts: list[bytes] = []
    start = 0
    while start < len(body):
        end = min(start + size, len(body))
        if gsm and end < len(body) and body[end - 1] == 0x1B and _ends_in_escape(body, start, end):
            end -= 1  # keep the escape with the character it introduces
        elif not gsm and size % 2 == 0 and end < len(body) and _cuts_surrogate(body, end):
            end -= 2
        parts.append(body[start:end])
        start = end
    return parts


def _ends_in_escape(body: bytes, start: int, end: int) -> bool:
    """Whether ``body[end-1]`` is an escape that opens a pair (not the second octet of one)."""
    i, opens = start, False
    while i < end:
        opens = body[i] == 0x1B and i == end - 1
        i += 2 if body[i] == 0x1B else 1
    return opens


def _cuts_surrogate(body: bytes, end: int) -> bool:
    return 0xD8 <= body[end - 2] <= 0xDB


@dataclass(frozen=True, slots=True)
class Part:
    """One submit_sm's body: ``short_message`` (UDH included when ``esm_class`` has UDHI)."""

    short_message: bytes
    esm_class: int


def split(body: bytes, dcs: int, udh: bytes | None = None, reference: int | None = None) -> list[Part]:
    """The submit_sm bodies of one SMS.

    A caller's own UDH is sent as it is, with the body in one part (the caller concatenates).
    Without one, a body over the single-message limit is cut into parts with a concatenation
    header (8-bit reference; 153 septets, 134 octets or 67 UCS-2 characters per part).
    """
    if udh:
        if len(udh) + len(body) > 140 and dcs != DCS_GSM or dcs == DCS_GSM and len(udh) + len(body) > 160:
            raise SmsEncodingError(f"with a UDH of {len(udh)} octets the payload must fit one SMS "
                                   f"({len(body)} octets given)")
        return [Part(udh + body, ESM_UDHI)]
    limit = SINGLE_LIMIT.get(dcs, 140)
    if len(body) <= limit:
        return [Part(body, 0)]
    size = 153 if dcs == DCS_GSM else 134
    chunks = _chunks(body, size, dcs == DCS_GSM)
    if len(chunks) > MAX_PARTS:
        raise SmsEncodingError(f"the message needs {len(chunks)} parts; at most {MAX_PARTS} can be concatenated")
    ref = random.randrange(256) if reference is None else reference & 0xFF
    total = len(chunks)
    return [Part(bytes([5, 0, 3, ref, total, i]) + chunk, ESM_UDHI) for i, chunk in enumerate(chunks, 1)]


@dataclass(frozen=True, slots=True)
class Concat:
    """The concatenation information in a received UDH."""

    reference: int
    total: int
    number: int


def parse_udh(short_message: bytes) -> tuple[bytes, bytes, Concat | None]:
    """(udh, body, concat) of a short_message that starts with a UDH (UDHI set)."""
    if not short_message:
        return b"", b"", None
    length = short_message[0]
    udh, body = short_message[: length + 1], short_message[length + 1:]
    concat = None
    i = 1
    while i + 1 < len(udh):
        iei, ielen = udh[i], udh[i + 1]
        data = udh[i + 2: i + 2 + ielen]
        if iei == 0x00 and ielen == 3 and len(data) == 3:
            concat = Concat(data[0], data[1], data[2])
        elif iei == 0x08 and ielen == 4 and len(data) == 4:
            concat = Concat(data[0] << 8 | data[1], data[2], data[3])
        i += 2 + ielen
    return udh, body, concat

