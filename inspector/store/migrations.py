"""The store's schema, one source for both backends: SQL migration files in ``inspector/migrations``,
applied in name order (translated for PostgreSQL, see :func:`postgres_migrations`).

Each file is applied once, in its own transaction, and recorded by name in
``schema_migrations``, so features can add their tables in files of their own (``0003_psk.sql``)
without touching anyone else's. A database that has a migration this gateway does not know was
written by a newer gateway and is refused instead of being misread.
"""

from __future__ import annotations

import sqlite3
from importlib import resources

from .dialect import migration_statements
from .errors import StoreError


def migrations() -> list[tuple[str, str]]:
    """(name, SQL) of every migration shipped with the gateway, in the order to apply them."""
    folder = resources.files("inspector") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def refuse_unknown(where: str, applied: set[str], known: list[str]) -> None:
    """Refuse a database with migrations this gateway does not know (a newer gateway wrote it)."""
    unknown = applied - set(known)
    if unknown:
        raise StoreError(f"{where} has schema migration(s) {', '.join(sorted(unknown))} that this gateway does "
                         "not know: it was written by a newer version; upgrade the gateway")


def postgres_migrations() -> list[tuple[str, list[str]]]:
    """(name, statements) for PostgreSQL: each SQL file translated (store/dialect.py), or its
    override ``migrations/postgresql/NAME.sql`` where translation cannot do it; files found only
    in that folder are PostgreSQL's own migrations. One list, in name order."""
    folder = resources.files("inspector") / "migrations" / "postgresql"
    overrides = {f.name.removesuffix(".sql"): f.read_text(encoding="utf-8")
                 for f in folder.iterdir() if f.name.endswith(".sql")}
    out: dict[str, list[str]] = {}
    for name, script in migrations():
        if name not in overrides:
            out[name] = migration_statements(split_sql(script))
    for name, script in overrides.items():
        out[name] = split_pg(script)
    return sorted(out.items())


def split_sql(script: str) -> list[str]:
    """Split a SQLite migration into statements, keeping trigger bodies (``BEGIN ... END;``) whole."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if not line.strip():
            continue
        current.append(line)
        text = "\n".join(current)
        if sqlite3.complete_statement(text):
            statements.append(text.strip())
            current = []
    if "\n".join(current).strip():
        raise StoreError("incomplete SQL statement in a migration")
    return statements


def split_pg(script: str) -> list[str]:
    """Split a PostgreSQL migration at semicolons that end a line, keeping ``$$ ... $$`` bodies whole."""
    statements: list[str] = []
    current: list[str] = []
    dollar = False
    for line in script.splitlines():
        code = line.split("--", 1)[0] if not dollar else line
        if not code.strip() and not current:
            continue
        current.append(line)
        if code.count("$$") % 2:
            dollar = not dollar
        if not dollar and code.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().rstrip(";"))
            current = []
    if "\n".join(current).strip():
        statements.append("\n".join(current).strip().rstrip(";"))
    return statements
