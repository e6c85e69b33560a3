"""The text log format keeps the structured fields (issue 12: "registration expired" must say
whose)."""

from __future__ import annotations

import logging

from gateway.logs import JsonFormatter, TextFormatter


def record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("nce.lwm2m", logging.INFO, __file__, 1, msg, (), None)
    rec.__dict__.update(extra)
    return rec


def test_text_format_keeps_device_fields():
    rec = record("registration expired", event="lwm2m_expired", iccid="8988280666000000010", lifetime=300,
                 reason="no update", steps=["a b", "c"])
    line = TextFormatter().format(rec)
    assert line.endswith(' INFO nce.lwm2m: registration expired event=lwm2m_expired iccid=8988280666000000010 '
                         'lifetime=300 reason="no update" steps="[\\"a b\\", \\"c\\"]"')


def test_text_format_quotes_what_could_fake_a_field():
    line = TextFormatter().format(record("x", identity='a" b=c\nevil'))
    assert line.endswith(' x identity="a\\" b=c\\nevil"') and "\n" not in line


def test_text_format_without_fields_and_json_unchanged():
    assert TextFormatter().format(record("plain")).endswith(" INFO nce.lwm2m: plain")
    assert '"iccid": "8988"' in JsonFormatter().format(record("m", iccid="8988"))
