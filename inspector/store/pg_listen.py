"""LISTEN/NOTIFY on PostgreSQL: the store's change feed, pushed instead of polled.

Migration ``postgresql/0047_pg_notify.sql`` makes every change of a follower's version counter
(``meta``: SIMs, PSKs, templates, integrations, accounts, bindings) send ``NOTIFY nce_changes``
at commit. :class:`ChangeListener` holds one connection per process in a thread of its own,
``LISTEN``\\ s on it and calls ``on_change`` for every notification, so the follower
(gateway/follow.py) checks the store at once instead of at its next poll.

Why a thread and not psycopg's async connection: the gateway's store calls are blocking and
run in executors; one thread blocked in ``notifies()`` costs nothing and keeps psycopg's async
API out of the event loop. Rules:

- ``on_change(key)`` runs in the listener's thread; the callee hands it to its loop.
- After every (re)connect ``on_change(None)`` is called: notifications sent while the
  connection was down are lost, so the caller checks everything once.
- While the connection is down the caller's polling is all there is (``connected`` is False);
  the thread connects again every ``retry_seconds``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from .postgres import redact

log = logging.getLogger("nce.store")

CHANNEL = "nce_changes"


class ChangeListener:
    """One ``LISTEN nce_changes`` connection in a daemon thread (see the module docstring)."""

    def __init__(self, url: str, on_change: Callable[[str | None], None], retry_seconds: float = 1.0,
                 wait_seconds: float = 0.5) -> None:
        self.url = url
        self.on_change = on_change
        self.retry_seconds = retry_seconds
        self.wait_seconds = wait_seconds  # how long one notifies() call blocks: the stop latency
        self.connected = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self.wait_seconds + 11)  # a connect in progress has a 10 s timeout
            self._thread = None

    def _run(self) -> None:
        lost_logged = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected = True
                    lost_logged = False
                    log.info("listening for store changes", extra={"event": "listen_started"})
                    self._call(None)  # whatever changed while not listening
                    while not self._stopping.is_set():
                        for notify in conn.notifies(timeout=self.wait_seconds):
                            self._call(notify.payload)
            except psycopg.Error as exc:
                if not lost_logged:  # once per outage, not once per retry
                    log.warning("not listening for store changes (%s): following by polling until the "
                                "connection to %s is back", str(exc).strip().splitlines()[0] if str(exc).strip()
                                else type(exc).__name__, redact(self.url), extra={"event": "listen_lost"})
                    lost_logged = True
            finally:
                self.connected = False
            self._stopping.wait(self.retry_seconds)

    def _call(self, key: str | None) -> None:
        try:
            self.on_change(key)
        except Exception:
            log.exception("store change callback failed")
