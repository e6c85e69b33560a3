"""Replay stored events into one integration: the checks shared by the CLI and the API.

The store side (snapshot, chunks, the ``replayed`` mark) is `inspector.replay`; here a request
in the user's terms (an integration row, a window, a device, an event type) becomes a
`ReplayWindow`, or a `ReplayRefused` that says why not. TEST_MESSAGE events are never replayed
(they test a connection, they carry no data).
"""

from __future__ import annotations

from typing import Any

from inspector.replay import ReplayRefused, ReplayWindow, window
from integrators.manager import handle_from_row

from .config import EVENT_TYPES

__all__ = ["ReplayRefused", "replay_window", "REPLAYABLE"]

REPLAYABLE = tuple(t for t in EVENT_TYPES if t != "TEST_MESSAGE")


def replay_window(store: Any, row: dict, *, since_ms: int, until_ms: int | None, now_ms: int,
                  retention_days: float, iccid: str | None = None, event_type: str | None = None) -> ReplayWindow:
    """The window of a replay of `row`'s events, or ReplayRefused."""
    receives = [t for t in REPLAYABLE if t in handle_from_row(row).event_types]
    if event_type is not None:
        if event_type not in REPLAYABLE:
            raise ReplayRefused(f"unknown event type {event_type!r} (replayable: {', '.join(REPLAYABLE)})")
        if event_type not in receives:
            raise ReplayRefused(f"integration {row['name']} does not receive {event_type} events "
                                f"(it receives: {', '.join(receives) or 'none'})")
        receives = [event_type]
    return window(store, row["id"], since_ms=since_ms, until_ms=until_ms, now_ms=now_ms,
                  retention_days=retention_days, iccid=iccid, event_types=receives)
