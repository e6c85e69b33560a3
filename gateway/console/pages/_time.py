"""Times as the console shows and asks for them (UTC, ISO 8601 to the API)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def minutes_before_now(minutes: int) -> str:
    return iso(datetime.now(timezone.utc) - timedelta(minutes=minutes))


def short(text: str | None) -> str:
    """``2026-12-02T15:04:05.123Z`` → ``2026-12-02 15:04:05`` (what a table cell needs)."""
    if not text:
        return ""
    return text.replace("T", " ")[:19]
