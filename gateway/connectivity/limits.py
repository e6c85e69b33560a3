"""Self-set monthly limits (SPEC §8): the options a customer picks from, by service.

The ids are the gateway's own (1NCE's ids are not public); ``GET /v1/sims/{service}/limits``
lists them and ``POST /v1/sims/limits`` picks one per service. A service without a chosen option
has no monthly limit.
"""

from __future__ import annotations

SERVICES = ("data", "smsMo", "smsMt")
OPTIONS: dict[str, dict[int, tuple[str, str]]] = {
    "data": {1: ("1", "MB"), 2: ("5", "MB"), 3: ("10", "MB"), 4: ("16", "MB"), 5: ("50", "MB"), 6: ("100", "MB"),
             7: ("500", "MB")},
    "smsMo": {1: ("5", "SMS"), 2: ("10", "SMS"), 3: ("25", "SMS"), 4: ("50", "SMS"), 5: ("100", "SMS"),
              6: ("250", "SMS")},
}
OPTIONS["smsMt"] = OPTIONS["smsMo"]
#: the API's path names (``/v1/sims/{service}/limits``) and body fields → service
PATH_NAMES = {"data": "data", "smsMO": "smsMo", "smsMT": "smsMt"}
BODY_FIELDS = {"dataLimitId": "data", "smsMoLimitId": "smsMo", "smsMtLimitId": "smsMt"}


def option(service: str, limit_id: int) -> dict:
    limit, unit = OPTIONS[service][limit_id]
    return {"id": limit_id, "limit": limit, "unit": unit}


def data_limit_bytes(limit_id: int | None) -> int | None:
    """The monthly data limit in bytes (MB = 10^6 bytes), or None for no limit."""
    if limit_id is None or limit_id not in OPTIONS["data"]:
        return None
    return int(OPTIONS["data"][limit_id][0]) * 1_000_000
