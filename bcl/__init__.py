"""Binary Conversion Language (BCL): 1NCE Energy Saver templates.

A pure library (no I/O): validate a template, compile it once, translate
binary payloads into JSON, and encode JSON back into payloads.

    compiled = compile_template(template_json)      # cached by canonical JSON
    compiled.decode(payload)                         # -> dict, or TranslationError
    translate(compiled, payload)                     # -> Translation(value, locations)
    encode(template_json, values)                    # -> bytes, or NotInvertible
"""

from .compile import CompiledTemplate, canonical_json, clear_cache, compile_template
from .encode import encode, same_json
from .errors import BclError, EncodeError, NotInvertible, Problem, TemplateError, TranslationError
from .model import Template
from .translate import Translation, json_text, message_test, translate
from .validate import parse_template, validate

__all__ = [
    "BclError",
    "CompiledTemplate",
    "EncodeError",
    "NotInvertible",
    "Problem",
    "Template",
    "TemplateError",
    "Translation",
    "TranslationError",
    "canonical_json",
    "clear_cache",
    "compile_template",
    "decode",
    "encode",
    "json_text",
    "message_test",
    "parse_template",
    "same_json",
    "translate",
    "validate",
]


def decode(template: object, payload: bytes) -> dict:
    """Translate `payload` with `template` (compiled once and cached)."""
    return compile_template(template).decode(payload)  # type: ignore[arg-type]
