"""The gateway's durable state behind one seam: the backends side by side, chosen by a URL.

- ``interfaces.py``: one Protocol per aggregate, each stating its ordering and uniqueness rules.
- ``sqlite.py``: the embedded default (one file, one writer thread).
- ``postgres.py``: PostgreSQL (psycopg 3) for a store shared by several processes and hosts.
- ``migrations.py``: one source of truth for the schema (the SQL files, translated for PostgreSQL).

The rest of the gateway calls :func:`open_store` and never asks which backend runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from .interfaces import Store

__all__ = ["StoreError", "StoreUnavailable", "open_store", "sqlite_path"]


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///path`` URL (``sqlite:///:memory:`` too); None for other schemes."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///") or None
    return None


def open_store(url: str, synchronous: str = "full", secrets_key: str | None = None) -> Store:
    """The store at ``url``: ``sqlite:///relative/or//absolute/path`` or ``postgresql://...``
    (mypy checks here that both backends satisfy the interfaces)."""
    path = sqlite_path(url)
    if path is not None:
        from .sqlite import SqliteStore
        return SqliteStore(path, synchronous, secrets_key)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore
        return PostgresStore(url, secrets_key)
    raise StoreError(f"store.url: {url!r} is neither sqlite:///path nor postgresql://...")
