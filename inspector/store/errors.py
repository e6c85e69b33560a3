"""The store's one error root, raised by every backend (sqlite3/psycopg errors are mapped here)."""


class StoreError(RuntimeError):
    """The store cannot do what was asked (schema too new, constraint broken); message says why."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (PostgreSQL restarting): nothing was committed, retry later."""
