"""All integrations of a running gateway: config-file and API ones side by side.

The manager keeps the in-memory routing table the pipeline asks on every event, runs one
delivery worker per integration, and follows changes made in the store by other processes
(``nce-gateway integrations restart``) or by the API.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from gateway import events
from gateway.config import ALL_EVENT_TYPES, EVENT_TYPES, GatewayConfig, WebhookConfig
from inspector.committer import CommitObserver
from inspector.records import Pending

from .aws_iot_data import AwsIotDataSender, AwsIotDataSettings
from .aws_mqtt import AwsMqttSender, AwsMqttSettings
from .base import (INTEGRATION_ACTIVE, INTEGRATION_FAILED, ROLLOUT_DONE, ROLLOUT_FAILED, ROLLOUT_STARTED, Sender,
                   SenderContext)
from .webhook import WebhookSender, WebhookSettings
from .worker import DeliveryWorker, IntegrationHandle

log = logging.getLogger("nce.integrations")

#: builds the sender of one integration from its stored config
SenderFactory = Callable[[dict[str, Any], SenderContext], Sender]

#: states in which an integration has no worker and gets no events routed (waiting for set-up)
NOT_RUNNING = (ROLLOUT_STARTED, ROLLOUT_FAILED)


#: how long a worker (and its sender) may take to stop before a restart goes on without it
WORKER_STOP_SECONDS = 10.0


#: integrations whose worker did not stop in time and was abandoned, in order; a test that
#: abandons one fails (tests/conftest.py), so a stop that hangs is a failure, not a slow test
ABANDONED: list[str] = []


async def stop_worker(worker: Any, timeout: float = WORKER_STOP_SECONDS) -> None:
    """Stop a worker, but never let a stuck sender hold up a restart or a shutdown: after
    ``timeout`` the stop is cancelled and abandoned (logged). Waiting for the cancellation too
    (as ``asyncio.wait_for`` does) would hang on a task that does not end when cancelled."""
    task = asyncio.ensure_future(worker.stop())
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        ABANDONED.append(worker.handle.name)
        log.error("integration %s did not stop within %g s; going on without it", worker.handle.name, timeout,
                  extra={"event": "integration_stop_timeout", "integration": worker.handle.name})
    elif not task.cancelled() and task.exception() is not None:
        log.error("stopping integration %s failed: %s", worker.handle.name, task.exception(),
                  extra={"event": "integration_stop_failed", "integration": worker.handle.name})


def webhook_sender(config: dict[str, Any], context: SenderContext | None = None) -> Sender:
    return WebhookSender(WebhookSettings(
        url=config["url"], headers=dict(config.get("headers") or {}), ca_file=config.get("ca_file"),
        cert_file=config.get("cert_file"), key_file=config.get("key_file"),
        timeout_seconds=float(config.get("timeout_seconds", 20.0)),
        connect_timeout_seconds=float(config.get("connect_timeout_seconds", 10.0)),
        tls_timeout_seconds=float(config.get("tls_timeout_seconds", 10.0)),
        concurrency=int(config.get("concurrency", 64)),
        targets=context.targets if context is not None else None), context)


def aws_mqtt_sender(config: dict[str, Any], context: SenderContext) -> Sender:
    return AwsMqttSender(AwsMqttSettings.from_config(context.name, config), context)


def aws_iot_data_sender(config: dict[str, Any], context: SenderContext) -> Sender:
    return AwsIotDataSender(AwsIotDataSettings.from_config(config), context)


SENDERS: dict[str, SenderFactory] = {"webhook": webhook_sender, "aws_mqtt": aws_mqtt_sender,
                                     "aws_iot_data": aws_iot_data_sender}


def webhook_config(hook: WebhookConfig) -> dict[str, Any]:
    config = dataclasses.asdict(hook)
    config.pop("name")
    return config


def handle_from_row(row: dict[str, Any]) -> IntegrationHandle:
    config = row["config"]
    return IntegrationHandle(id=row["id"], uuid=row["uuid"], name=row["name"], kind=row["kind"],
                             origin=row["origin"], state=row["state"], config=config,
                             event_types=frozenset(config.get("event_types") or EVENT_TYPES),
                             restarts=row.get("restarts", 0))


def routing_table(handles: Iterable[IntegrationHandle]) -> dict[str, tuple[int, ...]]:
    """Event type → ids of the running integrations that take it (the pipeline's routes; also
    what a CLI process that emits events computes from the store)."""
    handles = list(handles)
    return {t: tuple(h.id for h in handles if t in h.event_types and h.state not in NOT_RUNNING)
            for t in ALL_EVENT_TYPES}


class StoreRouter:
    """The routes of the integrations in the store, read once (a short-lived CLI process)."""

    def __init__(self, store: Any) -> None:
        self._routes = routing_table(handle_from_row(row) for row in store.list_integrations())

    def routes(self, event_type: str) -> tuple[int, ...]:
        return self._routes.get(event_type, ())


class IntegrationManager(CommitObserver):
    def __init__(self, store: Any, *, read: Callable[..., Awaitable[Any]], write: Callable[..., Awaitable[Any]],
                 emit: Callable[[Any], None], metrics: Any, senders: dict[str, SenderFactory] | None = None,
                 targets: Any = None) -> None:
        self.store = store
        self.targets = targets  # integrators.targets.TargetPolicy for the senders
        self.read = read
        self.write = write
        self.emit = emit
        self.metrics = metrics
        self.senders = dict(SENDERS if senders is None else senders)
        self.workers: dict[int, DeliveryWorker] = {}
        self._routes: dict[str, tuple[int, ...]] = {t: () for t in ALL_EVENT_TYPES}
        self.version = -1
        self._reloading = asyncio.Lock()
        #: asks whether this process may deliver an integration (its lease, gateway/duties.py);
        #: None: always (one process on the store)
        self.claim: Callable[[int], Awaitable[bool]] | None = None
        self._deliverable: tuple[int, ...] = ()
        #: other processes of this gateway may be delivering (``[process] workers`` > 1)
        self.shared = False

    # the pipeline's question -------------------------------------------------------------

    def routes(self, event_type: str) -> tuple[int, ...]:
        return self._routes.get(event_type, ())

    def committed(self, batch: list[Pending], seconds: float) -> None:
        woken: set[int] = set()
        for pending in batch:
            for event in pending.events:
                woken.update(event.routes)
        for integration_id in woken:
            worker = self.workers.get(integration_id)
            if worker is not None:
                worker.notify()

    # life cycle --------------------------------------------------------------------------

    def sync_config(self, config: GatewayConfig) -> None:
        """Make the store's config-file integrations match the file (blocking; at start-up)."""
        wanted = {hook.name: ("webhook", webhook_config(hook)) for hook in config.webhooks}
        wanted.update({aws.name: (aws.kind, aws.stored()) for aws in config.aws_integrations})
        for row in self.store.list_integrations():
            if row["origin"] == "config" and row["name"] not in wanted:
                log.warning("integration %s is no longer in the config file; removing it and its queue",
                            row["name"])
                self.store.delete_integration(row["id"])
        for name, (kind, integration_config) in wanted.items():
            self.store.upsert_integration(uuid=str(uuidlib.uuid4()), name=name, kind=kind, origin="config",
                                          config=integration_config, state=ROLLOUT_DONE)

    async def start(self) -> None:
        await self.reload()

    async def stop(self) -> None:
        await asyncio.gather(*(stop_worker(w) for w in self.workers.values()), return_exceptions=True)
        self.workers.clear()

    async def reload(self) -> None:
        """Bring workers and routes in line with the store (one reload at a time: the follower,
        the API and start-up may ask at once, and two would start two workers)."""
        async with self._reloading:
            await self._reload()

    async def _reload(self) -> None:
        version = await self.read(self.store.integrations_version)
        rows = await self.read(self.store.list_integrations)
        handles = {row["id"]: handle_from_row(row) for row in rows}
        for integration_id in list(self.workers):
            if integration_id not in handles:
                await stop_worker(self.workers.pop(integration_id))
        for integration_id, handle in handles.items():
            worker = self.workers.get(integration_id)
            if worker is None:
                await self._start_worker(handle)
                continue
            restarted = handle.restarts != worker.handle.restarts or (
                worker.handle.state == INTEGRATION_FAILED and handle.state != INTEGRATION_FAILED)
            if restarted or handle.config != worker.handle.config or handle.kind != worker.handle.kind:
                # a new worker and sender: attempts from the store (reset by a restart), the
                # certificate files read again, no in-memory state of the previous round
                if restarted:
                    log.info("integration %s restarted", handle.name,
                             extra={"event": "integration_restarted", "integration": handle.name})
                await stop_worker(self.workers.pop(integration_id))
                await self._start_worker(handle)
            worker = self.workers.get(integration_id)
            if worker is not None:
                worker.handle.name = handle.name
        self._routes = routing_table(handles.values())
        self._deliverable = tuple(i for i, h in handles.items() if h.state not in NOT_RUNNING and h.kind in self.senders)
        self.version = version

    async def _start_worker(self, handle: IntegrationHandle) -> None:
        if handle.state in NOT_RUNNING:
            return  # e.g. an AWS integration created through the API without connection details yet
        factory = self.senders.get(handle.kind)
        if factory is None:
            log.error("integration %s has unknown kind %s; not delivering", handle.name, handle.kind)
            return
        if self.claim is not None and not await self.claim(handle.id):
            return  # another process delivers it (its lease); this one takes over if that one dies
        if handle.state != INTEGRATION_FAILED and handle.state != INTEGRATION_ACTIVE:
            await self.write(self.store.set_integration_state, handle.id, INTEGRATION_ACTIVE)
            handle.state = INTEGRATION_ACTIVE
        context = SenderContext(name=handle.name, metrics=self.metrics, emit=self.emit, targets=self.targets)
        try:
            sender = factory(handle.config, context)
        except (KeyError, ValueError, TypeError) as exc:
            log.error("integration %s has an unusable config (%s); not delivering", handle.name, exc)
            return
        worker = DeliveryWorker(handle, sender, store=self.store, read=self.read,
                                write=self.write, emit=self.emit, metrics=self.metrics,
                                concurrency=int(handle.config.get("concurrency", 64)))
        self.metrics.integration_state.labels(handle.name).set(1 if handle.state == INTEGRATION_FAILED else 0)
        self.workers[handle.id] = worker
        worker.start()

    def handle_of(self, row: dict[str, Any]) -> IntegrationHandle | None:
        """The handle to queue a test message with: this process's worker's, or, when another
        worker process may be delivering it, one read from the store's row (None: nobody can)."""
        worker = self.workers.get(row["id"])
        if worker is not None:
            return worker.handle
        if self.shared and row["kind"] in self.senders and row["state"] not in NOT_RUNNING:
            return handle_from_row(row)
        return None

    def deliverable(self) -> tuple[int, ...]:
        """The integrations some process should be delivering (as of the last reload)."""
        return self._deliverable

    async def drop(self, integration_id: int) -> None:
        """Stop delivering one integration here (its lease went to another process)."""
        async with self._reloading:
            worker = self.workers.pop(integration_id, None)
            if worker is not None:
                log.warning("integration %s: delivery handed over to another process", worker.handle.name,
                            extra={"event": "delivery_handed_over", "integration": worker.handle.name})
                await stop_worker(worker)

    # operations --------------------------------------------------------------------------

    async def restart(self, integration_id: int) -> None:
        """INTEGRATION_ACTIVE with a clean slate: every waiting event from attempt 1, a new sender
        (certificates read again); delivery resumes in outbox order."""
        await self.write(self.store.set_integration_state, integration_id, INTEGRATION_ACTIVE, True)
        await self.reload()

    def send_test(self, handle: IntegrationHandle, created_ms: int) -> str:
        """Queue a TEST_MESSAGE for this integration only; returns the event id."""
        event = events.test_message(created_ms, handle.uuid, handle.name, routes=(handle.id,))
        self.emit(event)
        return event.event_id
