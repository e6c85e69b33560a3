"""Plain records that cross the boundary between the pipeline and the store.

They are slotted dataclasses rather than dicts because the hot path builds one per message and
the writer thread reads them field by field.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, frozen=True)
class Sim:
    """One SIM of the registry (SPEC §1). ``ip_address`` is the identity on the wire."""

    iccid: str
    imsi: str
    ip_address: str
    msisdn: str | None = None
    imei: str | None = None
    label: str | None = None
    status: str = "Enabled"
    imei_lock: bool = False

    @property
    def enabled(self) -> bool:
        return self.status == "Enabled"


@dataclass(slots=True)
class EventRecord:
    """An outgoing event: its envelope as JSON text plus the integrations it is routed to."""

    event_id: str
    type: str
    iccid: str | None
    created_ms: int
    body: str
    routes: tuple[int, ...] = ()


@dataclass(slots=True)
class MessageRecord:
    """One device message as the Device Inspector keeps it (raw bytes, translation if any)."""

    iccid: str
    protocol: str
    received_ms: int
    payload: bytes
    topic: str | None = None
    translated: str | None = None  # JSON text of the translated payload
    error: str | None = None  # translation error description
    event_id: str | None = None


@dataclass(slots=True, frozen=True)
class PositionRecord:
    """A device position from its own payload (GPS), kept for the Device Locator."""

    iccid: str
    received_ms: int
    source: str  # GPS or CellTower
    protocol: str
    lat: float
    lon: float
    accuracy: float | None = None  # metres (a cell's range); None for GPS
    metadata: str | None = None  # JSON: the cell of a CellTower position


@dataclass(slots=True)
class Pending:
    """What one uplink asks the group commit to make durable, and what to do once it is.

    ``ack`` is ``(callable, *args)`` called on the event loop after the commit; a tuple rather
    than a closure or future keeps the per-message cost to one small allocation. ``extra`` is a
    write of a feature's own (``extra(connection)``) made in the same transaction as the events,
    e.g. an MO SMS row with its event.
    """

    message: MessageRecord | None
    events: list[EventRecord] = field(default_factory=list)
    ack: tuple | None = None
    positions: list[PositionRecord] | None = None
    bindings: list["BindingRow"] | None = None  # connectivity state from RADIUS accounting
    extra: Callable[[Any], None] | None = None


@dataclass(slots=True)
class BindingRow:
    """A SIM's connectivity state as the mobile core last reported it (``sim_bindings``).

    ``ip_address`` None means no session. ``rx_delta``/``tx_delta`` are the bytes this report adds
    to the day's usage and the data quota (a new row gets ``quota_total``/``quota_expiry_ms``).
    ``change_seq`` is given by the store when the row is written.
    """

    iccid: str
    ip_address: str | None
    source: str = "radius"
    session_id: str | None = None
    nas_ip: str | None = None
    imeisv: str | None = None
    rat_type: int | None = None
    apn: str | None = None
    msisdn: str | None = None
    location: str | None = None  # JSON text of the decoded User-Location-Info
    session_started_ms: int | None = None
    input_octets: int = 0
    output_octets: int = 0
    block_reason: str | None = None
    updated_ms: int = 0
    change_seq: int = 0
    rx_delta: int = 0
    tx_delta: int = 0
    usage_day: str | None = None
    quota_total: int = 0
    quota_expiry_ms: int = 0


@dataclass(slots=True)
class OutboxItem:
    """One undelivered event for one integration, as the delivery worker sees it."""

    seq: int
    event_seq: int
    iccid: str | None
    attempts: int
    next_attempt_ms: int
    body: str
    event_type: str
    created_ms: int
