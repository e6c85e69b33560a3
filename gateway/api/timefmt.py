"""ISO 8601 times of the API: parsing what clients send, writing what the gateway answers.

Times go out as ``2022-03-07T08:51:29.015Z`` (milliseconds, UTC), or, when the request named
its window with an offset (``startDateTime=2022-03-07T10:51:29+02:00``), in that offset
(``2022-03-07T10:51:29.015+02:00``): the client reads the times in the zone it asked in.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .errors import bad_request

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# A "+" in a query string that the client did not percent-encode arrives as a space.
_SPACE_OFFSET = re.compile(r"^(.*T[0-9:.,]+) ([0-9]{2}(?::?[0-9]{2})?)$")


def parse_time(text: str, field: str) -> tuple[int, int | None]:
    """(epoch ms, offset in minutes or None when the text gave none/Z) of an ISO 8601 time.

    A time without an offset is UTC. A date alone is its midnight UTC.
    """
    value = text.strip()
    match = _SPACE_OFFSET.match(value)
    if match:
        value = f"{match.group(1)}+{match.group(2)}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{field}: {text!r} is not an ISO 8601 time such as 2022-03-07T08:51:29.015Z",
                          field) from None
    offset: int | None = None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    else:
        delta = parsed.utcoffset()
        assert delta is not None
        minutes = int(delta.total_seconds() // 60)
        zulu = value.endswith(("Z", "z"))
        offset = None if zulu else minutes
    if not 1970 <= parsed.year <= 9999:
        raise bad_request(f"{field}: {text!r} is out of range", field)
    ms = (parsed - _EPOCH) // timedelta(milliseconds=1)
    return ms, offset


def format_time(ms: int, offset_minutes: int | None = None) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ``, or with ``±HH:MM`` when an offset is given (0 gives +00:00)."""
    if offset_minutes is None:
        dt = datetime.fromtimestamp(ms / 1000, timezone.utc)
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    tz = timezone(timedelta(minutes=offset_minutes))
    dt = datetime.fromtimestamp(ms / 1000, tz)
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}{sign}{hours:02d}:{minutes:02d}"


def format_1nce_sim_date(ms: int) -> str:
    """The SIM API's own style: ``2018-03-09T07:59:09.000+0000``."""
    dt = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"
