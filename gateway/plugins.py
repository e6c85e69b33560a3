"""Partner plugins: codecs and integrations found through the Python entry point group
``nce_gateway.plugins`` (docs/plugins.md).

A plugin is a Python distribution installed beside the gateway whose entry point names a
factory (a class or function, called without arguments) returning an object with

* ``kind``: ``"codec"`` or ``"integration"``;
* codec: ``decode(protocol, payload) -> dict | None``: the JSON value of a UDP/CoAP payload no
  Energy Saver template translated (None: not this codec's payload). The message is stored and
  delivered as a translated one, like a template's result;
* integration: ``on_event(envelope: dict) -> None``: every stored event's envelope, after its
  commit, on the event loop (must not block; best effort: a plugin that needs every event
  durably uses the outbox through a webhook instead);
* optional ``start()`` and ``stop()``.

The plugin's id is the entry point's name. A plugin that fails to load or start is FAILED with
the reason; ``restart`` tries again. ``uninstall`` stops it and keeps it off across restarts (the
Python package stays installed; ``restart`` installs it again). A plugin that raises while
decoding or taking an event is counted and logged once per kind of error; it never stops the
pipeline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from prometheus_client import Counter

from inspector import os_state
from inspector.committer import CommitObserver
from inspector.records import Pending

from .pipeline import Translation

log = logging.getLogger("nce.plugins")

GROUP = "nce_gateway.plugins"
KINDS = ("codec", "integration")
INSTALLED, FAILED, UNINSTALLED = "INSTALLED", "FAILED", "UNINSTALLED"


class PluginError(Exception):
    """A plugin request that cannot be done (unknown id)."""


@dataclass
class PluginState:
    id: str
    partner: str  # the distribution that provides it
    kind: str
    status: str
    created_ms: int
    updated_ms: int
    message: str | None
    instance: Any = None


class PluginHost(CommitObserver):
    """Loads the plugins, answers the plugin routes, and hands codecs and events to them."""

    def __init__(self, store: Any, write: Callable[..., Any], metrics_registry: Any,
                 discover: Callable[[], list[EntryPoint]] | None = None) -> None:
        self.store = store
        self.write = write
        self.discover = discover or (lambda: list(entry_points(group=GROUP)))
        self.plugins: dict[str, PluginState] = {}
        self._entry_points: dict[str, EntryPoint] = {}
        self.codecs: list[PluginState] = []
        self.integrations: list[PluginState] = []
        self._errors = Counter("nce_plugin_errors", "Exceptions raised by plugins while decoding or taking events",
                               ["plugin"], registry=metrics_registry)

    # life cycle -----------------------------------------------------------------------------

    def load(self) -> None:
        """Discover and start the plugins (blocking: stored states are read; at start-up)."""
        stored = os_state.plugin_states(self.store)
        for ep in self.discover():
            now = os_state.now_ms()
            status, created, updated, message = stored.get(ep.name, (INSTALLED, now, now, None))
            partner = ep.dist.name if ep.dist is not None else ep.module
            self._entry_points[ep.name] = ep
            state = PluginState(ep.name, partner, "", status, created, updated, message)
            self.plugins[ep.name] = state
            if status != UNINSTALLED:
                self._start(state)
            if ep.name not in stored or stored[ep.name][0] != state.status:
                os_state.set_plugin_state(self.store, ep.name, state.status, state.message)
        self._index()

    def _start(self, state: PluginState) -> None:
        try:
            instance = self._entry_points[state.id].load()()
            kind = getattr(instance, "kind", None)
            if kind not in KINDS:
                raise TypeError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
            needed = "decode" if kind == "codec" else "on_event"
            if not callable(getattr(instance, needed, None)):
                raise TypeError(f"a {kind} plugin needs a method {needed}()")
            if callable(getattr(instance, "start", None)):
                instance.start()
        except Exception as exc:  # a broken plugin must not stop the gateway
            state.status, state.message, state.instance = FAILED, f"{type(exc).__name__}: {exc}", None
            log.error("plugin failed to start", extra={"event": "plugin_failed", "plugin": state.id,
                                                        "reason": state.message})
            return
        state.kind, state.instance, state.status, state.message = kind, instance, INSTALLED, None
        # debug: the "gateway started" line lists the running plugins once
        log.debug("plugin started", extra={"event": "plugin_started", "plugin": state.id, "kind": kind})

    def _stop(self, state: PluginState) -> None:
        instance, state.instance = state.instance, None
        if instance is not None and callable(getattr(instance, "stop", None)):
            try:
                instance.stop()
            except Exception:
                log.exception("plugin %s failed to stop", state.id)

    def _index(self) -> None:
        running = [p for p in self.plugins.values() if p.instance is not None]
        self.codecs = [p for p in running if p.kind == "codec"]
        self.integrations = [p for p in running if p.kind == "integration"]

    def stop(self) -> None:
        for state in self.plugins.values():
            self._stop(state)
        self._index()

    def get(self, plugin_id: str) -> PluginState:
        state = self.plugins.get(plugin_id)
        if state is None:
            raise PluginError(f"no plugin {plugin_id!r}; installed: {', '.join(self.plugins) or 'none'}")
        return state

    async def restart(self, plugin_id: str) -> PluginState:
        state = self.get(plugin_id)
        self._stop(state)
        self._start(state)
        self._index()
        await self._save(state)
        return state

    async def uninstall(self, plugin_id: str) -> None:
        state = self.get(plugin_id)
        self._stop(state)
        state.status, state.message = UNINSTALLED, None
        self._index()
        await self._save(state)
        log.info("plugin uninstalled", extra={"event": "plugin_uninstalled", "plugin": plugin_id})

    async def _save(self, state: PluginState) -> None:
        await self.write(os_state.set_plugin_state, self.store, state.id, state.status, state.message)
        state.updated_ms = os_state.now_ms()

    # the data path --------------------------------------------------------------------------

    def decode(self, protocol: str, payload: bytes) -> Translation | None:
        for codec in self.codecs:
            try:
                value = codec.instance.decode(protocol, payload)
            except Exception as exc:
                self._errors.labels(codec.id).inc()
                return Translation(error=f"plugin {codec.id}: {type(exc).__name__}: {exc}")
            if value is not None:
                return Translation(value=value)
        return None

    def committed(self, batch: list[Pending], seconds: float) -> None:
        if not self.integrations:
            return
        for pending in batch:
            for event in pending.events:
                envelope = json.loads(event.body)
                for plugin in self.integrations:
                    try:
                        plugin.instance.on_event(envelope)
                    except Exception:
                        self._errors.labels(plugin.id).inc()
                        log.debug("plugin %s failed on an event", plugin.id, exc_info=True)


class PluginTranslator:
    """The pipeline's translator: Energy Saver templates first, then codec plugins."""

    def __init__(self, templates: Any, plugins: PluginHost) -> None:
        self.templates = templates
        self.plugins = plugins

    def translate(self, protocol: str, payload: bytes) -> Translation | None:
        translation = self.templates.translate(protocol, payload)
        if translation is not None or not self.plugins.codecs:
            return translation
        return self.plugins.decode(protocol, payload)
