"""Coverage-guided fuzzing of the BCL validator, decoders and encoder (atheris).

    python -m fuzz.bcl_fuzz fuzz-corpus -runs=200000

Any exception other than BclError (TemplateError, TranslationError,
NotInvertible...) is a finding, and so is any disagreement between the
generated decoder and the reference decoder, or an encoded payload that does
not decode to the values it was made from.

Each input's first byte picks a mode:
- 0: JSON text -- template text, a NUL byte, then the payload;
- 1: grammar -- the bytes steer a small template grammar (mostly valid
  templates, sometimes with out-of-range numbers), the rest is the payload;
- 2: as 1, then encode the decoded values and decode them again.

An empty corpus directory given on the command line is seeded with the
worked examples of ../shared/reference/bcl-vectors.json (when present).
`check` is plain Python so tests can replay findings without atheris.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

TYPES = ("int", "uint", "float", "boolean", "string", "hex")
ASSETS = ("a", "b", "a.b", "a.c", "gps.lat", "x.y.z", "t")
CASES: tuple[Any, ...] = (0, 1, 2, -1, 255, 0.5, 1.0, "a", "01", "", "x")


class _Bytes:
    """A minimal FuzzedDataProvider in Python (so `check` runs without atheris)."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def pick(self, seq: tuple | list) -> Any:
        return seq[self.byte() % len(seq)]

    def int_in(self, lo: int, hi: int) -> int:
        return lo + self.byte() % (hi - lo + 1)

    def rest(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out


def _selector(g: _Bytes) -> Any:
    if g.byte() % 6 == 0:
        return g.pick(("a", "x", "", "é"))
    sel: dict[str, Any] = {"type": g.pick(TYPES)}
    form = g.byte() % 4
    wild = g.byte() % 16 == 0  # sometimes out-of-range numbers: validator paths
    if form in (0, 1):
        sel["byte"] = g.int_in(-1, 12) if wild else g.int_in(0, 12)
        if g.byte() % 3:
            sel["bytelength"] = g.int_in(-1, 9) if wild else g.pick((1, 2, 4, 8, 3, 5))
    elif form == 2:
        sel["byte"] = g.int_in(0, 12)
        sel["endbyte"] = g.int_in(-6, 1 if wild else 0)
    else:
        sel["endbyte"] = g.int_in(-9, 0)
        if g.byte() % 3:
            sel["bytelength"] = g.pick((1, 2, 4, 8))
    if g.byte() % 3 == 0:
        sel["byteorder"] = g.pick(("big", "little", "middle") if wild else ("big", "little"))
    return sel


def _statements(g: _Bytes, depth: int) -> list:
    out: list = []
    for _ in range(g.int_in(0, 4)):
        if depth < 3 and g.byte() % 4 == 0:
            entries: list = []
            for _ in range(g.int_in(0, 3)):
                entries.append({"case": g.pick(CASES), "do": _statements(g, depth + 1)})
            if g.byte() % 2 or not entries:
                entries.insert(g.int_in(0, len(entries)), {"default": True, "do": _statements(g, depth + 1)})
            out.append({"switch": _selector(g), "on": entries})
        else:
            m: dict[str, Any] = {"asset": g.pick(ASSETS), "value": _selector(g)}
            if g.byte() % 8 == 0:
                m["custom_type"] = g.pick(("location_lat", "location_long"))
            out.append(m)
    return out


def _decode_both(compiled: Any, payload: bytes) -> tuple[str, Any]:
    from bcl import BclError, json_text

    def run(fn: Any) -> tuple[str, Any]:
        try:
            return "ok", fn(payload)
        except BclError as e:
            return type(e).__name__, str(e)

    fast, ref = run(compiled.decode), run(compiled.decode_reference)
    if fast != ref:
        raise AssertionError(f"fast and reference decoders disagree: {fast!r} != {ref!r}")
    if fast[0] == "ok":
        json.dumps(fast[1], allow_nan=False)
        json_text(fast[1]).encode("utf-8")  # what the gateway sends must exist as UTF-8
    return fast


def check(data: bytes) -> None:
    """One fuzz input; raises on a finding, returns otherwise."""
    from bcl import NotInvertible, TemplateError, compile_template, encode, same_json

    if not data:
        return
    mode = data[0] % 3
    if mode == 0:
        text, _, payload = data[1:].partition(b"\x00")
        try:
            compiled = compile_template(text)
        except TemplateError:
            return
        _decode_both(compiled, payload)
        return
    g = _Bytes(data[1:])
    template = {"sense": _statements(g, 0)}
    payload = g.rest()
    try:
        compiled = compile_template(template)
    except TemplateError:
        return
    status, values = _decode_both(compiled, payload)
    if mode == 2 and status == "ok":
        try:
            encoded = encode(compiled, values, max_paths=64)
        except NotInvertible:
            # The decoded payload proves a solution exists; the encoder's search
            # is bounded and heuristic, so a refusal is allowed, a wrong answer is not.
            return
        again = compiled.decode(encoded)
        if not same_json(again, values):
            raise AssertionError(f"encode gave {encoded.hex()} which decodes to {again!r}, not {values!r}")


def vectors_path() -> Path:
    """../shared/reference/bcl-vectors.json next to the repository, or under $NCE_SHARED."""
    vectors = Path(__file__).resolve().parents[2] / "shared/reference/bcl-vectors.json"
    if not vectors.exists() and os.environ.get("NCE_SHARED"):
        vectors = Path(os.environ["NCE_SHARED"]) / "reference/bcl-vectors.json"
    return vectors


def _seed(corpus: Path) -> None:
    vectors = vectors_path()
    if not vectors.exists():
        return
    for i, vec in enumerate(json.loads(vectors.read_text(encoding="utf-8"))["vectors"]):
        text = json.dumps(vec["template"], separators=(",", ":")).encode()
        (corpus / f"seed-{i:02d}").write_bytes(b"\x00" + text + b"\x00" + bytes.fromhex(vec["payload_hex"]))


def main(argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["bcl"]):
        import bcl  # noqa: F401  (instrumented for coverage feedback)

    for arg in argv[1:]:
        if not arg.startswith("-"):
            corpus = Path(arg)
            corpus.mkdir(parents=True, exist_ok=True)
            if not any(corpus.iterdir()):
                _seed(corpus)

    def one(data: bytes) -> None:
        check(data)

    atheris.Setup(argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
