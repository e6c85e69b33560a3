"""The encoder: JSON values + template -> a payload that translates back to them.

Used by the device emulator and by round-trip tests.  The contract is simple
and checked: `encode` returns bytes only if decoding them gives exactly
`values` (numbers compare as JSON numbers, ``true`` is not ``1``); otherwise it
raises `NotInvertible` saying why.

How it searches:

1. An *execution path* fixes, for every switch reached, which entry runs
   (a case, the default, or nothing when there is no default).  Paths are
   tried in template order (cases first, then the default), up to a budget.
   A switch listed in ``selectors`` (JSON pointer of the switch statement ->
   selector value) takes only the branch that value selects.
2. On a path the asset writes are replayed as the decoder would do them (a
   later write wins), so the surviving writes must give the shape of
   `values`.  Constants must equal their values; overwritten reads carry no
   information (their bytes are free).
3. Each read becomes an *item*: a byte range and the bytes it must hold
   (built with construct's fields), or, for a switch whose default runs, the
   first selector bytes that equal none of the cases.
4. The payload length follows from ``byte``+``endbyte`` ranges (their width is
   the value's) or is the smallest length covering every range.  Bytes of
   overlapping items must agree; bytes nobody writes are zero.
5. The candidate payload is decoded and compared with `values`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping as MappingABC
from dataclasses import dataclass
from typing import Any

import construct as c

from .compile import CompiledTemplate, compile_template
from .errors import BclError, EncodeError, NotInvertible
from .fields import field_for, to_json_value
from .floats import shortest_float32
from .model import (
    ALLOWED_LENGTHS,
    Case,
    Constant,
    Mapping,
    Selector,
    Statement,
    Switch,
    ValueType,
)
from .reference import branch_for, key_matches, resolve_range

__all__ = ["encode", "same_json", "execution_paths", "replay_writes", "reachable_cases"]

MAX_PATHS = 2000
MAX_LENGTH = 65536  # payloads the encoder may build (UDP datagrams are smaller)
_MAX_LENGTHS_TRIED = 64
_MAX_DEFAULT_KEYS = 4096


class _Fail(Exception):
    """This path/length cannot give the values; the text says why."""


def same_json(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (1 == 1.0), but booleans are not numbers."""
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)) or a.keys() != b.keys():
            return False
        return all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if a is None or b is None:
        return a is None and b is None
    return type(a) is type(b) and a == b


# -- values -> bytes -----------------------------------------------------------

def _value_bytes(sel: Selector, value: Any, width: int, label: str) -> bytes:
    """The `width` bytes that `sel` reads back as `value`, or _Fail."""
    t = sel.type
    if t in (ValueType.INT, ValueType.UINT):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Fail(f"{label}: {value!r} is not an integer (type {t.value})")
        fld = field_for(t, width, sel.byteorder)
        if fld is None:
            raise _Fail(f"{label}: type {t.value} cannot be {width} bytes long")
        try:
            return fld.build(value)
        except (c.ConstructError, OverflowError, ValueError):
            raise _Fail(f"{label}: {value} does not fit in {width} byte{'s' if width != 1 else ''} of type {t.value}") from None
    if t is ValueType.FLOAT:
        if value is None:
            value = math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Fail(f"{label}: {value!r} is not a number (type float)")
        fld = field_for(t, width, sel.byteorder)
        if fld is None:
            raise _Fail(f"{label}: type float cannot be {width} bytes long")
        try:
            raw = fld.build(float(value))
        except (c.ConstructError, OverflowError, ValueError):
            raise _Fail(f"{label}: {value} is out of range for a {width}-byte float") from None
        if width == 4 and math.isfinite(value):
            back = shortest_float32(fld.parse(raw))
            if back != value:
                raise _Fail(f"{label}: {value} is not a 4-byte float (it would read back as {back})")
        return raw
    if t is ValueType.BOOLEAN:
        if not isinstance(value, bool):
            raise _Fail(f"{label}: {value!r} is not true or false (type boolean)")
        if width != 1:
            raise _Fail(f"{label}: a boolean is 1 byte, not {width}")
        return c.Flag.build(value)
    raw = _text_bytes(sel, value, label)
    if len(raw) != width:
        raise _Fail(f"{label}: {len(raw)} bytes do not fill the {width}-byte range of type {t.value}")
    return raw


def _text_bytes(sel: Selector, value: Any, label: str) -> bytes:
    """The bytes of a string (UTF-8) or hex value, whatever the range's width."""
    t = sel.type
    if not isinstance(value, str):
        raise _Fail(f"{label}: {value!r} is not a string (type {t.value})")
    if t is ValueType.STRING:
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Fail(f"{label}: the string has no UTF-8 form") from None
    bad = _Fail(f"{label}: {value!r} is not lower-case hex of whole bytes")
    if value != value.lower():
        raise bad
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise bad from None
    if raw.hex() != value:
        raise bad
    return raw


def _widths(sel: Selector) -> tuple[int, ...] | None:
    """Possible widths of a range: fixed, or by type for byte+endbyte spans (None = any)."""
    if not sel.is_span:
        return (sel.bytelength,)  # type: ignore[return-value]
    return ALLOWED_LENGTHS[sel.type]


@dataclass
class _Item:
    """One read on the path: its selector and what its bytes must say."""

    sel: Selector
    label: str
    kind: str  # "value" (bytes must read `value`), "other" (must equal no case), "free"
    value: Any = None
    switch: Switch | None = None

    def widths(self) -> tuple[int, ...] | None:
        """Widths this item can have; a string/hex value fixes its own."""
        if self.kind == "value":
            if not self.sel.is_span:
                return (self.sel.bytelength,)  # type: ignore[return-value]
            if self.sel.type in (ValueType.STRING, ValueType.HEX):
                return (len(_text_bytes(self.sel, self.value, self.label)),)
            ok = []
            for w in _widths(self.sel) or ():
                try:
                    _value_bytes(self.sel, self.value, w, self.label)
                    ok.append(w)
                except _Fail:
                    pass
            if not ok:
                _value_bytes(self.sel, self.value, (_widths(self.sel) or (1,))[-1], self.label)  # raises the reason
            return tuple(ok)
        return _widths(self.sel)

    def reads_back(self, raw: bytes) -> bool:
        """Whether `raw` reads as this item's value (for bytes other reads already set)."""
        fld = field_for(self.sel.type, len(raw), self.sel.byteorder)
        if fld is None:
            return False
        try:
            return same_json(to_json_value(self.sel.type, fld.parse(raw), len(raw)), self.value)
        except UnicodeDecodeError:
            return False

    def candidates(self, current: list[int | None]) -> Iterator[bytes]:
        """Contents for the range, given the bytes other items already set there."""
        width = len(current)
        free = [i for i, x in enumerate(current) if x is None]
        if self.kind == "value":
            if not free:
                # Other reads set every byte: fine if they happen to read right
                # (a boolean true from 0x05, a NaN with another payload).
                raw = bytes(current)  # type: ignore[arg-type]
                if self.reads_back(raw):
                    yield raw
                return
            yield _value_bytes(self.sel, self.value, width, self.label)
            return
        if self.kind == "free":
            yield bytes(0 if x is None else x for x in current)
            return
        # "other": selector bytes that decode to a key equal to no case; only
        # the bytes no other read set are searched, least significant first.
        assert self.switch is not None
        fld = field_for(self.sel.type, width, self.sel.byteorder)
        if fld is None:
            return
        if self.sel.byteorder == "little":
            free.reverse()  # most significant free byte first
        limit = min(256 ** len(free), _MAX_DEFAULT_KEYS)
        for i in range(limit):
            buf = list(current)
            for pos, d in zip(free, i.to_bytes(len(free), "big")):
                buf[pos] = d
            raw = bytes(buf)  # type: ignore[arg-type]
            try:
                key = to_json_value(self.sel.type, fld.parse(raw), width)
            except UnicodeDecodeError:
                continue
            if not any(key_matches(key, case.value) for case in self.switch.cases):
                yield raw


# -- execution paths -----------------------------------------------------------

@dataclass(frozen=True)
class _Choice:
    switch: Switch
    case: Case | None  # None: no entry runs
    by_default: bool  # the selector must equal none of the cases
    explicit: Any = None
    has_explicit: bool = False

    def describe(self) -> str:
        if self.case is None:
            what = "no case"
        elif self.case.is_default:
            what = "default"
        else:
            what = f"case {self.case.value!r}"
        return f"{what} at {self.switch.pointer}"


_Event = tuple[str, Any]  # ("map", Mapping) | ("switch", _Choice)


def reachable_cases(sw: Switch) -> list[Case]:
    """Cases that can run: the first of equal values, of the selector's kind."""
    sel = sw.selector
    out: list[Case] = []
    for case in sw.cases:
        if isinstance(sel, Selector):
            if sel.type is ValueType.BOOLEAN:
                continue
            if isinstance(case.value, str) != (sel.type in (ValueType.STRING, ValueType.HEX)):
                continue
        if any(key_matches(case.value, prev.value) for prev in out):
            continue
        out.append(case)
    return out


def _choices(sw: Switch, selectors: MappingABC[str, Any]) -> list[_Choice]:
    if sw.pointer in selectors:
        key = selectors[sw.pointer]
        case = branch_for(sw, key)
        return [_Choice(sw, case, case is None or case.is_default, key, True)]
    if isinstance(sw.selector, Constant):
        return [_Choice(sw, branch_for(sw, sw.selector.value), False)]
    out = [_Choice(sw, case, False) for case in reachable_cases(sw)]
    out.append(_Choice(sw, sw.default, True))
    return out


def execution_paths(stmts: tuple[Statement, ...], selectors: MappingABC[str, Any] | None = None) -> Iterator[list[_Event]]:
    """Every execution path of `stmts` (which entry of each switch reached runs), in template
    order: a list of ``("map", Mapping)`` and ``("switch", choice)`` events, where a choice has
    ``switch``, ``case`` (None: no entry runs) and ``by_default`` (the selector equals none of
    the cases).  The encoder searches them; `bcl.firmware` generates code for each."""
    return _paths(stmts, 0, selectors or {})


def _paths(stmts: tuple[Statement, ...], i: int, selectors: MappingABC[str, Any]) -> Iterator[list[_Event]]:
    if i == len(stmts):
        yield []
        return
    st = stmts[i]
    if isinstance(st, Mapping):
        for rest in _paths(stmts, i + 1, selectors):
            yield [("map", st), *rest]
        return
    for choice in _choices(st, selectors):
        inner = choice.case.do if choice.case is not None else ()
        for a in _paths(inner, 0, selectors):
            for b in _paths(stmts, i + 1, selectors):
                yield [("switch", choice), *a, *b]


# -- solving one path --------------------------------------------------------------

_MISSING = object()


def _lookup(values: Any, path: tuple[str, ...]) -> Any:
    d = values
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return _MISSING
        d = d[k]
    return d


def _leaves(d: dict, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, (*prefix, k))
        else:
            yield (*prefix, k)


def replay_writes(path: list[_Event]) -> tuple[dict, list[Mapping], set[int]]:
    """Replay the asset writes of an execution path as the decoder does them (a later write
    wins, an object replaces a value and back): the output's shape (leaves hold the index
    of the write that survives there), the writes in order, and the indexes that survive.
    Also used by the firmware encoder generator (`bcl.firmware`)."""
    shape: dict = {}
    writes: list[Mapping] = []
    for kind, ev in path:
        if kind == "map":
            d = shape
            for k in ev.path[:-1]:
                nxt = d.get(k)
                if not isinstance(nxt, dict):
                    nxt = {}
                    d[k] = nxt
                d = nxt
            d[ev.path[-1]] = len(writes)
            writes.append(ev)
    surviving = {_lookup(shape, leaf) for leaf in _leaves(shape)}
    return shape, writes, surviving


def _items_for(path: list[_Event], values: dict) -> list[_Item]:
    """Replay the writes of a path against `values`; return the reads to place."""
    shape, writes, surviving = replay_writes(path)
    for leaf in _leaves(shape):
        if _lookup(values, leaf) is _MISSING:
            raise _Fail(f"no value for asset {'.'.join(leaf)}")
    for leaf in _leaves(values):
        if _lookup(shape, leaf) is _MISSING or isinstance(_lookup(shape, leaf), dict):
            raise _Fail(f"the values have {'.'.join(leaf)}, which this path does not write")

    items: list[_Item] = []
    for kind, ev in path:
        if kind == "switch":
            ch: _Choice = ev
            sel = ch.switch.selector
            if not isinstance(sel, Selector):
                continue
            label = ch.switch.selector_pointer
            if ch.has_explicit:
                items.append(_Item(sel, label, "value", ch.explicit))
            elif ch.by_default:
                if sel.type is ValueType.BOOLEAN:
                    items.append(_Item(sel, label, "free"))
                else:
                    items.append(_Item(sel, label, "other", switch=ch.switch))
            else:
                items.append(_Item(sel, label, "value", ch.case.value))  # type: ignore[union-attr]
    for idx, m in enumerate(writes):
        if idx not in surviving:
            if isinstance(m.value, Selector):
                items.append(_Item(m.value, m.asset, "free"))
            continue
        v = _lookup(values, m.path)
        if isinstance(m.value, Constant):
            if not same_json(v, m.value.value):
                raise _Fail(f"asset {m.asset} is the constant {m.value.value!r} here, not {v!r}")
        else:
            items.append(_Item(m.value, m.asset, "value", v))
    # Items with one possible content go first, then values with several
    # encodings (booleans, NaN), then the searching ones.
    items.sort(key=_placing_order)
    return items


def _placing_order(it: _Item) -> int:
    if it.kind == "value":
        several = it.sel.type is ValueType.BOOLEAN or (it.sel.type is ValueType.FLOAT and it.value is None)
        return 1 if several else 0
    return 2 if it.kind == "other" else 3


def _lengths(items: list[_Item]) -> list[int]:
    """Payload lengths to try, smallest first."""
    low = 0
    fixed_end = 0  # where reads counted from the start end
    from_end = 0  # how far reads counted from the end reach back
    forced: set[int] = set()
    spans: list[tuple[_Item, tuple[int, ...] | None]] = []
    for it in items:
        sel = it.sel
        if sel.endbyte is None:
            low = max(low, sel.byte + sel.bytelength)  # type: ignore[operator]
            fixed_end = max(fixed_end, sel.byte + sel.bytelength)  # type: ignore[operator]
        elif sel.byte is None:
            low = max(low, -sel.endbyte)
            from_end = max(from_end, -sel.endbyte)
        else:
            low = max(low, sel.byte - sel.endbyte)
            ws = it.widths()
            spans.append((it, ws))
            if it.kind == "value" and ws is not None and len(ws) == 1:
                forced.add(sel.byte + ws[0] - sel.endbyte)
    if len(forced) > 1:
        raise _Fail(f"byte+endbyte ranges need different payload lengths ({', '.join(map(str, sorted(forced)))})")
    if forced:
        (n,) = forced
        if n < low:
            raise _Fail(f"byte+endbyte ranges need a {n}-byte payload, but other reads reach byte {low}")
        return [n]
    # The smallest length first; longer ones help when reads counted from the
    # end would otherwise overlap reads counted from the start.  At
    # fixed_end + from_end they overlap no more.
    cands = set(range(low, min(max(low, fixed_end + from_end), low + _MAX_LENGTHS_TRIED) + 1))
    for it, ws in spans:
        # A range that grows with the payload (string, hex) may need a few bytes before a
        # selector can differ from every case (an empty string equals a case ''), so
        # "other" selectors also try small non-empty widths.
        widths = ws or ((1, 2, 3, 4) if it.kind == "other" else ())
        for w in widths:
            n = it.sel.byte + w - it.sel.endbyte  # type: ignore[operator]
            if n >= low:
                cands.add(n)
    return sorted(cands)[:_MAX_LENGTHS_TRIED]


def _place(items: list[_Item], n: int) -> bytes:
    buf: list[int | None] = [None] * n
    for it in items:
        a, b = resolve_range(it.sel, n)
        if a < 0 or b > n or b < a:
            raise _Fail(f"{it.label}: range [{a}:{b}] does not fit a {n}-byte payload")
        width = b - a
        ws = _widths(it.sel)
        if ws is not None and width not in ws:
            raise _Fail(f"{it.label}: type {it.sel.type.value} cannot be {width} bytes long")
        if it.kind == "free":
            continue
        for raw in it.candidates(buf[a:b]):
            if all(buf[a + i] is None or buf[a + i] == raw[i] for i in range(width)):
                buf[a:b] = list(raw)
                break
        else:
            if it.kind == "other":
                raise _Fail(f"{it.label}: no selector value that equals none of the cases fits")
            raise _Fail(f"{it.label}: its bytes disagree with another read of the same bytes")
    return bytes(0 if x is None else x for x in buf)


def _solve(compiled: CompiledTemplate, path: list[_Event], values: dict, max_length: int) -> bytes:
    items = _items_for(path, values)
    last: _Fail | None = None
    for n in _lengths(items):
        if n > max_length:
            last = _Fail(f"it needs a payload of {n} bytes, more than max_length={max_length}")
            break
        try:
            payload = _place(items, n)
        except _Fail as e:
            last = e
            continue
        try:
            got = compiled.decode(payload)
        except BclError as e:
            last = _Fail(f"the payload does not translate: {e}")
            continue
        if same_json(got, values):
            return payload
        last = _Fail("the bytes translate to different values (overlapping reads disagree)")
    raise last or _Fail("no payload length works")


def encode(
    template: Any,
    values: MappingABC[str, Any],
    *,
    selectors: MappingABC[str, Any] | None = None,
    max_paths: int = MAX_PATHS,
    max_length: int = MAX_LENGTH,
) -> bytes:
    """A payload that `template` translates to exactly `values`.

    `selectors` optionally fixes switch selector values, keyed by the JSON
    pointer of the switch statement (``{"/sense/0": 1}``); other switches take
    the first case (in template order) whose statements give `values`.
    Raises NotInvertible when no payload (within the search budget, at most
    `max_length` bytes) does.
    """
    compiled = compile_template(template)
    if not isinstance(values, MappingABC):
        raise EncodeError(f"values must be a JSON object, not {type(values).__name__}")
    values = _plain(values)
    selectors = dict(selectors or {})
    known = set(_switch_pointers(compiled.template.sense))
    for ptr in selectors:
        if ptr not in known:
            raise EncodeError(f"no switch statement at {ptr!r} (switches: {', '.join(sorted(known)) or 'none'})")
    reasons: list[str] = []
    tried = 0
    for path in _paths(compiled.template.sense, 0, selectors):
        tried += 1
        if tried > max_paths:
            raise NotInvertible(f"gave up after {max_paths} branch combinations; pass selectors= to pick branches")
        try:
            return _solve(compiled, path, values, max_length)
        except _Fail as e:
            where = ", ".join(ev.describe() for kind, ev in path if kind == "switch")
            reasons.append(f"{where}: {e}" if where else str(e))
    shown = reasons[:5]
    more = f" (and {len(reasons) - 5} more)" if len(reasons) > 5 else ""
    raise NotInvertible("no payload translates to these values: " + "; ".join(shown) + more)


def _plain(values: MappingABC[str, Any]) -> dict:
    """Nested mappings as plain dicts (so the comparison is about content)."""
    return {k: _plain(v) if isinstance(v, MappingABC) else v for k, v in values.items()}


def _switch_pointers(stmts: tuple[Statement, ...]) -> Iterator[str]:
    for st in stmts:
        if isinstance(st, Switch):
            yield st.pointer
            for case in (*st.cases, *((st.default,) if st.default else ())):
                yield from _switch_pointers(case.do)
