"""The fast decoder: one generated Python function per template.

Why generate code: construct's own compiled parsers (``Struct.compile()``)
still read field by field through an ``io.BytesIO`` and build a ``Container``
per struct; measured on the SDK blueprint payload they reach about a sixth of
a hand-written ``struct.unpack`` decoder (docs/bcl.md).  Here each statement
list of the template becomes straight-line code that

- checks once that the payload is long enough for all its fixed reads,
- unpacks all its numeric fields with as few ``struct.Struct.unpack_from`` calls
  as possible (the format codes come from construct's fields, `bcl.fields`),
- builds the output as one nested dict literal where it can,
- dispatches a switch with one dict lookup.

The generated code only handles payloads that translate.  Whenever anything
could go wrong (payload too short, a range that does not fit, invalid UTF-8)
it raises ``_Slow`` and the caller runs the reference decoder, which then
raises the exact 1NCE error.  So errors are defined in one place
(`bcl.reference`), and the property tests check both decoders agree.

No text from the template reaches the generated source except through
``repr`` of plain ``str`` and ``int`` values (base-class ``__repr__``);
everything else is bound as a name in the function's namespace.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from typing import Any

from .fields import format_code
from .floats import finite_or_none, shortest_float32
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
    ValueType,
)
from .reference import branch_for, put

__all__ = ["Slow", "generate", "GeneratedDecoder"]

_ORDER_CHAR = {"big": ">", "little": "<"}
INLINE_CASES = 4  # switches with more distinct cases dispatch through a dict
_NUMERIC = (ValueType.INT, ValueType.UINT, ValueType.FLOAT, ValueType.BOOLEAN)


class Slow(Exception):
    """Internal: the fast path cannot translate this payload; use the reference."""


def _lit_str(s: str) -> str:
    return str.__repr__(s)


def _lit_int(i: int) -> str:
    return int.__repr__(i)


def _nop(p: bytes, n: int, out: dict, loc: Any = None) -> dict:
    return out


class GeneratedDecoder:
    """The generated function and its source (kept for debugging).

    `func(payload)` returns the JSON object, or ``(object, locations)`` when
    `with_locations` (the template has custom_type statements).
    """

    def __init__(self, func: Callable[[bytes], Any], source: str, with_locations: bool):
        self.func = func
        self.source = source
        self.with_locations = with_locations


def _all_paths(stmts: tuple[Statement, ...], acc: list[tuple[str, ...]]) -> None:
    for st in stmts:
        if isinstance(st, Mapping):
            acc.append(st.path)
        else:
            for case in (*st.cases, *((st.default,) if st.default else ())):
                _all_paths(case.do, acc)


def _conflict_free(template: Template) -> bool:
    """True when no asset path is a strict prefix of another anywhere in the
    template: then every intermediate object, once created, stays an object,
    and writes can use cached parent dicts and literals."""
    paths: list[tuple[str, ...]] = []
    _all_paths(template.sense, paths)
    full = set(paths)
    return not any(p[:i] in full for p in full for i in range(1, len(p)))


def _has_locations(stmts: tuple[Statement, ...]) -> bool:
    for st in stmts:
        if isinstance(st, Mapping):
            if st.custom_type is not None:
                return True
        else:
            for case in (*st.cases, *((st.default,) if st.default else ())):
                if _has_locations(case.do):
                    return True
    return False


class _Read:
    """One selector read inside a block."""

    __slots__ = ("sel", "var")

    def __init__(self, sel: Selector, var: str):
        self.sel = sel
        self.var = var


class _Gen:
    def __init__(self, template: Template):
        self.template = template
        self.ns: dict[str, Any] = {
            "_Slow": Slow,
            "f32": shortest_float32,
            "f64": finite_or_none,
            "put": put,
            "_nop": _nop,
        }
        self.funcs: list[str] = []
        self.dispatch: list[tuple[str, dict[Any, str]]] = []
        self.ids = itertools.count()
        self.conflict_free = _conflict_free(template)
        self.has_loc = _has_locations(template.sense)
        self.args = "p, n, out, loc" if self.has_loc else "p, n, out"

    def uid(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids)}"

    def bind(self, prefix: str, value: Any) -> str:
        name = self.uid(prefix)
        self.ns[name] = value
        return name

    # -- reads ------------------------------------------------------------
    def emit_reads(self, reads: list[_Read], body: list[str]) -> dict[str, str]:
        """Emit code that reads every selector of a block; return var -> value expression."""
        exprs: dict[str, str] = {}
        fixed = [r for r in reads if r.sel.is_fixed]
        need = max((r.sel.byte + r.sel.bytelength for r in fixed), default=0)  # type: ignore[operator]
        if need > 0:
            body.append(f"if n < {_lit_int(need)}: raise _Slow")
        numeric = [r for r in fixed if r.sel.type in _NUMERIC]
        self.emit_groups(numeric, body)
        for r in fixed:
            sel = r.sel
            if sel.type in _NUMERIC:
                exprs[r.var] = self.convert(sel, r.var, body)
            else:
                a = sel.byte
                b = a + sel.bytelength  # type: ignore[operator]
                exprs[r.var] = self.bytes_expr(sel.type, f"p[{_lit_int(a)}:{_lit_int(b)}]")  # type: ignore[arg-type]
        for r in reads:
            if not r.sel.is_fixed:
                exprs[r.var] = self.emit_dynamic(r, body)
        for r in reads:
            if r.sel.type is ValueType.STRING:
                # Decode now: invalid UTF-8 is an error even if a later write
                # overwrites this value.
                body.append(f"{r.var} = {exprs[r.var]}")
                exprs[r.var] = r.var
        return exprs

    def bytes_expr(self, vtype: ValueType, slice_expr: str) -> str:
        return f"{slice_expr}.decode()" if vtype is ValueType.STRING else f"{slice_expr}.hex()"

    def convert(self, sel: Selector, var: str, body: list[str]) -> str:
        if sel.type is ValueType.FLOAT:
            fn = "f32" if sel.bytelength == 4 else "f64"
            body.append(f"{var} = {fn}({var})")
        return var

    def emit_groups(self, reads: list[_Read], body: list[str]) -> None:
        """Unpack fixed numeric fields with few ``unpack_from`` calls: fields of one
        byte order that do not overlap share one struct format (gaps as pad bytes)."""
        if not reads:
            return
        multi = [r.sel.byteorder for r in reads if r.sel.bytelength != 1]
        default_order = "little" if multi.count("little") > multi.count("big") else "big"
        groups: list[tuple[str, list[_Read]]] = []
        for r in sorted(reads, key=lambda r: r.sel.byte):  # type: ignore[arg-type, return-value]
            order = r.sel.byteorder if r.sel.bytelength != 1 else default_order
            for g_order, members in groups:
                last = members[-1].sel
                if g_order == order and last.byte + last.bytelength <= r.sel.byte:  # type: ignore[operator]
                    members.append(r)
                    break
            else:
                groups.append((order, [r]))
        for order, members in groups:
            fmt = [_ORDER_CHAR[order]]
            pos = members[0].sel.byte
            for r in members:
                gap = r.sel.byte - pos  # type: ignore[operator]
                if gap:
                    fmt.append(f"{gap}x")
                fmt.append(format_code(r.sel.type, r.sel.bytelength))  # type: ignore[arg-type]
                pos = r.sel.byte + r.sel.bytelength  # type: ignore[operator]
            start = _lit_int(members[0].sel.byte)  # type: ignore[arg-type]
            if len(members) <= 3 and all(r.sel.bytelength == 1 for r in members):
                # Single bytes: indexing beats unpack_from.
                for r in members:
                    at = _lit_int(r.sel.byte)  # type: ignore[arg-type]
                    if r.sel.type is ValueType.UINT:
                        body.append(f"{r.var} = p[{at}]")
                    elif r.sel.type is ValueType.INT:
                        body.append(f"{r.var} = (p[{at}] ^ 128) - 128")
                    else:
                        body.append(f"{r.var} = p[{at}] != 0")
                continue
            sname = self.bind("S", struct.Struct("".join(fmt)))
            if len(members) == 1:
                body.append(f"{members[0].var} = {sname}.unpack_from(p, {start})[0]")
            else:
                targets = ", ".join(r.var for r in members)
                body.append(f"{targets} = {sname}.unpack_from(p, {start})")

    def emit_dynamic(self, r: _Read, body: list[str]) -> str:
        sel, v = r.sel, r.var
        a, b = f"{v}a", f"{v}b"
        if sel.byte is not None:  # [byte, n + endbyte)
            body.append(f"{a} = {_lit_int(sel.byte)}")
            body.append(f"{b} = n + {_lit_int(sel.endbyte)}")  # type: ignore[arg-type]
            body.append(f"if {b} < {a}: raise _Slow")
            if sel.type in (ValueType.STRING, ValueType.HEX):
                return self.bytes_expr(sel.type, f"p[{a}:{b}]")
            widths = ALLOWED_LENGTHS[sel.type] or ()
            table = {w: struct.Struct(_ORDER_CHAR[sel.byteorder] + format_code(sel.type, w)) for w in widths}
            tname = self.bind("W", table)
            body.append(f"{v}s = {tname}.get({b} - {a})")
            body.append(f"if {v}s is None: raise _Slow")
            body.append(f"{v} = {v}s.unpack_from(p, {a})[0]")
            if sel.type is ValueType.FLOAT:
                body.append(f"{v} = f32({v}) if {b} - {a} == 4 else f64({v})")
            return v
        # endbyte only: [n + endbyte, n + endbyte + bytelength); validation keeps the end <= n
        body.append(f"{a} = n + {_lit_int(sel.endbyte)}")  # type: ignore[arg-type]
        body.append(f"if {a} < 0: raise _Slow")
        if sel.type in (ValueType.STRING, ValueType.HEX):
            return self.bytes_expr(sel.type, f"p[{a}:{a} + {_lit_int(sel.bytelength)}]")  # type: ignore[arg-type]
        sname = self.bind(
            "S", struct.Struct(_ORDER_CHAR[sel.byteorder] + format_code(sel.type, sel.bytelength))  # type: ignore[arg-type]
        )
        body.append(f"{v} = {sname}.unpack_from(p, {a})[0]")
        return self.convert(sel, v, body)

    # -- blocks -----------------------------------------------------------
    def block(self, stmts: tuple[Statement, ...], known_empty: bool, body: list[str]) -> None:
        """Emit the code of one statement list into `body` (which ends with `out` set)."""
        reads: list[_Read] = []
        read_of: dict[int, str] = {}
        for i, st in enumerate(stmts):
            sel = st.value if isinstance(st, Mapping) else st.selector
            if isinstance(sel, Selector):
                var = self.uid("v")
                reads.append(_Read(sel, var))
                read_of[i] = var
        exprs = self.emit_reads(reads, body)

        pending: list[tuple[tuple[str, ...], str]] = []
        for i, st in enumerate(stmts):
            if isinstance(st, Mapping):
                if isinstance(st.value, Constant):
                    expr = _lit_str(st.value.value)
                else:
                    expr = exprs[read_of[i]]
                if st.custom_type is not None and self.has_loc:
                    if isinstance(st.value, Selector) and not expr.isidentifier():
                        tmp = self.uid("t")
                        body.append(f"{tmp} = {expr}")
                        expr = tmp
                    key = _lit_str(LOCATION_TYPES[st.custom_type])
                    body.append(f"if {expr} is not None: loc[{key}] = {expr}")
                pending.append((st.path, expr))
            else:
                known_empty = self.flush(pending, known_empty, body)
                pending = []
                self.switch(st, exprs.get(read_of.get(i, ""), None), known_empty, body)
                known_empty = False
        self.flush(pending, known_empty, body)

    def flush(self, writes: list[tuple[tuple[str, ...], str]], known_empty: bool, body: list[str]) -> bool:
        """Emit the output writes of a run of mappings; return whether `out` is still empty."""
        if not writes:
            return known_empty
        if not self.conflict_free:
            for path, expr in writes:
                if len(path) == 1:
                    body.append(f"out[{_lit_str(path[0])}] = {expr}")
                else:
                    body.append(f"put(out, {self.bind('P', path)}, {expr})")
            return False
        if known_empty:
            tree: dict = {}
            for path, expr in writes:
                node = tree
                for k in path[:-1]:
                    node = node.setdefault(k, {})
                node[path[-1]] = expr
            body.append(f"out = {self._literal(tree)}")
            return False
        parents: dict[tuple[str, ...], str] = {(): "out"}
        for path, expr in writes:
            for depth in range(1, len(path)):
                prefix = path[:depth]
                if prefix not in parents:
                    var = self.uid("d")
                    up = parents[path[: depth - 1]]
                    k = _lit_str(path[depth - 1])
                    body.append(f"{var} = {up}.get({k})")
                    body.append(f"if {var} is None: {var} = {up}[{k}] = {{}}")
                    parents[prefix] = var
            body.append(f"{parents[path[:-1]]}[{_lit_str(path[-1])}] = {expr}")
        return False

    def _literal(self, tree: dict) -> str:
        items = []
        for k, v in tree.items():
            items.append(f"{_lit_str(k)}: {self._literal(v) if isinstance(v, dict) else v}")
        return "{" + ", ".join(items) + "}"

    def literal(self, value: Any) -> str:
        """Source text of a case value (validated: str, int or finite float)."""
        if isinstance(value, str):
            return _lit_str(value)
        if isinstance(value, int):
            return _lit_int(value)
        return float.__repr__(float(value))

    def switch(self, sw: Switch, key_expr: str | None, known_empty: bool, body: list[str]) -> None:
        if isinstance(sw.selector, Constant):
            case = branch_for(sw, sw.selector.value)
            if case is not None:
                self.block(case.do, known_empty, body)
            return
        if key_expr is not None and not key_expr.isidentifier():
            # Evaluate the selector even if no case can match: a string that is
            # not UTF-8 is an error whichever branch runs.
            key = self.uid("k")
            body.append(f"{key} = {key_expr}")
            key_expr = key
        want_str = sw.selector.type in (ValueType.STRING, ValueType.HEX)
        table: dict[Any, Case] = {}
        if sw.selector.type is not ValueType.BOOLEAN:  # a boolean equals no case
            for case in sw.cases:
                if isinstance(case.value, str) != want_str:
                    continue  # numbers never equal strings
                if case.value not in table:  # the first equal case wins
                    table[case.value] = case
        if not table:
            if sw.default is not None:
                self.block(sw.default.do, known_empty, body)
            return
        if len(table) <= INLINE_CASES:
            # A short if/elif chain, branches inline: no call, no dict lookup.
            # (A NaN float reads as None, and None == number is False.)
            for i, (value, case) in enumerate(table.items()):
                body.append(f"{'if' if i == 0 else 'elif'} {key_expr} == {self.literal(value)}:")
                self.indented(case.do, known_empty, body)
            if sw.default is not None:
                body.append("else:")
                self.indented(sw.default.do, known_empty, body)
            return
        default = self.branch(sw.default, known_empty) if sw.default is not None else "_nop"
        dname = self.uid("D")
        self.dispatch.append((dname, {v: self.branch(c, known_empty) for v, c in table.items()}))
        body.append(f"out = {dname}.get({key_expr}, {default})({self.args})")

    def indented(self, stmts: tuple[Statement, ...], known_empty: bool, body: list[str]) -> None:
        sub: list[str] = []
        self.block(stmts, known_empty, sub)
        body.extend(f"    {line}" for line in (sub or ["pass"]))

    def branch(self, case: Case, known_empty: bool) -> str:
        name = self.uid("_b")
        body: list[str] = []
        self.block(case.do, known_empty, body)
        body.append("return out")
        self.funcs.append(f"def {name}({self.args}):\n" + "".join(f"    {line}\n" for line in body))
        return name

    def generate(self) -> GeneratedDecoder:
        body = ["n = len(p)", "out = {}"]
        if self.has_loc:
            body.append("loc = {}")
        self.block(self.template.sense, True, body)
        body.append("return out, loc" if self.has_loc else "return out")
        main = "def decode(p):\n" + "".join(f"    {line}\n" for line in body)
        source = "\n".join([*self.funcs, main])
        code = compile(source, "<bcl generated decoder>", "exec")
        exec(code, self.ns)  # noqa: S102 - source built only from validated ints and repr() of str
        for dname, table in self.dispatch:
            self.ns[dname] = {value: self.ns[fname] for value, fname in table.items()}
        return GeneratedDecoder(self.ns["decode"], source, self.has_loc)


def generate(template: Template) -> GeneratedDecoder:
    """Generate the fast decoder of a validated template."""
    return _Gen(template).generate()
