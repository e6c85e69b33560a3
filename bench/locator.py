"""Device Locator benchmarks: cell import and lookups, geofence checks.

    python -m bench.locator [--cells 200000] [--seconds 1.0]

1. Import: a synthetic OpenCelliD CSV of ``--cells`` rows through ``nce-gateway cells import``'s
   reader and upsert (rows/s). Lookup: ``inspector.cells.lookup`` (by MCC, MNC, cell id, area
   and radios, what a RADIUS location or LwM2M object 4 asks) against the baseline of a bare
   primary-key SELECT of the same rows (the least the store can do).
2. Geofence checks: the accuracy-aware verdict of a 1 km circle (geodesic) and a 32-corner
   polygon (local azimuthal equidistant plane, shapely), against the baseline of a plain planar
   point-in-polygon test on the prepared lon/lat polygon (no projection, no accuracy).
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import shapely
from shapely.geometry import Point, Polygon

from gateway.locator.cells_import import import_cells
from gateway.locator.geometry import circle, polygon
from inspector import cells as sql
from inspector.sqlite import SqliteStore

from .common import print_table


def rate(fn: Callable[[int], object], seconds: float) -> float:
    """Calls per second of ``fn(i)`` over about ``seconds``."""
    n, started = 0, time.perf_counter()
    while True:
        for i in range(n, n + 1000):
            fn(i)
        n += 1000
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return n / elapsed


def write_csv(path: Path, count: int) -> list[tuple[int, int, int, int]]:
    rng = random.Random(14)
    keys = []
    with path.open("w") as out:
        out.write("radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal\n")
        for i in range(count):
            mcc, mnc, area, cell = 262, 1 + i % 3, 1000 + i % 500, 100_000 + i
            keys.append((mcc, mnc, cell, area))
            out.write(f"LTE,{mcc},{mnc},{area},{cell},0,{rng.uniform(6, 15):.5f},{rng.uniform(47, 55):.5f},"
                      f"{rng.randint(100, 5000)},{rng.randint(1, 50)},1,1459813819,1459813819,0\n")
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "cells.csv"
        keys = write_csv(csv_path, args.cells)
        store = SqliteStore(Path(tmp) / "bench.db", synchronous="normal")
        started = time.perf_counter()
        summary = import_cells(str(csv_path), lambda batch: store.write_with(sql.upsert, batch))
        imported = summary.imported / (time.perf_counter() - started)
        conn = store.connection()
        rng = random.Random(7)
        picks = [keys[rng.randrange(len(keys))] for _ in range(4096)]

        def lookup(i: int) -> object:
            mcc, mnc, cell, area = picks[i & 4095]
            return sql.lookup(conn, mcc, mnc, cell, area, ("LTE",))

        def bare(i: int) -> object:
            mcc, mnc, cell, area = picks[i & 4095]
            return conn.execute("SELECT lon, lat FROM cells WHERE mcc = ? AND mnc = ? AND cell = ? AND area = ?"
                                " AND radio = ?", (mcc, mnc, cell, area, "LTE")).fetchone()

        assert lookup(0) is not None
        got, base = rate(lookup, args.seconds), rate(bare, args.seconds)
        rows.append(("cell import (rows/s)", imported, float("nan"), float("nan")))
        rows.append(("cell lookup", got, base, got / base))
        store.close()

    fence = circle([13.405, 52.52], 1000)
    corners = [[13.405 + 0.02 * math.cos(2 * math.pi * k / 32), 52.52 + 0.012 * math.sin(2 * math.pi * k / 32)]
               for k in range(32)]
    area = polygon([corners + [corners[0]]])
    planar = Polygon(corners)
    shapely.prepare(planar)
    rng = random.Random(3)
    points = [(13.405 + rng.uniform(-0.04, 0.04), 52.52 + rng.uniform(-0.03, 0.03), rng.uniform(0, 2000))
              for _ in range(4096)]
    base = rate(lambda i: planar.contains(Point(points[i & 4095][0], points[i & 4095][1])), args.seconds)
    for name, shape in (("geofence check, circle", fence), ("geofence check, polygon (32)", area)):
        got = rate(lambda i: shape.verdict(*points[i & 4095]), args.seconds)
        rows.append((name, got, base, got / base))
    print_table(f"Device Locator ({args.cells:,} cells)", ("operation", "per second", "baseline/s", "x baseline"),
                rows, note="baselines: a bare primary-key SELECT; planar point-in-polygon on the lon/lat polygon")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
