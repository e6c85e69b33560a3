"""Compile a template once, translate many payloads.

`compile_template` validates a template and generates its decoder; results
are cached by the template's canonical JSON, so the gateway may call it for
every message and still compile each template only once until it changes.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from threading import Lock
from collections.abc import Callable
from typing import Any

from .codegen import GeneratedDecoder, Slow, generate
from .model import Template
from .reference import decode_reference
from .validate import load_json, parse_template

__all__ = ["CompiledTemplate", "compile_template", "canonical_json", "clear_cache", "CACHE_SIZE"]

CACHE_SIZE = 256
#: the cache is also bounded by the templates' size: compiled code takes about ten times the
#: template's JSON text, so 4 Mi characters of templates hold roughly 40 MB of compiled code.
#: A template larger than this on its own is compiled and not cached.
CACHE_CHARS = 4 * 1024 * 1024


def canonical_json(obj: Any) -> str:
    """Key-sorted compact JSON: two spellings of one template give one text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class CompiledTemplate:
    """A validated template with its generated decoder.

    Immutable by convention; `decode` is a plain function stored on the
    instance (no method-call layer on the hot path).
    """

    __slots__ = ("template", "canonical", "_decoder", "decode", "decode_with_locations")

    def __init__(self, template: Template, canonical: str | None, decoder: GeneratedDecoder):
        self.template = template
        self.canonical = canonical
        self._decoder = decoder
        self.decode, self.decode_with_locations = _entry_points(template, decoder)

    @property
    def source(self) -> str:
        """The generated Python source (for debugging and docs)."""
        return self._decoder.source

    def decode_reference(self, payload: bytes) -> dict:
        """The same translation by the slow reference decoder (tests, debugging)."""
        return decode_reference(self.template, bytes(payload))[0]


def _entry_points(template: Template, decoder: GeneratedDecoder) -> tuple[Callable, Callable]:
    """`decode(payload) -> dict` and `decode_with_locations(payload) -> (dict, dict | None)`.

    Both raise only BclError subclasses: the generated code raises Slow (or a
    UnicodeDecodeError) for anything it does not translate, and the
    reference decoder then raises the exact TranslationError.
    """
    func = decoder.func
    slow_errors = (Slow, UnicodeDecodeError)

    if decoder.with_locations:

        def decode_with_locations(payload: bytes) -> tuple[dict, dict | None]:
            if type(payload) is not bytes:
                payload = bytes(payload)
            try:
                out, loc = func(payload)
            except slow_errors:
                out, loc = decode_reference(template, payload)
            return out, (loc or None)

        def decode(payload: bytes) -> dict:
            return decode_with_locations(payload)[0]

    else:

        def decode(payload: bytes) -> dict:
            if type(payload) is not bytes:
                payload = bytes(payload)
            try:
                return func(payload)
            except slow_errors:
                return decode_reference(template, payload)[0]

        def decode_with_locations(payload: bytes) -> tuple[dict, dict | None]:
            return decode(payload), None

    return decode, decode_with_locations


class _LRU:
    """A small thread-safe LRU map (the gateway may translate from threads)."""

    def __init__(self, size: int, max_chars: int = CACHE_CHARS):
        self.size = size
        self.max_chars = max_chars
        self.chars = 0
        self.data: OrderedDict[str, CompiledTemplate] = OrderedDict()
        self.lock = Lock()

    def get(self, key: str) -> CompiledTemplate | None:
        with self.lock:
            hit = self.data.get(key)
            if hit is not None:
                self.data.move_to_end(key)
            return hit

    def put(self, key: str, value: CompiledTemplate) -> None:
        if len(key) > self.max_chars:
            return
        with self.lock:
            if key not in self.data:
                self.chars += len(key)
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.size or self.chars > self.max_chars:
                old, _ = self.data.popitem(last=False)
                self.chars -= len(old)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()
            self.chars = 0


_by_canonical = _LRU(CACHE_SIZE)
_by_text = _LRU(CACHE_SIZE)


def _build(model: Template, canonical: str | None) -> CompiledTemplate:
    return CompiledTemplate(model, canonical, generate(model))


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

