"""Recent CoAP exchanges, so a retransmitted request gets the same answer and is stored once.

RFC 7252 asks a server to recognise a retransmission (same source, same message ID) within
EXCHANGE_LIFETIME (247 s). A device that reboots and starts its message IDs again on the same
port would then have its new messages taken for old ones (acknowledged with the old answer and
dropped), so an entry also holds a fingerprint of the request (token and payload): a request
with a known message ID but another fingerprint is a new message and replaces the entry.

Entries are kept in arrival order; expiry pops from the front. The number of entries is capped:
under a load that would exceed the cap, the oldest entries go early (and are counted), which
bounds memory at the price of possibly storing a very late retransmission twice — at-least-once,
never lost. Only requests of known, enabled SIMs create entries (refusals are stateless, see
:mod:`.refusals`), so unauthenticated traffic cannot push real exchanges out.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Hashable

PENDING = b""  # the request is being committed; its answer is not known yet


def fingerprint(token: bytes, payload: bytes) -> int:
    """What tells a retransmission from a new request that reuses a message ID."""
    return hash((token, payload))


class ExchangeCache:
    def __init__(self, lifetime: float = 247.0, max_entries: int = 2_000_000) -> None:
        self.lifetime = lifetime
        self.max_entries = max_entries
        # key -> [expiry, answer, fingerprint]; the expiry tells a stale queue entry from a live one
        self._answers: dict[Hashable, list] = {}
        self._order: deque[tuple[float, Hashable]] = deque()
        self.evicted_early = 0
        self.reused_ids = 0  # requests that reused a live message ID with another token/payload

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: Hashable, print_: int) -> bytes | None:
        """The cached answer, PENDING, or None when this is a new exchange (no entry, or an
        entry of another request that used the same message ID)."""
        entry = self._answers.get(key)
        if entry is None:
            return None
        if entry[2] != print_:
            self.reused_ids += 1
            return None
        return entry[1]

    def begin(self, key: Hashable, print_: int, answer: bytes = PENDING, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._prune(now)
        expires = now + self.lifetime
        self._answers[key] = [expires, answer, print_]
        self._order.append((expires, key))

    def complete(self, key: Hashable, print_: int, answer: bytes) -> None:
        """Remember the answer, unless the entry now belongs to a newer request."""
        entry = self._answers.get(key)
        if entry is not None and entry[2] == print_:
            entry[1] = answer

    def forget(self, key: Hashable) -> None:
        """Drop an exchange whose request was not processed, so a retransmission is."""
        self._answers.pop(key, None)

    def _prune(self, now: float) -> None:
        order = self._order
        answers = self._answers
        while order and (order[0][0] <= now or len(order) > self.max_entries):
            expires, key = order.popleft()
            entry = answers.get(key)
            if entry is not None and entry[0] == expires:
                if expires > now:
                    self.evicted_early += 1
                del answers[key]
