"""The connectivity service in a CLI process, so ``nce-gateway sims topup|extend|imei-lock`` take
the code path of the API (the same checks, store writes and network events).

The CLI's own service works on the store: the SIM directory, the connectivity states and the
integrations' routes are read from it at start, its writes go through a group committer that is
flushed before the command returns. The running gateway then follows the changed rows (the
command's :func:`~gateway.commands.in_force` asks it to at once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from inspector.committer import GroupCommitter
from integrators.manager import StoreRouter

from ..config import GatewayConfig
from ..connectivity.service import ConnectivityService
from ..identity import SimRegistry
from ..metrics import Metrics


@asynccontextmanager
async def cli_connectivity(config: GatewayConfig, store: Any) -> AsyncIterator[ConnectivityService]:
    """A loaded :class:`ConnectivityService` on ``store``; everything it wrote is committed on exit."""
    registry = SimRegistry(store)
    registry.reload()
    registry.load_bindings()
    committer = GroupCommitter(store)
    committer.start()
    c = config.connectivity

    async def read(fn: Any, *args: Any) -> Any:
        return store.read_with(fn, *args)

    service = ConnectivityService(registry, committer, StoreRouter(store), Metrics(), store=store,
                                  data_quota_mb=c.data_quota_mb, sms_quota=c.sms_quota,
                                  lifetime_years=c.lifetime_years, secrets=config.radius.clients,
                                  disconnect_port=config.radius.disconnect_port, store_read=read)
    service.load()
    try:
        yield service
    finally:
        await service.stop()
        await committer.stop()
