"""The store's schema: SQL migration files in ``inspector/migrations``, applied in name order.

Each file is applied once, in its own transaction, and recorded by name in
``schema_migrations``, so features can add their tables in files of their own (``0003_psk.sql``)
without touching anyone else's. A database that has a migration this gateway does not know was
written by a newer gateway and is refused instead of being misread.
"""

from __future__ import annotations

from importlib import resources


def migrations() -> list[tuple[str, str]]:
    """(name, SQL) of every migration shipped with the gateway, in the order to apply them."""
    folder = resources.files("inspector") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]
