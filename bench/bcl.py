"""Benchmark: BCL decoding against a hand-written struct.unpack decoder.

    python -m bench.bcl [--seconds 0.25] [--rounds 5]

Decodes the SDK blueprint payload and the vehicle-position example of
../shared/reference/bcl-vectors.json with

- the compiled template (``CompiledTemplate.decode``, what the gateway calls),
- ``bcl.translate`` (the same plus the Device Locator values),
- a hand-written ``struct.unpack_from`` decoder giving the same JSON,
- for context: construct's ``Struct.compile()`` of the same layout (plus the
  same JSON building) and the reference decoder (construct field by field).

All in one run, one process; rounds interleave the decoders and each figure
is the best of 5 rounds (so other load on a shared machine hits all alike).
Target: compiled >= 0.5x hand-written.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import construct as c

from bcl import compile_template, translate
from bcl.floats import shortest_float32


def _vectors() -> dict[str, dict]:
    path = Path(__file__).resolve().parents[2] / "shared/reference/bcl-vectors.json"
    if not path.exists() and os.environ.get("NCE_SHARED"):
        path = Path(os.environ["NCE_SHARED"]) / "reference/bcl-vectors.json"
    return {v["name"]: v for v in json.loads(path.read_text(encoding="utf-8"))["vectors"]}


# -- hand-written decoders (same JSON, same length checks) ----------------------------------

_SDK = struct.Struct(">bBB")


def hand_sdk(p: bytes) -> dict:
    if len(p) < 1:
        raise ValueError("short")
    if p[0] == 1:
        if len(p) < 8:
            raise ValueError("short")
        _, battery, signal = _SDK.unpack_from(p, 0)
        return {
            "data_type": "Energy_Saver",
            "battery_level": battery,
            "signal_strength": signal,
            "software_version": p[3:8].decode(),
        }
    return {}


_VEH = struct.Struct(">bffh")


def hand_vehicle(p: bytes) -> dict:
    if len(p) < 1:
        raise ValueError("short")
    if p[0] == 0:
        if len(p) < 11:
            raise ValueError("short")
        _, lat, lon, speed = _VEH.unpack_from(p, 0)
        return {"gps": {"lat": shortest_float32(lat), "lon": shortest_float32(lon)}, "speed": speed}
    return {"error": "unknown payload"}


# -- construct's own compiled Struct of the same layouts -------------------------------------------

_C_SDK = c.Struct("selector" / c.Int8sb, "battery" / c.Int8ub, "signal" / c.Int8ub, "version" / c.Bytes(5)).compile()
_C_VEH = c.Struct("selector" / c.Int8sb, "lat" / c.Float32b, "lon" / c.Float32b, "speed" / c.Int16sb).compile()


def construct_sdk(p: bytes) -> dict:
    r = _C_SDK.parse(p)
    if r.selector == 1:
        return {"data_type": "Energy_Saver", "battery_level": r.battery, "signal_strength": r.signal,
                "software_version": r.version.decode()}
    return {}


def construct_vehicle(p: bytes) -> dict:
    r = _C_VEH.parse(p)
    if r.selector == 0:
        return {"gps": {"lat": shortest_float32(r.lat), "lon": shortest_float32(r.lon)}, "speed": r.speed}
    return {"error": "unknown payload"}


# -- timing --------------------------------------------------------------------------------------

def _calibrate(fn: Callable[[bytes], Any], payload: bytes, seconds: float) -> int:
    """How many calls take about `seconds`."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn(payload)
        dt = time.perf_counter() - t0
        if dt > 0.02:
            return max(1, int(n * seconds / dt))
        n *= 2


def rates(fns: list[Callable[[bytes], Any]], payload: bytes, seconds: float, rounds: int) -> list[float]:
    """Calls per second of each function: the best of `rounds` rounds.

    Rounds interleave the functions, so load from other processes hits all of
    them alike and the ratios stay meaningful on a shared machine.
    """
    counts = [_calibrate(fn, payload, seconds) for fn in fns]
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, (fn, n) in enumerate(zip(fns, counts)):
            t0 = time.perf_counter()
            for _ in range(n):
                fn(payload)
            best[i] = min(best[i], time.perf_counter() - t0)
    return [n / t for n, t in zip(counts, best)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.25, help="time per decoder per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; the best one counts")
    args = ap.parse_args(argv)

    vec = _vectors()
    cases = [
        ("sdk-blueprint", vec["sdk-blueprint-energy-saver"], hand_sdk, construct_sdk),
        ("vehicle-position", vec["vehicle-position"], hand_vehicle, construct_vehicle),
    ]
    rows: list[tuple[str, str, float, float]] = []
    for label, v, hand, cons in cases:
        compiled = compile_template(v["template"])
        payload = bytes.fromhex(v["payload_hex"])
        expected = v["expected"]
        for fn in (compiled.decode, hand, cons, compiled.decode_reference):
            got = fn(payload)
            if got != expected or json.dumps(got) != json.dumps(expected):
                raise SystemExit(f"{label}: {fn} gives {got!r}, not {expected!r}")
        assert translate(compiled, payload).value == expected
        decoders: list[tuple[str, Callable[[bytes], Any]]] = [
            ("hand-written struct.unpack", hand),
            ("compiled template (decode)", compiled.decode),
            ("compiled template (translate)", lambda p, _c=compiled: translate(_c, p)),
            ("construct Struct.compile()", cons),
            ("reference (construct per field)", compiled.decode_reference),
        ]
        measured = rates([fn for _, fn in decoders], payload, args.seconds, args.rounds)
        for (name, _), r in zip(decoders, measured):
            rows.append((label, name, r, r / measured[0]))

    py = f"Python {sys.version.split()[0]}, construct {c.__version__}"
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"BCL decodes/s ({py})")
        for col, just in (("payload", "left"), ("decoder", "left"), ("decodes/s", "right"), ("x hand-written", "right")):
            table.add_column(col, justify=just)  # type: ignore[arg-type]
        for label, name, r, ratio in rows:
            table.add_row(label, name, f"{r:,.0f}", f"{ratio:.2f}")
        Console().print(table)
    except ImportError:
        print(f"BCL decodes/s ({py})")
        print(f"{'payload':18} {'decoder':34} {'decodes/s':>12} {'x hand':>7}")
        for label, name, r, ratio in rows:
            print(f"{label:18} {name:34} {r:12,.0f} {ratio:7.2f}")
    worst = min(ratio for _, name, _, ratio in rows if name == "compiled template (decode)")
    print(f"compiled/hand-written, worst case: {worst:.2f} (target >= 0.50)")
    return 0 if worst >= 0.5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
