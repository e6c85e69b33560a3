"""The store file is private to the gateway's user (issue 19, item 8)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from inspector.sqlite import SqliteStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        store = SqliteStore(tmp_path / "data" / "gateway.db")
        store.upsert_sims([])
    finally:
        os.umask(old)
    folder = tmp_path / "data"
    assert _mode(folder) == 0o700
    assert {p.name: _mode(p) for p in folder.iterdir()} == {
        "gateway.db": 0o600, "gateway.db-wal": 0o600, "gateway.db-shm": 0o600}


def test_a_readable_store_is_made_private_with_a_warning(tmp_path, caplog):
    path = tmp_path / "gateway.db"
    store = SqliteStore(path)
    store.upsert_sims([])
    store.close()
    for item in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if item.exists():
            os.chmod(item, 0o644)  # as older versions left it
    caplog.set_level(logging.WARNING)
    SqliteStore(path).upsert_sims([])
    assert _mode(path) == 0o600
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "store_made_private"]
    assert warnings and warnings[0].path == str(path) and warnings[0].mode_was == "0644"
    caplog.clear()
    SqliteStore(path)
    assert not [r for r in caplog.records if getattr(r, "event", None) == "store_made_private"]
