"""``make bench``: every benchmark with bounded defaults, one table per area.

    python -m bench              all areas
    python -m bench uplink bcl   only these
"""

from __future__ import annotations

import importlib
import sys
import time

# area -> (module, arguments for a bounded run)
AREAS: dict[str, tuple[str, list[str]]] = {
    "uplink": ("bench.uplink", ["--seconds", "8"]),
    "bcl": ("bench.bcl", []),
    "lwm2m": ("bench.lwm2m", ["--registrations", "30000", "--seconds", "6"]),
    "dtls": ("bench.dtls", []),
    "delivery": ("bench.delivery", ["--events", "20000"]),
    "whole_path": ("bench.whole_path", ["--seconds", "8"]),
    "api": ("bench.api", []),
    "replay": ("bench.replay", ["--events", "100000"]),
    "radius": ("bench.radius", ["--seconds", "6"]),
    "sms": ("bench.sms", ["--sms", "3000"]),
    "locator": ("bench.locator", []),
}


def main(argv: list[str]) -> int:
    chosen = argv or list(AREAS)
    unknown = [a for a in chosen if a not in AREAS]
    if unknown:
        print(f"unknown area(s) {', '.join(unknown)}; known: {', '.join(AREAS)}", file=sys.stderr)
        return 2
    for area in chosen:
        module, args = AREAS[area]
        started = time.perf_counter()
        print(f"\n== {area} ({module} {' '.join(args)})", flush=True)
        importlib.import_module(module).main(args)
        print(f"({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
