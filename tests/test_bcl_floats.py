"""shortest_float32 against a brute-force definition."""

from __future__ import annotations

import math
import random
import struct

import pytest

from bcl.floats import finite_or_none, shortest_float32


def brute(x: float) -> float:
    """Shortest by definition: try every precision from 1 digit up."""
    for p in range(1, 18):
        y = float(f"{x:.{p}g}")
        try:
            if struct.unpack("<f", struct.pack("<f", y))[0] == x:
                return y
        except OverflowError:  # rounded up past the largest float32
            continue
    raise AssertionError(x)


def f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def test_random_bit_patterns_match_brute_force():
    rng = random.Random(20240601)
    checked = 0
    while checked < 20000:
        x = f32(rng.getrandbits(32))
        if not math.isfinite(x):
            continue
        got = shortest_float32(x)
        assert got == brute(x) and repr(got) == repr(brute(x)), hex(struct.unpack("<I", struct.pack("<f", x))[0])
        checked += 1


def test_decimal_readings_come_back_as_written():
    rng = random.Random(7)
    for _ in range(5000):
        digits = rng.randint(1, 7)
        v = float(f"{rng.uniform(-1000, 1000):.{digits}g}")
        x = struct.unpack("<f", struct.pack("<f", v))[0]
        assert shortest_float32(x) == v


@pytest.mark.parametrize("bits", [0x00000000, 0x80000000, 0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800001])
def test_edges(bits):
    x = f32(bits)
    assert shortest_float32(x) == brute(x)
    assert struct.pack("<f", shortest_float32(x)) == struct.pack("<I", bits)


def test_non_finite():
    assert shortest_float32(float("nan")) is None
    assert shortest_float32(float("inf")) is None
    assert finite_or_none(float("-inf")) is None
    assert finite_or_none(2.5) == 2.5
