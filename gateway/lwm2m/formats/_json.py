"""Strict JSON reading and compact writing for the two JSON content formats."""

from __future__ import annotations

import json
import math

from ..errors import FormatError

MAX_DEPTH = 32


class _Reject(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in pairs:
        if k in out:
            raise _Reject(f"key {k!r} appears twice in one object")
        out[k] = v
    return out


def _no_constant(name: str) -> object:
    raise _Reject(f"{name} is not valid JSON")


def loads(payload: bytes, fmt: str) -> object:
    """Parse UTF-8 JSON; NaN/Infinity, duplicate keys and deep nesting are errors."""
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{fmt}: payload is not UTF-8 (byte {exc.start})", offset=exc.start) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    _check_depth(text, fmt)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{fmt}: invalid JSON at character {exc.pos}: {exc.msg}", offset=exc.pos) from None
    except _Reject as exc:
        raise FormatError(f"{fmt}: {exc}") from None
    except RecursionError:
        raise FormatError(f"{fmt}: nesting too deep") from None


def _check_depth(text: str, fmt: str) -> None:
    """Refuse deep nesting before the recursive parser sees it (strings skipped)."""
    depth = 0
    in_string = escaped = False
    for pos, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise FormatError(f"{fmt}: nesting deeper than {MAX_DEPTH} levels at character {pos}",
                                  offset=pos)
        elif ch in "]}":
            depth -= 1


def dumps(obj: object, fmt: str) -> bytes:
    """Compact JSON (no spaces), UTF-8, shortest float repr; NaN/Infinity refused."""
    _check_finite(obj, fmt)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _check_finite(obj: object, fmt: str) -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise FormatError(f"{fmt}: {obj!r} cannot be written in JSON")
    if isinstance(obj, list):
        for x in obj:
            _check_finite(x, fmt)
    elif isinstance(obj, dict):
        for x in obj.values():
            _check_finite(x, fmt)
