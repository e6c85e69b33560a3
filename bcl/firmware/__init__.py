"""Firmware encoders generated from a template: C99 for devices, Python for emulators.

    files = generate(template, "c", prefix="sensor")   # {"sensor.h": ..., "sensor.c": ...}
    files = generate(template, "python", prefix="sensor")   # {"sensor.py": ...}

Both follow one plan (`bcl.firmware.plan`), made from the search encoder's execution paths,
so the device packs exactly the bytes the gateway's decoder reads; a layout the plan cannot
encode correctly raises `CodegenRefused` instead of giving wrong code. (The package is not
called ``bcl.codegen``: that module is the gateway's fast *decoder* generator.)
"""

from __future__ import annotations

import re
from typing import Any

from ..compile import compile_template
from .c import driver_c, generate_c
from .plan import CodegenRefused, Plan, identifier, plan_for
from .python import generate_python

__all__ = ["CodegenRefused", "LANGUAGES", "generate", "plan_of", "default_prefix", "driver_c"]

LANGUAGES = ("c", "python")


def plan_of(template: Any) -> Plan:
    """Validate `template` (TemplateError) and plan its encoder (CodegenRefused)."""
    return plan_for(compile_template(template).template)


def default_prefix(template: Any, fallback: str = "template") -> str:
    """A name for the generated files: the template's name, else `fallback`."""
    name = compile_template(template).template.name or fallback
    return identifier(re.sub(r"\W+", "_", name).lower())


def generate(template: Any, lang: str, prefix: str | None = None) -> dict[str, str]:
    """The generated files, by file name."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r} (expected {' or '.join(LANGUAGES)})")
    plan = plan_of(template)
    prefix = identifier(prefix or default_prefix(template))
    if lang == "c":
        return generate_c(plan, prefix)
    return {f"{prefix}.py": generate_python(plan, prefix)}
