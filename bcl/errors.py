"""The error tree of the BCL codec.

Every error the codec raises on bad input is a `BclError`, so a caller (the
gateway pipeline, the API, the CLI) needs one ``except`` clause to keep a bad
template or payload from taking anything else down.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BclError",
    "Problem",
    "TemplateError",
    "TranslationError",
    "EncodeError",
    "NotInvertible",
]


class BclError(Exception):
    """Base of every error raised by the BCL codec."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule in a template: where (a JSON pointer) and which rule."""

    pointer: str
    message: str

    def __str__(self) -> str:
        # The root pointer is the empty string; show something a human can see.
        return f"{self.pointer or '(template)'}: {self.message}"


class TemplateError(BclError):
    """A template breaks one or more rules; `problems` lists every one of them."""

    def __init__(self, problems: list[Problem]):
        self.problems: list[Problem] = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        n = len(self.problems)
        head = f"invalid template: {n} problem{'s' if n != 1 else ''}"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])

    def __str__(self) -> str:
        return self._text()


class TranslationError(BclError):
    """A payload cannot be translated with a (valid) template.

    The text is 1NCE's: ``Asset path:<asset>, Error: <detail>``; the gateway puts
    it unchanged into the ERROR event's ``description``.
    """

    def __init__(self, asset_path: str, detail: str):
        self.asset_path = asset_path
        self.detail = detail
        super().__init__(f"Asset path:{asset_path}, Error: {detail}")

    @property
    def description(self) -> str:
        return str(self)


class EncodeError(BclError):
    """`encode` was called with arguments it cannot use (values not an object, ...)."""


class NotInvertible(EncodeError):
    """No payload decodes to the given values with this template (or none could be found)."""
