"""Where the SQLite store used to live: it is now ``inspector.store.sqlite``.

Kept as a re-export because some forty modules, tests and benchmarks import from here.
"""

from .store.errors import StoreError
from .store.sqlite import SqliteStore, _split_sql, make_private, mark_replayed, now_ms, transaction

__all__ = ["SqliteStore", "StoreError", "_split_sql", "make_private", "mark_replayed", "now_ms", "transaction"]
