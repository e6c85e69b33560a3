"""3GPP-User-Location-Info (TS 29.061 §16.4.7.2, vendor 10415 attribute 22) and RAT types.

Pure functions: bytes in, a dict out. The first octet says what follows; MCC and MNC are three
BCD octets (MNC digit 3 is 0xF for two-digit MNCs).
"""

from __future__ import annotations

RAT_TYPES = {1: "UTRAN", 2: "GERAN", 3: "WLAN", 4: "GAN", 5: "HSPA-Evolution", 6: "EUTRAN", 7: "Virtual",
             8: "NB-IoT", 9: "LTE-M", 10: "NR"}
_KINDS = {0: "CGI", 1: "SAI", 2: "RAI", 128: "TAI", 129: "ECGI", 130: "TAI+ECGI"}
_LENGTHS = {0: 7, 1: 7, 2: 7, 128: 5, 129: 7, 130: 12}


class LocationError(ValueError):
    """User-Location-Info that cannot be decoded; the message says why."""


def plmn(b: bytes) -> tuple[str, str]:
    """(MCC, MNC) from three BCD octets."""
    if len(b) != 3:
        raise LocationError("PLMN needs 3 octets")
    digits = [b[0] & 0x0F, b[0] >> 4, b[1] & 0x0F, b[2] & 0x0F, b[2] >> 4, b[1] >> 4]
    mcc_digits, mnc_digits = digits[:3], digits[3:] if digits[5] != 0x0F else digits[3:5]
    if any(d > 9 for d in mcc_digits + mnc_digits):
        raise LocationError(f"PLMN {b.hex()} is not BCD")
    return "".join(map(str, mcc_digits)), "".join(map(str, mnc_digits))


def decode_uli(value: bytes) -> dict:
    """Decode one User-Location-Info value, e.g. ``0032f4030921b8e8`` →
    ``{"type": "CGI", "mcc": "234", "mnc": "30", "lac": 2337, "ci": 47336}``."""
    if not value:
        raise LocationError("empty User-Location-Info")
    kind = value[0]
    if kind not in _KINDS:
        raise LocationError(f"unknown User-Location-Info type {kind}")
    if len(value) != 1 + _LENGTHS[kind]:
        raise LocationError(f"{_KINDS[kind]} User-Location-Info needs {1 + _LENGTHS[kind]} octets, got {len(value)}")
    mcc, mnc = plmn(value[1:4])
    out: dict = {"type": _KINDS[kind], "mcc": mcc, "mnc": mnc}
    body = value[4:]
    if kind == 0:
        out.update(lac=int.from_bytes(body[0:2], "big"), ci=int.from_bytes(body[2:4], "big"))
    elif kind == 1:
        out.update(lac=int.from_bytes(body[0:2], "big"), sac=int.from_bytes(body[2:4], "big"))
    elif kind == 2:
        out.update(lac=int.from_bytes(body[0:2], "big"), rac=body[2])
    elif kind == 128:
        out.update(tac=int.from_bytes(body[0:2], "big"))
    elif kind == 129:
        out.update(eci=int.from_bytes(body[0:4], "big") & 0x0FFFFFFF)
    else:
        out.update(tac=int.from_bytes(body[0:2], "big"))
        out["eci"] = int.from_bytes(body[5:9], "big") & 0x0FFFFFFF
    return out


def rat_name(value: bytes | int | None) -> str | None:
    """The RAT-Type's name (TS 29.274 numbering: 8 NB-IoT, 9 LTE-M), or None when absent."""
    if value is None:
        return None
    code = value if isinstance(value, int) else (value[0] if value else None)
    return RAT_TYPES.get(code, str(code)) if code is not None else None
