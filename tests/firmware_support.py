"""Helpers of the generated-encoder tests: build the C driver with gcc, derive struct values from
a payload the decoder translated, and compare what both encoders give."""

from __future__ import annotations

import itertools
import math
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bcl import compile_template
from bcl.fields import field_for
from bcl.firmware import driver_c, generate
from bcl.firmware.plan import Field, Plan
from bcl.model import Constant, Mapping, Selector, Statement
from bcl.reference import branch_for, read_selector

CFLAGS = ["-Wall", "-Wextra", "-Werror", "-pedantic", "-std=c99"]
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (apt-get install gcc)")


def build_driver(template: Any, plan: Plan, workdir: Path, prefix: str = "enc") -> Path:
    """Write the generated C and the test driver to `workdir`, compile them strictly, return the binary."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in generate(template, "c", prefix).items():
        (workdir / name).write_text(text)
    (workdir / "driver.c").write_text(driver_c(plan, prefix))
    binary = workdir / "driver"
    result = subprocess.run(["gcc", *CFLAGS, "-o", str(binary), str(workdir / "driver.c"), str(workdir / f"{prefix}.c")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return binary


def run_driver(binary: Path, lines: list[str]) -> list[str]:
    result = subprocess.run([str(binary)], input="".join(line + "\n" for line in lines), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


_loaded = itertools.count()


def load_python(template: Any, prefix: str = "enc") -> dict[str, Any]:
    """Import the generated Python module (registered under a fresh name: dataclasses look it up)."""
    name = f"_generated_encoder_{next(_loaded)}"
    module = types.ModuleType(name)
    sys.modules[name] = module
    source = generate(template, "python", prefix)[f"{prefix}.py"]
    exec(compile(source, f"{prefix}.py", "exec"), module.__dict__)  # noqa: S102 - our own generated module
    return module.__dict__


# -- values -------------------------------------------------------------------------------------------

def _native(fld: Field, value: Any) -> Any:
    """A JSON value as the field holds it (float null is NaN, hex is bytes)."""
    if fld.family == "float":
        return math.nan if value is None else float(value)
    if fld.family == "hex":
        return bytes.fromhex(value)
    return value


def _blank(fld: Field) -> Any:
    return {"int": 0, "float": 0.0, "bool": False, "string": "\0" * (fld.width or 0),
            "hex": bytes(fld.width or 0)}[fld.family]


def values_from_payload(template: Any, plan: Plan, payload: bytes) -> tuple[dict[str, Any], bool]:
    """The struct values a device would fill to send what `payload` translates to, and whether
    every read on the decoder's path gives back its own bytes (else bytes two reads share may
    legitimately conflict: a boolean read from 0x05, a NaN with a payload)."""
    model = compile_template(template).template
    values = {fld.name: _blank(fld) for fld in plan.fields}
    canonical = True

    def run(stmts: tuple[Statement, ...]) -> None:
        nonlocal canonical
        for st in stmts:
            sel = st.value if isinstance(st, Mapping) else st.selector
            value = read_selector(sel, payload, "x")
            if isinstance(sel, Selector):
                fld = plan.by_pointer[st.pointer]
                values[fld.name] = _native(fld, value)
                canonical = canonical and _reads_back(sel, payload, value)
            if not isinstance(st, Mapping):
                case = branch_for(st, value) if not isinstance(sel, Constant) else branch_for(st, sel.value)
                if case is not None:
                    run(case.do)

    run(model.sense)
    return values, canonical


def _reads_back(sel: Selector, payload: bytes, value: Any) -> bool:
    from bcl.reference import resolve_range
    a, b = resolve_range(sel, len(payload))
    fld = field_for(sel.type, b - a, sel.byteorder)
    if value is None:
        return False
    if sel.type.value in ("string", "hex"):
        return True
    return fld.build(value) == payload[a:b]  # type: ignore[union-attr]


def driver_line(plan: Plan, values: dict[str, Any]) -> str:
    tokens = []
    for fld in plan.fields:
        v = values[fld.name]
        if fld.family == "int":
            tokens.append(str(v))
        elif fld.family == "float":
            tokens.append("nan" if math.isnan(v) else float.__repr__(v))
        elif fld.family == "bool":
            tokens.append("1" if v else "0")
        else:
            raw = v.encode("utf-8", "surrogatepass") if isinstance(v, str) else bytes(v)
            tokens.append(raw.hex() or "-")
    return " ".join(tokens)


def python_values(module: dict[str, Any], values: dict[str, Any]) -> Any:
    return module["Values"](**values)


def python_outcome(module: dict[str, Any], values: dict[str, Any]) -> str:
    """What the generated Python encoder gives, in the driver's words (hex, or ``error N``)."""
    try:
        return module["encode"](python_values(module, values)).hex()
    except module["EncodeError"] as exc:
        return f"error {exc.code}"
