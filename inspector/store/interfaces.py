"""The store's contracts: one Protocol per aggregate, each docstring stating its ordering and
uniqueness rules, so a backend (``sqlite.py``, ``postgres.py``) can be checked against them
(tests/test_store_contract.py runs one suite against every backend).

Rules that hold for every aggregate:

- **Acked means durable.** A write method returns only after its transaction committed; a
  failure raises :class:`~inspector.store.errors.StoreError` (``StoreUnavailable`` when the
  database cannot be reached) and nothing of the write is visible.
- **Uniqueness is the database's job.** Where a name or key must be unique the schema has a
  constraint and the write is an upsert (``INSERT ... ON CONFLICT``), never check-then-insert:
  two processes writing at once cannot create duplicates.
- **One writer at a time.** Every write transaction (``sqlite.transaction``) excludes the others:
  SQLite's write lock, PostgreSQL's transaction-level advisory lock. Repositories that read then
  write in one transaction (quotas, a PSK rotation) may rely on it; readers never wait.
- **Versions for followers.** Each repository has a ``*_version()`` counter that a trigger moves
  in the same transaction as every change, so a process that polls it (gateway/follower.py) sees
  a change exactly when the rows changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..records import EventRecord, OutboxItem, Pending, Sim

T = TypeVar("T")


@runtime_checkable
class IngestLog(Protocol):
    """Messages, events, positions and bindings of device traffic (the hot path).

    **Sequence numbers.** ``commit`` gives each message and each event the next number of its own
    sequence (``messages``, ``events``), in batch order, and numbers are never reused, not even
    after the retention purge removed the rows. **Visibility in order**: when
    ``last_sequence(name)`` returns N, every row numbered at or below N is committed and visible
    (SQLite: one writer; PostgreSQL: the numbers are taken under a transaction-level advisory lock
    held to the commit). That is what makes the inspector's history snapshots and the replay
    window exact (inspector/history.py, inspector/replay.py).
    """

    def commit(self, batch: Sequence[Pending]) -> None:
        """Everything in ``batch`` in one transaction: all of it durable, or none of it."""

    def append_events(self, events: Sequence[EventRecord]) -> None:
        """Events that belong to no device message, committed as one batch."""

    def last_sequence(self, name: str) -> int:
        """The highest number ever given out by sequence ``name`` ('messages' or 'events'); 0 if none."""

    def device_index_due(self) -> bool:
        """Whether messages committed by this process wait for the per-device index."""

    def device_indexed_upto(self) -> int:
        """The per-device index's mark: every message at or below it is in ``device_messages``
        (unless purged), none above it (inspector/history.py reads those from ``messages``)."""

    def fill_device_index(self, chunk: int = ...) -> int:
        """Copy the messages above the mark to ``device_messages`` and move the mark, in one
        transaction per chunk (idempotent; resumes after a kill); returns how many."""

    def events(self, *, event_type: str | None = None, limit: int = 1000) -> list[dict]:
        """Stored envelopes, highest sequence number first."""

    def messages(self, iccid: str | None = None, limit: int = 1000) -> list[dict]:
        """Stored messages, highest sequence number first."""

    def latest(self, iccid: str) -> dict[str, int]:
        """Sequence number of the latest message per protocol of one SIM."""

    def positions(self, iccid: str, limit: int = 100) -> list[dict]:
        """Positions of one SIM, newest first."""


@runtime_checkable
class Outbox(Protocol):
    """Events waiting for delivery, one row per (integration, event).

    **Order per SIM.** Rows of one integration are numbered in commit order (``seq``), which is
    the events' order; ``load_outbox(after_seq=...)`` returns them in ``seq`` order, so a worker
    that keeps a cursor delivers the events of each SIM in the order they were received.
    **One worker per integration**: the rows are not locked; a second process delivering the
    same integration must first hold the integration's lease (issue #16, item 2).
    ``finish_outbox`` deletes delivered rows and records failed attempts; with ``restarts`` it
    never overwrites the reset made by a restart that happened meanwhile.
    """

    def load_outbox(self, integration_id: int, after_seq: int, limit: int) -> list[OutboxItem]:
        """At most ``limit`` rows with ``seq > after_seq``, in ``seq`` order."""

    def outbox_depth(self, integration_id: int) -> int:
        """Rows waiting for one integration."""

    def finish_outbox(self, delivered: Sequence[int], attempts: Sequence[tuple[int, int, int]],
                      restarts: int | None = None) -> None:
        """Delete ``delivered``; record ``(seq, attempts, next_attempt_ms)`` of failed ones."""


@runtime_checkable
class SimRepository(Protocol):
    """SIM master data. **The ICCID is the key** (an upsert replaces the other columns); the IP
    address is unique among SIMs (a constraint: an import that would give one address to two
    SIMs is refused whole, ``StoreError``). Address bindings (inspector/bindings.py) go through
    :meth:`Repositories.write_with` in the same transaction as the traffic that caused them."""

    def all_sims(self) -> list[Sim]:
        """Every SIM, ordered by ICCID."""

    def get_sim(self, iccid: str) -> Sim | None: ...

    def sims_version(self) -> int: ...

    def upsert_sims(self, sims: Iterable[Sim]) -> int:
        """Insert or replace SIMs in one transaction (all or none); returns how many."""

    def update_sim(self, iccid: str, **fields: object) -> Sim | None:
        """Change some columns of one SIM; None when it does not exist."""


@runtime_checkable
class PskRepository(Protocol):
    """Pre-shared keys, **unique per (ICCID, protocol)**. Setting a key that changes the SIM's
    DTLS key keeps the old one valid for ``grace_ms`` in the same transaction."""

    def psks_version(self) -> int: ...

    def all_psks(self) -> list[tuple[str, str, bytes, bool, int]]: ...

    def set_psk(self, iccid: str, protocol: str, key: bytes, user_set: bool, created_ms: int | None = None,
                grace_ms: int = 0) -> None: ...

    def previous_psks(self) -> list[tuple[str, bytes, int]]: ...


@runtime_checkable
class TemplateRepository(Protocol):
    """Translation templates, **unique by id**; listed in creation order."""

    def templates_version(self) -> int: ...

    def all_templates(self) -> list[dict]: ...

    def save_template(self, row: dict) -> None: ...

    def delete_template(self, template_id: str) -> bool: ...


@runtime_checkable
class IntegrationRepository(Protocol):
    """Integrations, **unique by name, enforced by the database**: ``upsert_integration`` is one
    ``INSERT ... ON CONFLICT (name) DO UPDATE`` (two processes creating the same name at once get
    one row, the same id). Listed by id. Deleting one deletes its outbox rows with it."""

    def integrations_version(self) -> int: ...

    def list_integrations(self) -> list[dict]: ...

    def upsert_integration(self, *, uuid: str, name: str, kind: str, origin: str, config: dict,
                           state: str) -> int:
        """Create (with ``state``) or update (keeping its state) the integration called ``name``."""

    def delete_integration(self, integration_id: int) -> None: ...

    def set_integration_state(self, integration_id: int, state: str, reset_attempts: bool = False) -> None: ...


@runtime_checkable
class Repositories(Protocol):
    """Functions written against a DB-API connection (inspector/accounts.py, bindings.py, sms.py,
    ...) run through these two methods. SQL written for them stays portable (plain types, ``?``
    parameters, ``ON CONFLICT`` upserts); the PostgreSQL backend translates the few SQLite idioms
    left (see ``postgres.translate``). Sequence numbers must come from the database (an identity
    column or :meth:`IngestLog.last_sequence`), never from ``MAX(id) + 1``."""

    def connection(self) -> Any:
        """This thread's connection (a sqlite3 connection or a PostgreSQL one with the same API)."""

    def read_with(self, fn: Callable[..., T], *args: object) -> T: ...

    def write_with(self, fn: Callable[..., T], *args: object) -> T: ...


@runtime_checkable
class ChangeFeed(Protocol):
    """How a process learns that another one changed the followed tables. Always: polling the
    ``*_version()`` counters. ``change_listener`` adds a push where the backend has one
    (PostgreSQL's LISTEN/NOTIFY: an object with ``start()``, ``stop()`` and ``connected``, calling
    ``on_change(key)`` from its own thread, ``on_change(None)`` after each reconnect); None where
    it has not (SQLite). ``shared``: other gateway processes, on other hosts too, may use this
    store, so once-only duties need their leases even for a single process."""

    shared: bool

    def change_listener(self, on_change: Callable[[str | None], None]) -> Any: ...


@runtime_checkable
class Maintenance(Protocol):
    """Schema and retention. ``purge`` removes history older than ``before_ms`` (outbox rows of
    purged events with it) and returns counts per table; on PostgreSQL whole days go by dropping
    the day's partition of ``messages``. Migrations are applied at open, each once, by name."""

    def purge(self, before_ms: int, chunk: int = 10000) -> dict[str, int]: ...

    def close(self) -> None: ...


@runtime_checkable
class Secrets(Protocol):
    """Secrets at rest: ``seal`` before writing, ``unseal`` after reading (plain without a key)."""

    def seal(self, data: bytes) -> bytes: ...

    def unseal(self, data: bytes) -> bytes: ...


@runtime_checkable
class Store(IngestLog, Outbox, SimRepository, PskRepository, TemplateRepository, IntegrationRepository,
            Repositories, ChangeFeed, Maintenance, Secrets, Protocol):
    """Everything the gateway asks of its durable state: what :func:`inspector.store.open_store` returns."""
