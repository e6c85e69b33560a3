"""Block-wise uploads (RFC 7959 Block1) with a size limit, a bound on concurrent uploads, and
linear reassembly.

aiocoap reassembles Block1 requests in a spool per resource (``Resource._block1``) before the
resource sees the request: with no size limit, one assembly per source port and query kept for
minutes, and every block appended by copying the whole body (quadratic). :func:`bound_block1`
replaces that spool on every resource of the gateway's site with :class:`BoundedBlock1Spool`,
whose assemblies share one :class:`Block1Limits`:

* the first block that would take the body past ``max_payload`` (block number × block size +
  its length), or a Size1 option announcing more, gets ``4.13 Request Entity Too Large`` with
  Size1 = ``max_payload``, and the assembly is dropped;
* at most ``max_transfers`` assemblies in total and ``max_transfers_per_sim`` per SIM: a first
  block beyond that gets ``5.03 Service Unavailable`` with Max-Age (when one ends);
* an assembly idle for ``timeout`` seconds (MAX_TRANSMIT_WAIT, as aiocoap) is dropped;
* blocks are kept as a list and joined once at the end.

So what Block1 uploads can hold is at most ``max_transfers × max_payload`` bytes.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from aiocoap import Message, error
from aiocoap.blockwise import Block1Spool, ContinueException, IncompleteException
from aiocoap.numbers import TransportTuning, codes
from aiocoap.numbers.optionnumbers import OptionNumber

BLOCK_OPTIONS = [OptionNumber.BLOCK1, OptionNumber.BLOCK2, OptionNumber.OBSERVE]


class TooLarge(error.ConstructionRenderableError):
    """4.13 with Size1: the largest body the gateway takes (RFC 7959 §2.9.3)."""

    code = codes.REQUEST_ENTITY_TOO_LARGE
    message = "payload too large"

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def to_message(self) -> Message:
        answer = super().to_message()
        answer.opt.size1 = self.limit
        return answer


class Busy(error.ConstructionRenderableError):
    """5.03 with Max-Age: too many uploads in progress; try again later."""

    code = codes.SERVICE_UNAVAILABLE
    message = "too many block-wise uploads in progress"

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after

    def to_message(self) -> Message:
        answer = super().to_message()
        answer.opt.max_age = self.retry_after
        return answer


class _Assembly:
    __slots__ = ("request", "chunks", "size", "owner", "touched")

    def __init__(self, request: Message, owner: Hashable, now: float) -> None:
        self.request = request
        self.chunks = [request.payload]
        self.size = len(request.payload)
        self.owner = owner
        self.touched = now


class Block1Limits:
    """The assemblies of every bounded spool, the caps on them, and their metrics."""

    def __init__(self, metrics: Any, *, max_payload: int, max_transfers: int, max_transfers_per_sim: int,
                 timeout: float = TransportTuning().MAX_TRANSMIT_WAIT) -> None:
        self.metrics = metrics
        self.max_payload = max_payload
        self.max_transfers = max_transfers
        self.max_per_sim = max_transfers_per_sim
        self.timeout = timeout
        self.assemblies: OrderedDict[Hashable, _Assembly] = OrderedDict()  # least recently used first
        self.per_owner: dict[Hashable, int] = {}
        self.bytes = 0
        metrics.block1_transfers.set_function(self.assemblies.__len__)
        metrics.block1_bytes.set_function(lambda: self.bytes)

    def expire(self, now: float) -> None:
        while self.assemblies:
            key, oldest = next(iter(self.assemblies.items()))
            if oldest.touched + self.timeout > now:
                return
            self.drop(key)

    def start(self, key: Hashable, request: Message, owner: Hashable, protocol: str, now: float) -> None:
        """Begin (or, for a block 0 of an assembly in progress, begin again) an upload."""
        self.drop(key)
        if len(self.assemblies) >= self.max_transfers or self.per_owner.get(owner, 0) >= self.max_per_sim:
            self.metrics.reject(protocol, "busy")
            oldest = next(iter(self.assemblies.values()))
            raise Busy(max(1, math.ceil(oldest.touched + self.timeout - now)))
        self.assemblies[key] = _Assembly(request, owner, now)
        self.per_owner[owner] = self.per_owner.get(owner, 0) + 1
        self.bytes += len(request.payload)

    def append(self, key: Hashable, start: int, payload: bytes, now: float) -> _Assembly:
        assembly = self.assemblies.get(key)
        if assembly is None or assembly.size != start:
            self.drop(key)
            raise IncompleteException  # a block out of order, or of an upload we do not have
        assembly.chunks.append(payload)
        assembly.size += len(payload)
        assembly.touched = now
        self.bytes += len(payload)
        self.assemblies.move_to_end(key)
        return assembly

    def drop(self, key: Hashable) -> _Assembly | None:
        assembly = self.assemblies.pop(key, None)
        if assembly is not None:
            self.bytes -= assembly.size
            left = self.per_owner[assembly.owner] - 1
            if left:
                self.per_owner[assembly.owner] = left
            else:
                del self.per_owner[assembly.owner]
        return assembly


class BoundedBlock1Spool(Block1Spool):
    """aiocoap's Block1 spool interface (``feed_and_take``) with :class:`Block1Limits`."""

    def __init__(self, limits: Block1Limits, protocol: str = "COAP") -> None:  # no super(): no TimeoutDict
        self.limits = limits
        self.protocol = protocol

    def feed_and_take(self, req: Message) -> Message:
        """The whole request once its last block is in; raises Continue (2.31) before, or the
        refusal (4.13, 5.03, 4.08, 4.00)."""
        block1 = req.opt.block1
        if block1 is None:
            return req
        limits = self.limits
        now = time.monotonic()
        limits.expire(now)
        key = (self, req.remote.blockwise_key, req.code, req.get_cache_key(BLOCK_OPTIONS))
        payload = req.payload
        announced = req.opt.size1
        if block1.start + len(payload) > limits.max_payload or (announced is not None
                                                                and announced > limits.max_payload):
            limits.drop(key)
            limits.metrics.reject(self.protocol, "oversize")
            raise TooLarge(limits.max_payload)
        if block1.is_bert or not block1.is_valid_for_payload_size(len(payload)):
            limits.drop(key)
            raise error.BadRequest("payload size does not match Block1 (BERT is for CoAP over TCP)")
        if block1.block_number == 0:
            if not block1.more:
                return req  # the whole body in one block: nothing to keep
            limits.start(key, req, _owner(req), self.protocol, now)
            raise ContinueException(block1)
        assembly = limits.append(key, block1.start, payload, now)
        if block1.more:
            raise ContinueException(block1)
        limits.drop(key)
        whole = assembly.request
        whole.payload = b"".join(assembly.chunks)
        whole.opt.block1 = block1  # the answer echoes the last block's option
        whole.token = req.token
        whole.mid = req.mid
        if req.opt.block2 is not None:
            whole.opt.block2 = req.opt.block2
        return whole


def _owner(req: Message) -> Hashable:
    """Whose upload this is, for the per-SIM cap: the SIM, else the remote itself."""
    sim_of = getattr(req.remote, "sim", None)
    sim = sim_of() if sim_of is not None else None
    return sim.iccid if sim is not None else req.remote.blockwise_key


def bound_block1(site: Any, limits: Block1Limits) -> int:
    """Give every resource of ``site`` (and of its sub-sites) a bounded Block1 spool; returns how
    many. A resource may name the protocol its refusals are counted under (``metrics_protocol``)."""
    count = 0
    for resource in [*site._resources.values(), *site._subsites.values()]:
        if hasattr(resource, "_resources"):
            count += bound_block1(resource, limits)
        elif hasattr(resource, "_block1"):
            resource._block1 = BoundedBlock1Spool(limits, getattr(resource, "metrics_protocol", "COAP"))
            count += 1
    return count
