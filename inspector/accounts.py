"""Management API accounts in the store: users, token signing keys, revoked tokens.

Plain functions over a :class:`~inspector.sqlite.SqliteStore` (run them in the gateway's
reader or writer thread, or directly from the CLI). Rules about *who* may do what live in
``gateway.accounts``; the one rule kept here, inside the write transaction, is that the last
enabled Owner can be neither disabled nor demoted, so no sequence of calls locks everyone out.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .sqlite import StoreError, now_ms, transaction

ROLES = ("Owner", "Admin", "User", "API")
STATUSES = ("Enabled", "Disabled")

_COLUMNS = ("id", "username", "password_hash", "role", "status", "tokens_valid_after_ms", "created_ms",
            "updated_ms", "last_login_ms")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM api_users"


class AccountError(StoreError):
    """An account change the store refuses; ``status`` is the HTTP status that fits it."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    username: str
    password_hash: str
    role: str
    status: str
    tokens_valid_after_ms: int
    created_ms: int
    updated_ms: int
    last_login_ms: int | None

    @property
    def enabled(self) -> bool:
        return self.status == "Enabled"


def _account(row: Any) -> Account:
    return Account(*row)


def accounts_version(store: Any) -> int:
    row = store.connection().execute("SELECT value FROM meta WHERE key = 'accounts_version'").fetchone()
    return row[0] if row else 0


def all_accounts(store: Any) -> list[Account]:
    return [_account(r) for r in store.connection().execute(f"{_SELECT} ORDER BY id")]


def get_account(store: Any, username: str) -> Account | None:
    row = store.connection().execute(f"{_SELECT} WHERE username = ?", (username.lower(),)).fetchone()
    return _account(row) if row else None


def create_account(store: Any, username: str, password_hash: str, role: str) -> Account:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; roles: {', '.join(ROLES)}", 400)
    ts = now_ms()
    try:
        with transaction(store.connection()) as conn:
            conn.execute(
                "INSERT INTO api_users (username, password_hash, role, status, created_ms, updated_ms)"
                " VALUES (?, ?, ?, 'Enabled', ?, ?)", (username.lower(), password_hash, role, ts, ts))
    except sqlite3.IntegrityError:
        raise AccountError(f"user {username.lower()} already exists") from None
    account = get_account(store, username)
    assert account is not None
    return account


def update_account(store: Any, username: str, *, role: str | None = None, status: str | None = None,
                   password_hash: str | None = None, revoke_tokens: bool = False,
                   allowed: Callable[[Account], None] | None = None) -> Account | None:
    """Change one user; None if there is no such user. Disabling a user or setting a password
    also invalidates every token issued to that user so far.

    ``allowed(current)`` is called inside the write transaction with the user as it is *now*
    and raises to refuse the change: who may change whom is decided on the row that is
    written, not on a copy read earlier (a role change in between must not slip through)."""
    if role is not None and role not in ROLES:
        raise AccountError(f"unknown role {role!r}; roles: {', '.join(ROLES)}", 400)
    if status is not None and status not in STATUSES:
        raise AccountError(f"unknown status {status!r}; statuses: {', '.join(STATUSES)}", 400)
    ts = now_ms()
    conn = store.connection()
    with transaction(conn):
        row = conn.execute(f"{_SELECT} WHERE username = ?", (username.lower(),)).fetchone()
        if row is None:
            return None
        before = _account(row)
        if allowed is not None:
            allowed(before)
        sets: dict[str, Any] = {}
        if role is not None and role != before.role:
            sets["role"] = role
        if status is not None and status != before.status:
            sets["status"] = status
        if password_hash is not None:
            sets["password_hash"] = password_hash
        if revoke_tokens or password_hash is not None or status == "Disabled":
            sets["tokens_valid_after_ms"] = ts
        if sets:
            sets["updated_ms"] = ts
            assignments = ", ".join(f"{k} = ?" for k in sets)
            conn.execute(f"UPDATE api_users SET {assignments} WHERE id = ?", (*sets.values(), before.id))
            owners = conn.execute(
                "SELECT COUNT(*) FROM api_users WHERE role = 'Owner' AND status = 'Enabled'").fetchone()[0]
            if owners == 0 and before.role == "Owner" and before.enabled:
                raise AccountError(f"{before.username} is the last enabled Owner; make another user Owner first")
    return get_account(store, username)


def record_login(store: Any, user_id: int, password_hash: str | None = None) -> None:
    """Remember the last login (and store a re-hashed password when the hash parameters changed)."""
    with transaction(store.connection()) as conn:
        if password_hash is None:
            conn.execute("UPDATE api_users SET last_login_ms = ? WHERE id = ?", (now_ms(), user_id))
        else:
            conn.execute("UPDATE api_users SET last_login_ms = ?, password_hash = ? WHERE id = ?",
                         (now_ms(), password_hash, user_id))


def owner_exists(store: Any) -> bool:
    return store.connection().execute(
        "SELECT 1 FROM api_users WHERE role = 'Owner' AND status = 'Enabled' LIMIT 1").fetchone() is not None


# signing keys -------------------------------------------------------------------------------

def signing_keys(store: Any) -> list[tuple[str, bytes]]:
    """(kid, secret) of every key, newest first: tokens are signed with the first."""
    rows = store.connection().execute("SELECT kid, secret FROM api_signing_keys ORDER BY created_ms DESC, kid")
    return [(r[0], store.unseal(bytes(r[1]))) for r in rows]


def ensure_signing_key(store: Any) -> None:
    """Generate the first signing key (256 random bits) unless one exists."""
    with transaction(store.connection()) as conn:
        if conn.execute("SELECT 1 FROM api_signing_keys LIMIT 1").fetchone() is None:
            conn.execute("INSERT INTO api_signing_keys (kid, secret, created_ms) VALUES (?, ?, ?)",
                         (secrets.token_hex(4), store.seal(secrets.token_bytes(32)), now_ms()))


# revoked tokens ---------------------------------------------------------------------------

def revoke_token(store: Any, jti: str, user_id: int, expires_ms: int) -> None:
    ts = now_ms()
    with transaction(store.connection()) as conn:
        conn.execute("DELETE FROM api_revoked_tokens WHERE expires_ms < ?", (ts,))
        conn.execute("INSERT OR IGNORE INTO api_revoked_tokens (jti, user_id, expires_ms, revoked_ms)"
                     " VALUES (?, ?, ?, ?)", (jti, user_id, expires_ms, ts))


def revoked_tokens(store: Any) -> frozenset[str]:
    """Token ids revoked and not yet expired."""
    rows = store.connection().execute("SELECT jti FROM api_revoked_tokens WHERE expires_ms >= ?", (now_ms(),))
    return frozenset(r[0] for r in rows)


def snapshot(store: Any) -> tuple[int, list[Account], frozenset[str], list[tuple[str, bytes]]]:
    """Everything the token check needs, read in one go: (version, users, revoked, keys)."""
    conn = store.connection()
    conn.execute("BEGIN")
    try:
        return accounts_version(store), all_accounts(store), revoked_tokens(store), signing_keys(store)
    finally:
        conn.execute("COMMIT")
