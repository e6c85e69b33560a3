"""The functions behind ``nce-gateway template validate|test``.

They return ``(exit_code, text)`` instead of printing, so the gateway's CLI
(and tests) decide where the text goes.  Success: exit 0 and JSON.  Failure:
exit 1 and every problem, one per line.
"""

from __future__ import annotations

import json
from pathlib import Path

from .compile import compile_template
from .errors import TemplateError, TranslationError
from .model import Mapping, Statement, Switch
from .translate import message_test

__all__ = ["validate_file", "test_file"]


def _read(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8")


def _assets(stmts: tuple[Statement, ...], acc: list[str]) -> list[str]:
    for st in stmts:
        if isinstance(st, Mapping):
            if st.asset not in acc:
                acc.append(st.asset)
        elif isinstance(st, Switch):
            for case in (*st.cases, *((st.default,) if st.default else ())):
                _assets(case.do, acc)
    return acc


def validate_file(path: str | Path) -> tuple[int, str]:
    """Validate a template file: a JSON summary (exit 0) or every problem (exit 1)."""
    try:
        compiled = compile_template(_read(path))
    except OSError as e:
        return 1, f"cannot read {path}: {e.strerror or e}"
    except UnicodeDecodeError as e:
        return 1, f"cannot read {path}: not UTF-8 text ({e.reason} at byte {e.start})"
    except TemplateError as e:
        return 1, str(e)
    t = compiled.template
    summary = {
        "valid": True,
        "name": t.name,
        "version": t.version,
        "assets": _assets(t.sense, []),
    }
    return 0, json.dumps(summary, indent=2, ensure_ascii=False)


def test_file(path: str | Path, payload: bytes) -> tuple[int, str]:
    """Translate `payload` with a template file.

    Exit 0 with ``{"translatedPayload": <the JSON object>, "reducedBytes": n,
    "energyUsageReduction": mWh}`` (the API returns the payload as a string;
    here it is shown as an object to be readable), or exit 1 with the
    template's problems or the translation error as the gateway reports it.
    """
    try:
        text = _read(path)
    except OSError as e:
        return 1, f"cannot read {path}: {e.strerror or e}"
    except UnicodeDecodeError as e:
        return 1, f"cannot read {path}: not UTF-8 text ({e.reason} at byte {e.start})"
    try:
        result = message_test(text, payload)
    except TemplateError as e:
        return 1, str(e)
    except TranslationError as e:
        return 1, f"Translator[UserPayloadError]: {e}"
    result["translatedPayload"] = json.loads(result["translatedPayload"])
    return 0, json.dumps(result, indent=2, ensure_ascii=False)


# pytest would otherwise collect `test_file` as a test when a test module imports it.
test_file.__test__ = False  # type: ignore[attr-defined]
