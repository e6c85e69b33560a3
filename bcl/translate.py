"""What the gateway calls: translate a payload, test a template.

`json_text` is the one place that turns a translation into JSON text, so the
Energy Saver statistics (``reducedBytes``) count the same bytes the gateway
sends: compact separators, UTF-8, non-ASCII characters unescaped (as
JavaScript's ``JSON.stringify`` writes them).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from .compile import CompiledTemplate, compile_template

__all__ = ["Translation", "translate", "message_test", "json_text", "ENERGY_MWH_PER_BYTE"]

# SPEC §3: E = 0.013 * x + 94.084 mWh for x bytes sent.
ENERGY_MWH_PER_BYTE = 0.013


class Translation(NamedTuple):
    """A translated payload (a NamedTuple: cheap to make, immutable).

    `value` is the JSON object; `locations` holds the values of statements with
    ``custom_type`` ``location_lat`` / ``location_long`` that ran (keys ``lat``
    and ``long``; either may be missing), or None when none ran.
    """

    value: dict
    locations: dict[str, float | int] | None


_new_tuple = tuple.__new__


def translate(compiled: CompiledTemplate | Any, payload: bytes) -> Translation:
    """Translate `payload` with a compiled template (a template is compiled, cached)."""
    if type(compiled) is not CompiledTemplate:
        compiled = compile_template(compiled)
    # tuple.__new__ skips the NamedTuple's Python-level __new__ (hot path).
    return _new_tuple(Translation, compiled.decode_with_locations(payload))


def json_text(value: Any) -> str:
    """The JSON text of a translation as the gateway sends it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def message_test(template: Any, payload: bytes) -> dict[str, Any]:
    """``POST /v1/optimize/messages/test``: translate one payload and rate the saving.

    ``translatedPayload`` is the JSON *text* (the 1NCE API returns "a stringified
    JSON message"); ``reducedBytes`` is its UTF-8 length minus the payload's
    length (negative when the JSON is shorter); ``energyUsageReduction`` is
    0.013 mWh per byte, rounded to 3 decimals (exact for whole bytes).
    Raises TemplateError or TranslationError.
    """
    text = json_text(translate(compile_template(template), payload).value)
    reduced = len(text.encode("utf-8")) - len(payload)
    return {
        "translatedPayload": text,
        "reducedBytes": reduced,
        "energyUsageReduction": round(ENERGY_MWH_PER_BYTE * reduced, 3),
    }
