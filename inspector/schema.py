"""Where the migration list used to live: it is now ``inspector.store.migrations``."""

from .store.migrations import migrations

__all__ = ["migrations"]
