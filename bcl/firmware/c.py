"""C99 output of the firmware encoder generator: a header and a source, no dynamic memory.

Only identifiers made by `plan.identifier`, integers, hex float literals and ``\\xNN`` escapes
reach the generated text from a template; comments show asset names reduced to safe
characters (no ``*/``, no trigraphs).
"""

from __future__ import annotations

import re

from ..model import ValueType
from .plan import MAX_LENGTH, Field, Guard, Item, PathPlan, Plan, comment_text, identifier

__all__ = ["generate_c", "driver_c"]

_HELPERS = {
    "put_u": """static void put_u(uint8_t *p, uint64_t x, size_t w, int little)
{
    size_t i;
    for (i = 0; i < w; i++) {
        p[little ? i : w - 1 - i] = (uint8_t)(x >> (8 * i));
    }
}
""",
    "fits_i": """static int fits_i(int64_t x, size_t w)
{
    if (w == 8) {
        return 1;
    }
    if (w != 1 && w != 2 && w != 4) {
        return 0;
    }
    return x >= -((int64_t)1 << (8 * w - 1)) && x < ((int64_t)1 << (8 * w - 1));
}
""",
    "fits_u": """static int fits_u(uint64_t x, size_t w)
{
    if (w == 8) {
        return 1;
    }
    if (w != 1 && w != 2 && w != 4) {
        return 0;
    }
    return x < ((uint64_t)1 << (8 * w));
}
""",
    "fits_su": """static int fits_su(int64_t x, size_t w)
{
    return x >= 0 && (w == 8 || ((w == 1 || w == 2 || w == 4) && x < ((int64_t)1 << (8 * w))));
}
""",
    "put_f": """static int put_f(uint8_t *p, double x, size_t w, int little)
{
    if (w == 4) {
        float f;
        uint32_t u;
        if (x - x == 0 && (x > FLT_MAX || x < -FLT_MAX)) {
            return -1; /* finite, but no float holds it */
        }
        f = (float)x;
        memcpy(&u, &f, 4);
        put_u(p, u, 4, little);
        return 0;
    }
    if (w == 8) {
        uint64_t u;
        memcpy(&u, &x, 8);
        put_u(p, u, 8, little);
        return 0;
    }
    return -1;
}
""",
    "utf8_ok": """static int utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k, extra;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= extra) {
            return 0;
        }
        for (k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return 0;
        }
        i += extra + 1;
    }
    return 1;
}
""",
    "place": """/* Copies w bytes to buf[a..]; -1 if bytes an earlier read already set there differ. */
static int place(uint8_t *buf, size_t a, const uint8_t *s, size_t w, size_t *ra, size_t *rb, size_t k)
{
    size_t j;
    if (w == 0) {
        ra[k] = rb[k] = a;
        return 0;
    }
    for (j = 0; j < k; j++) {
        size_t lo = a > ra[j] ? a : ra[j];
        size_t hi = a + w < rb[j] ? a + w : rb[j];
        if (lo < hi && memcmp(buf + lo, s + (lo - a), hi - lo) != 0) {
            return -1;
        }
    }
    memcpy(buf + a, s, w);
    ra[k] = a;
    rb[k] = a + w;
    return 0;
}
""",
}




def c_type(fld: Field) -> str:
    if fld.family == "int":
        return f"{'int' if fld.signed else 'uint'}{8 * fld.width}_t"  # type: ignore[operator]
    if fld.family == "float":
        return "float" if fld.width == 4 else "double"
    if fld.family == "bool":
        return "bool"
    return "char" if fld.family == "string" else "uint8_t"


def _member(fld: Field) -> list[str]:
    kinds = ", ".join(sorted({s.type.value for s in fld.selectors}))
    what = f"switch {fld.origin}" if fld.is_selector else f"asset {fld.origin}"
    note = f"/* {comment_text(what)} ({comment_text(kinds)}) */"
    if fld.family in ("string", "hex"):
        if fld.width is not None:
            return [f"    {c_type(fld)} {fld.name}[{fld.width}]; {note}"]
        return [f"    const {c_type(fld)} *{fld.name}; {note}", f"    size_t {fld.name}_len;"]
    return [f"    {c_type(fld)} {fld.name}; {note}"]


def _int_literal(value: int, signed: bool) -> str:
    if signed:
        if value == -(1 << 63):
            return "(-INT64_C(9223372036854775807) - 1)"
        return f"INT64_C({value})"
    return f"UINT64_C({value})"


def _bytes_literal(raw: bytes) -> str:
    return " ".join(f'"\\x{b:02x}"' for b in raw) if raw else '""'


def _equals(fld: Field, literal: object) -> str:
    ref = f"v->{fld.name}"
    if fld.family == "int":
        cast = "int64_t" if fld.signed else "uint64_t"
        return f"(({cast}){ref} == {_int_literal(literal, fld.signed)})"  # type: ignore[arg-type]
    if fld.family == "float":
        hex_literal = float.hex(literal)  # type: ignore[arg-type]
        return f"({ref} == ({c_type(fld)}){hex_literal})"
    raw: bytes = literal  # type: ignore[assignment]
    if fld.width is not None:
        return f"(memcmp({ref}, {_bytes_literal(raw)}, {len(raw)}) == 0)" if raw else "1"
    if not raw:
        return f"({ref}_len == 0)"
    return f"({ref}_len == {len(raw)} && memcmp({ref}, {_bytes_literal(raw)}, {len(raw)}) == 0)"


def _guard(g: Guard) -> str:
    if g.case is not None:
        return _equals(g.field, g.case)
    parts = [f"!{_equals(g.field, lit)}" for lit in g.others]
    return " && ".join(parts) if parts else "1"


class _Emitter:
    def __init__(self, plan: Plan, prefix: str):
        self.plan = plan
        self.prefix = prefix
        self.upper = prefix.upper()
        self.helpers: set[str] = set()
        self.lines: list[str] = []

    def err(self, what: str) -> str:
        return f"return {self.upper}_ERR_{what};"

    def emit(self, text: str, depth: int = 2) -> None:
        self.lines.append("    " * depth + text)


    # one read ------------------------------------------------------------------------------
    def item(self, it: Item, path: PathPlan, k: int) -> None:
        fld, sel = it.field, it.sel
        ref = f"v->{fld.name}"
        a, w = path.position(it)
        little = "1" if sel.byteorder == "little" else "0"
        self.emit(f"/* {comment_text(it.label)}: {sel.type.value} */")
        self.emit(f"a = {a};")
        self.emit(f"w = {w};")
        static_w = int(w) if w.isdigit() else None
        if fld.family == "int":
            self.helpers.add("put_u")
            check = self.int_check(fld, sel, static_w)
            if check:
                self.helpers.add(check)
                cast = "int64_t" if fld.signed else "uint64_t"
                self.emit(f"if (!{check}(({cast}){ref}, w)) {{ {self.err('RANGE')} }}")
            self.emit(f"put_u(t, (uint64_t){ref}, w, {little});")
            src = "t"
        elif fld.family == "float":
            self.helpers.update(("put_u", "put_f"))
            self.emit(f"if (put_f(t, (double){ref}, w, {little}) != 0) {{ {self.err('RANGE')} }}")
            src = "t"
        elif fld.family == "bool":
            if static_w != 1:
                self.emit(f"if (w != 1) {{ {self.err('RANGE')} }}")
            self.emit(f"t[0] = {ref} ? 1 : 0;")
            src = "t"
        else:
            if fld.width is None:
                if it is not path.length_item:
                    self.emit(f"if ({ref}_len != w) {{ {self.err('RANGE')} }}")
            elif static_w != fld.width:
                self.emit(f"if (w != {fld.width}) {{ {self.err('RANGE')} }}")
            src = f"(const uint8_t *){ref}"
            if fld.family == "string":
                self.helpers.add("utf8_ok")
                self.emit(f"if (!utf8_ok({src}, w)) {{ {self.err('RANGE')} }}")
        self.helpers.add("place")
        self.emit(f"if (place(buf, a, {src}, w, ra, rb, {k}) != 0) {{ {self.err('CONFLICT')} }}")

    @staticmethod
    def int_check(fld: Field, sel, static_w: int | None) -> str | None:  # noqa: ANN001
        pos_signed = sel.type is ValueType.INT
        if fld.signed and not pos_signed:
            return "fits_su"
        if static_w is not None and static_w >= fld.width:  # type: ignore[operator]
            return None
        return "fits_i" if fld.signed else "fits_u"

    def free_check(self, it: Item, path: PathPlan) -> None:
        """A replaced read still has to be readable: its width must suit its type."""
        check = path.width_to_check(it)
        if check is not None:
            w, widths = check
            cond = " && ".join(f"({w}) != {x}" for x in widths)
            self.emit(f"if ({cond}) {{ {self.err('RANGE')} }} /* {comment_text(it.label)} is replaced, but read */")

    # one path ---------------------------------------------------------------------------------
    def path(self, path: PathPlan) -> None:
        cond = " && ".join(_guard(g) for g in path.guards) or "1"
        self.lines.append(f"    if ({cond}) {{ /* {comment_text(path.description)} */")
        if path.length is not None:
            self.emit(f"n = {path.length};")
        else:
            lead = path.length_item
            assert lead is not None and lead.sel.byte is not None and lead.sel.endbyte is not None
            ref = f"v->{lead.field.name}"
            length = f"{ref}_len" if lead.field.width is None else str(lead.field.width)
            if lead.field.width is None:
                self.emit(f"if ({length} > {MAX_LENGTH}) {{ {self.err('RANGE')} }}")
            self.emit(f"n = {lead.sel.byte - lead.sel.endbyte} + {length};")
            low = f"n < {path.n_min} || " if path.n_min > 0 else ""  # n is unsigned: "n < 0" would not build
            self.emit(f"if ({low}n > {MAX_LENGTH}) {{ {self.err('RANGE')} }}")
        self.emit(f"if (n > size) {{ {self.err('BUFFER')} }}")
        self.emit("memset(buf, 0, n);")
        for it in path.items:
            if it.free:
                self.free_check(it, path)
        for k, it in enumerate(path.written):
            self.item(it, path, k)
        self.emit("return (int)n;")
        self.lines.append("    }")

    def function(self) -> list[str]:
        paths = self.plan.paths
        most = max((len(p.written) for p in paths), default=0)
        for path in paths:
            self.path(path)
        text = "\n".join(self.lines)
        decls = []
        if "t[0]" in text or ", t, " in text or "(t, " in text:
            decls.append("    uint8_t t[8];")
        if most:
            decls += [f"    size_t ra[{most}], rb[{most}];", "    size_t a, w;"]
        if paths:
            decls.append("    size_t n;")
        return [f"int {self.prefix}_encode(const {self.prefix}_values_t *v, uint8_t *buf, size_t size)", "{",
                *decls, *self.lines,
                "    (void)v;", "    (void)buf;", "    (void)size;",
                f"    return {self.upper}_ERR_RANGE; /* no entry runs for these selector values */", "}"]


def generate_c(plan: Plan, prefix: str) -> dict[str, str]:
    """``{"<prefix>.h": ..., "<prefix>.c": ...}``: the header and the source."""
    prefix = identifier(prefix)
    upper = prefix.upper()
    emitter = _Emitter(plan, prefix)
    function = emitter.function()
    title = comment_text(plan.name or prefix)
    head = [
        f"/* {prefix}.h: encoder of the Energy Saver template {title}.",
        " * Generated by `nce-gateway template codegen --lang c`; do not edit, generate again.",
        " * Fill a values struct, call the encode function, send the bytes: the gateway's template",
        " * translates them back to these values. */",
        f"#ifndef {upper}_H",
        f"#define {upper}_H",
        "",
        "#include <stdbool.h>",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        f"#define {upper}_ERR_BUFFER (-1)   /* buf is shorter than the payload */",
        f"#define {upper}_ERR_RANGE (-2)    /* a value does not fit its bytes, or a length or UTF-8 is wrong */",
        f"#define {upper}_ERR_CONFLICT (-3) /* two reads share bytes and their values disagree */",
    ]
    if plan.max_length is not None:
        head.append(f"#define {upper}_MAX_LENGTH {plan.max_length} /* the longest payload encode writes */")
    head += ["", "typedef struct {"]
    for fld in plan.fields:
        head += _member(fld)
    if not plan.fields:
        head.append("    char unused; /* the template reads no value */")
    head += [
        f"}} {prefix}_values_t;",
        "",
        "/* Writes the payload of `v` to buf[0..size); returns its length, or a negative",
        f" * {upper}_ERR_... code (nothing useful is in buf then). */",
        f"int {prefix}_encode(const {prefix}_values_t *v, uint8_t *buf, size_t size);",
        "",
        f"#endif /* {upper}_H */",
        "",
    ]
    helpers = emitter.helpers
    source = [f"/* {prefix}.c: generated by `nce-gateway template codegen --lang c`; do not edit. */",
              f'#include "{prefix}.h"', ""]
    if "put_f" in helpers:
        source.insert(2, "#include <float.h>")
    source.insert(2, "#include <string.h>")
    if "put_f" in helpers:
        source += [f"typedef char {prefix}_needs_ieee754_float[(sizeof(float) == 4 && sizeof(double) == 8) ? 1 : -1];", ""]
    for name in ("put_u", "fits_i", "fits_u", "fits_su", "put_f", "utf8_ok", "place"):
        if name in helpers:
            source += [_HELPERS[name]]
    source += function
    source.append("")
    return {f"{prefix}.h": "\n".join(head), f"{prefix}.c": "\n".join(source)}


UNHEX = ["",
         "static size_t unhex(const char *tok, uint8_t *dst)",
         "{",
         "    size_t n = 0;",
         "    unsigned int byte;",
         "    if (strcmp(tok, \"-\") == 0) {",
         "        return 0;",
         "    }",
         "    while (tok[2 * n] && sscanf(tok + 2 * n, \"%2x\", &byte) == 1) {",
         "        dst[n++] = (uint8_t)byte;",
         "    }",
         "    return n;",
         "}"]


def driver_c(plan: Plan, prefix: str) -> str:
    """A test program: each stdin line holds the fields (space separated: integers in decimal,
    floats as C reads them, booleans 0/1, strings and hex as hex bytes, ``-`` for none); it
    prints the payload as hex, or ``error N``, per line."""
    prefix = identifier(prefix)
    lines = [f'#include "{prefix}.h"', "#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>", "",
             "static uint8_t out[70000];", "static char line[300000];", ""]
    for i, fld in enumerate(plan.fields):
        if fld.family in ("string", "hex"):
            lines.append(f"static uint8_t data{i}[70000];")
    if any(fld.family in ("string", "hex") for fld in plan.fields):
        lines += UNHEX
    lines += ["",
              "int main(void)",
              "{",
              "    while (fgets(line, sizeof(line), stdin)) {",
              f"        {prefix}_values_t v;",
              "        char *tok;",
              "        int r, i;",
              "        memset(&v, 0, sizeof(v));",
              "        tok = strtok(line, \" \\n\");",
              "        (void)tok;"]
    for i, fld in enumerate(plan.fields):
        lines.append("        if (!tok) { return 2; }")
        ref = f"v.{fld.name}"
        if fld.family == "int":
            conv = "strtoll" if fld.signed else "strtoull"
            lines.append(f"        {ref} = ({c_type(fld)}){conv}(tok, NULL, 10);")
        elif fld.family == "float":
            lines.append(f"        {ref} = ({c_type(fld)})strtod(tok, NULL);")
        elif fld.family == "bool":
            lines.append(f"        {ref} = tok[0] == '1';")
        elif fld.width is not None:
            lines.append(f"        if (unhex(tok, data{i}) != {fld.width}) {{ return 3; }}")
            lines.append(f"        memcpy({ref}, data{i}, {fld.width});")
        else:
            lines.append(f"        {ref}_len = unhex(tok, data{i});")
            lines.append(f"        {ref} = ({'const char *' if fld.family == 'string' else 'const uint8_t *'})data{i};")
        lines.append("        tok = strtok(NULL, \" \\n\");")
    lines += [f"        r = {prefix}_encode(&v, out, sizeof(out));",
              "        if (r < 0) {",
              "            printf(\"error %d\\n\", r);",
              "        } else {",
              "            for (i = 0; i < r; i++) {",
              "                printf(\"%02x\", out[i]);",
              "            }",
              "            printf(\"\\n\");",
              "        }",
              "        fflush(stdout);",
              "    }",
              "    return 0;",
              "}",
              ""]
    return "\n".join(lines)
