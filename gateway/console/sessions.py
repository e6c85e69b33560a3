"""Console sessions: a random cookie value that names a server-side session.

The browser holds only an opaque id (HttpOnly, SameSite=Strict); the API token, the user's name
and role and the session's CSRF token stay in this process. Sessions end on logout, after
``console.session_idle_minutes`` without a request, and when the API token expires (a new login
is then needed, as for an API script). The table is bounded: at most ``MAX_SESSIONS`` live at
once, the least recently used goes first, so logins cannot grow memory without limit.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "nce_console"
LOGIN_CSRF_COOKIE = "nce_console_login"


@dataclass
class Session:
    id: str
    token: str
    username: str
    role: str
    token_expires: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    last_seen: float = 0.0
    flash: list[tuple[str, str]] = field(default_factory=list)

    def check_csrf(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(self.csrf.encode(), given.encode())

    def say(self, kind: str, text: str) -> None:
        """A message for the next page this session sees ("ok" or "error")."""
        self.flash.append((kind, text))
        del self.flash[:-5]

    def take_flash(self) -> list[tuple[str, str]]:
        messages, self.flash = self.flash, []
        return messages


class SessionStore:
    MAX_SESSIONS = 10_000

    def __init__(self, idle_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, token: str, username: str, role: str, expires_in: float) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), token, username, role, now + expires_in, last_seen=now)
        self._sessions[session.id] = session
        while len(self._sessions) > self.MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle_seconds or now >= session.token_expires:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        self._sessions.move_to_end(session_id)
        return session

    def drop(self, session_id: str) -> Session | None:
        return self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)
