"""An MT SMS request (the 1NCE ``SMSMessage`` body) turned into what the outbox stores."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from inspector.records import Sim
from inspector.sms import NewMt

from . import codec


class SmsRequestError(ValueError):
    """A request that cannot become an SMS; ``field`` names the body field at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def parse_expiry(value: str) -> int:
    """ISO 8601 (``2018-03-14T16:10:29Z``, with or without an offset; UTC when none) → epoch ms."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SmsRequestError(f"expiry_date: {value!r} is not an ISO 8601 date and time", "expiry_date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def build_mt(sim: Sim, body: dict[str, Any], *, default_source: str, validity_hours: float, now_ms: int) -> NewMt:
    """Check an ``SMSMessage`` against the SIM and the SMS rules; the parts to submit.

    ``payload`` is text (``dcs`` 0 GSM 7-bit, 8 UCS-2, absent: GSM when every character is in
    the GSM alphabet, else UCS-2) or, with ``dcs`` 4, hex octets. ``udh`` (hex) is sent as given
    with the payload in one part; without it a long text is split and concatenated.
    """
    if not sim.msisdn:
        raise SmsRequestError(f"SIM {sim.iccid} has no MSISDN: set one (sims import, column msisdn) to send SMS",
                              "iccid")
    payload = body.get("payload")
    if not isinstance(payload, str) or payload == "":
        raise SmsRequestError("payload: required, a non-empty string", "payload")
    dcs = body.get("dcs")
    if dcs is not None and dcs not in (codec.DCS_GSM, codec.DCS_BINARY, codec.DCS_UCS2):
        raise SmsRequestError(f"dcs: {dcs} is not supported; 0 (GSM 7-bit), 4 (binary, payload in hex) or "
                              "8 (UCS-2)", "dcs")
    try:
        if dcs == codec.DCS_BINARY:
            try:
                octets = bytes.fromhex(payload)
            except ValueError:
                raise SmsRequestError("payload: with dcs 4 the payload is hex octets", "payload") from None
        else:
            octets, dcs = codec.encode_text(payload, dcs)
        udh_hex = body.get("udh")
        udh = None
        if udh_hex:
            try:
                udh = bytes.fromhex(udh_hex)
            except ValueError:
                raise SmsRequestError("udh: not a hex string", "udh") from None
            if not udh or udh[0] != len(udh) - 1:
                raise SmsRequestError(f"udh: its first octet ({udh[0] if udh else 0}) must be the length of the "
                                      f"rest ({len(udh) - 1})", "udh")
        parts = codec.split(octets, dcs, udh)
    except codec.SmsEncodingError as exc:
        raise SmsRequestError(f"payload: {exc}", "payload") from None
    expiry = body.get("expiry_date")
    expiry_ms = parse_expiry(expiry) if expiry else now_ms + int(validity_hours * 3600_000)
    if expiry_ms <= now_ms:
        raise SmsRequestError(f"expiry_date: {expiry} is in the past", "expiry_date")
    source_type = (body.get("source_address_type") or {}).get("id", 145)
    if source_type not in (145, 161, 208):
        raise SmsRequestError("source_address_type.id: 145 (international), 161 (national) or 208 "
                              "(alphanumeric)", "source_address_type")
    source = body.get("source_address") or default_source
    if len(source) > 20:
        raise SmsRequestError("source_address: at most 20 characters", "source_address")
    return NewMt(sim.iccid, sim.msisdn, source, int(source_type), dcs, udh.hex().upper() if udh else None,
                 payload, expiry_ms, [(p.short_message, p.esm_class) for p in parts])
