"""The reference decoder: the language's semantics, written to be read.

It walks the template model statement by statement and parses each selector
with its construct field.  It is the definition the fast generated decoder
(`bcl.codegen`) is tested against, and the fast decoder hands every payload it
cannot translate to it, so error messages are produced in one place only.
"""

from __future__ import annotations

from typing import Any

from .errors import TranslationError
from .fields import field_for, to_json_value
from .model import (
    ALLOWED_LENGTHS,
    LOCATION_TYPES,
    Case,
    Constant,
    Mapping,
    Selector,
    Statement,
    Switch,
    Template,
)

__all__ = ["decode_reference", "resolve_range", "read_selector", "put", "branch_for", "key_matches"]


def resolve_range(sel: Selector, n: int) -> tuple[int, int]:
    """The half-open byte range `sel` reads from an n-byte payload (may be out of bounds)."""
    byte, endbyte, length = sel.byte, sel.endbyte, sel.bytelength
    if endbyte is None:
        return byte, byte + length  # type: ignore[return-value, operator]
    if byte is not None:
        return byte, n + endbyte
    return n + endbyte, n + endbyte + length  # type: ignore[operator]


def read_selector(sel: Selector | Constant, payload: bytes, asset_path: str) -> Any:
    """The JSON value of one selector, or TranslationError naming `asset_path`."""
    if isinstance(sel, Constant):
        return sel.value
    n = len(payload)
    a, b = resolve_range(sel, n)
    if a < 0 or b > n or b < a:
        raise TranslationError(asset_path, f"can't extract [{a}:{b}] from {n} bytes")
    width = b - a
    fld = field_for(sel.type, width, sel.byteorder)
    if fld is None:
        allowed = ALLOWED_LENGTHS[sel.type] or ()
        raise TranslationError(
            asset_path,
            f"can't read {sel.type.value} from {width} bytes [{a}:{b}] (allowed: {', '.join(map(str, allowed))})",
        )
    try:
        return to_json_value(sel.type, fld.parse(payload[a:b]), width)
    except UnicodeDecodeError as e:
        raise TranslationError(asset_path, f"bytes [{a}:{b}] are not valid UTF-8 ({e.reason})") from None


def put(out: dict, path: tuple[str, ...], value: Any) -> None:
    """Set a dotted asset: create objects on the way; a later write wins, and a
    non-object met on the way is replaced by an object."""
    d = out
    for k in path[:-1]:
        nxt = d.get(k)
        if not isinstance(nxt, dict):
            nxt = {}
            d[k] = nxt
        d = nxt
    d[path[-1]] = value


def key_matches(key: Any, case_value: Any) -> bool:
    """Case equality: numbers with numbers, strings with strings.

    A boolean selector value equals no case (cases are numbers or strings, and
    ``true`` is not ``1``); null (a NaN float) equals nothing.
    """
    if key is None or isinstance(key, bool):
        return False
    if isinstance(key, str):
        return isinstance(case_value, str) and key == case_value
    return not isinstance(case_value, str) and key == case_value


def branch_for(sw: Switch, key: Any) -> Case | None:
    """The entry a switch runs for selector value `key`: first equal case, else the default."""
    for case in sw.cases:
        if key_matches(key, case.value):
            return case
    return sw.default


def _run(stmts: tuple[Statement, ...], payload: bytes, out: dict, loc: dict) -> None:
    for st in stmts:
        if isinstance(st, Mapping):
            v = read_selector(st.value, payload, st.asset)
            put(out, st.path, v)
            if st.custom_type is not None and v is not None:
                loc[LOCATION_TYPES[st.custom_type]] = v
        else:
            key = read_selector(st.selector, payload, st.selector_pointer)
            case = branch_for(st, key)
            if case is not None:
                _run(case.do, payload, out, loc)


def decode_reference(template: Template, payload: bytes) -> tuple[dict, dict]:
    """Translate `payload`: (the JSON object, the location values found)."""
    payload = bytes(payload)
    out: dict = {}
    loc: dict = {}
    _run(template.sense, payload, out, loc)
    return out, loc

