"""Compile a template once, translate many payloads.

`compile_template` validates a template and generates its decoder; results
are cached by the template's canonical JSON, so the gateway may call it for
every message and still compile each template only once until it changes.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from typing import Any

from .codegen import GeneratedDecoder, Slow, generate
from .model import Template
from .reference import decode_reference
from .validate import load_json, parse_template

__all__ = ["CompiledTemplate", "compile_template", "canonical_json", "clear_cache", "CACHE_SIZE"]

CACHE_SIZE = 256


def canonical_json(obj: Any) -> str:
    """Key-sorted compact JSON: two spellings of one template give one text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True, eq=False)
class CompiledTemplate:
    """A validated template with its generated decoder."""

    template: Template
    canonical: str | None
    _decoder: GeneratedDecoder

    @property
    def source(self) -> str:
        """The generated Python source (for debugging and docs)."""
        return self._decoder.source

    def decode_with_locations(self, payload: bytes) -> tuple[dict, dict | None]:
        """(JSON object, location values or None); raises only BclError subclasses."""
        if type(payload) is not bytes:
            payload = bytes(payload)
        try:
            out, loc = self._decoder.func(payload)
        except (Slow, UnicodeDecodeError):
            out, loc = decode_reference(self.template, payload)
        return out, (loc or None)

    def decode(self, payload: bytes) -> dict:
        """The translated JSON object of `payload`."""
        return self.decode_with_locations(payload)[0]

    def decode_reference(self, payload: bytes) -> dict:
        """The same translation by the slow reference decoder (tests, debugging)."""
        return decode_reference(self.template, bytes(payload))[0]


class _LRU:
    """A small thread-safe LRU map (the gateway may translate from threads)."""

    def __init__(self, size: int):
        self.size = size
        self.data: OrderedDict[str, CompiledTemplate] = OrderedDict()
        self.lock = Lock()

    def get(self, key: str) -> CompiledTemplate | None:
        with self.lock:
            hit = self.data.get(key)
            if hit is not None:
                self.data.move_to_end(key)
            return hit

    def put(self, key: str, value: CompiledTemplate) -> None:
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()


_by_canonical = _LRU(CACHE_SIZE)
_by_text = _LRU(CACHE_SIZE)


def _build(model: Template, canonical: str | None) -> CompiledTemplate:
    return CompiledTemplate(template=model, canonical=canonical, _decoder=generate(model))


def _compile_object(obj: Any) -> CompiledTemplate:
    try:
        canonical = canonical_json(obj)
    except (TypeError, ValueError, RecursionError):
        canonical = None  # not JSON-able: validation will say why
    if canonical is not None:
        hit = _by_canonical.get(canonical)
        if hit is not None:
            return hit
    compiled = _build(parse_template(obj), canonical)
    if canonical is not None:
        _by_canonical.put(canonical, compiled)
    return compiled


def compile_template(template: str | bytes | dict | Template | CompiledTemplate) -> CompiledTemplate:
    """Validate and compile `template` (JSON text, parsed JSON, or a model).

    Cached: the same template (by canonical JSON) is compiled once.  Raises
    TemplateError with every problem if the template is invalid.
    """
    if isinstance(template, CompiledTemplate):
        return template
    if isinstance(template, Template):
        return _build(template, None)
    if isinstance(template, (str, bytes, bytearray)):
        key = template if isinstance(template, str) else bytes(template).decode("utf-8", "surrogateescape")
        hit = _by_text.get(key)
        if hit is not None:
            return hit
        compiled = _compile_object(load_json(template))
        _by_text.put(key, compiled)
        return compiled
    return _compile_object(template)


def clear_cache() -> None:
    _by_canonical.clear()
    _by_text.clear()

