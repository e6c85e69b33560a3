"""Floats as 1NCE prints them.

A 4-byte float is written as the shortest decimal that reads back as the same
32-bit float (``42 4b bc f9`` -> ``50.934544``), not as the 17-digit decimal of
the double it widens to (``50.93454360961914``).  JSON has no NaN or infinity;
those become ``null`` (what JavaScript's ``JSON.stringify`` does as well).
"""

from __future__ import annotations

import math
import struct

__all__ = ["shortest_float32", "finite_or_none"]

_F32 = struct.Struct("<f")
_pack = _F32.pack
_isfinite = math.isfinite


def _fits(p: int, x: float, raw: bytes) -> float | None:
    y = float("%.*g" % (p, x))
    try:
        return y if _pack(y) == raw else None
    except OverflowError:  # rounded past the largest float32
        return None


def shortest_float32(x: float) -> float | None:
    """The shortest decimal (as a Python float) that reads back as float32 `x`.

    `x` must be a value read from 4 bytes (so it is exactly a float32).  Rounding
    an exact value to p significant digits gives the p-digit decimal nearest to
    it, so "p digits read back" is monotone in p and a search over p finds the
    shortest.  Nine digits always suffice for a float32.  Returns None for NaN
    and infinities.
    """
    if not _isfinite(x):
        return None
    raw = _pack(x)
    # Values that came from short decimals (sensor readings) pass at 6 digits;
    # then search downwards.  Otherwise try 7 and 8 before the sure 9.
    y = _fits(6, x, raw)
    if y is not None:
        lo, hi, best = 1, 6, y
        while lo < hi:
            mid = (lo + hi) // 2
            z = _fits(mid, x, raw)
            if z is not None:
                hi, best = mid, z
            else:
                lo = mid + 1
        return best
    y = _fits(7, x, raw)
    if y is not None:
        return y
    y = _fits(8, x, raw)
    if y is not None:
        return y
    return float("%.9g" % x)


def finite_or_none(x: float) -> float | None:
    """An 8-byte float as JSON can hold it: itself, or None for NaN/infinity."""
    return x if _isfinite(x) else None
