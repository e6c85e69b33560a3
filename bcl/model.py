"""Typed, immutable form of a validated BCL template.

Only `bcl.validate` builds these objects, so code that receives a `Template`
can rely on every rule of the language holding (lengths allowed for the type,
byte ranges well formed, at most one default per switch, ...).  Each node keeps
the JSON pointer of its place in the template text for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Union

__all__ = [
    "ValueType",
    "ALLOWED_LENGTHS",
    "NUMERIC_TYPES",
    "LOCATION_TYPES",
    "MAX_SWITCH_DEPTH",
    "MAX_ASSET_DEPTH",
    "MAX_OFFSET",
    "Selector",
    "Constant",
    "Mapping",
    "Case",
    "Switch",
    "Statement",
    "Template",
]


class ValueType(str, Enum):
    """The `type` of a selector."""

    INT = "int"
    UINT = "uint"
    FLOAT = "float"
    BOOLEAN = "boolean"
    STRING = "string"
    HEX = "hex"


# Byte lengths each type can be read from; None means any length >= 1.
ALLOWED_LENGTHS: dict[ValueType, tuple[int, ...] | None] = {
    ValueType.INT: (1, 2, 4, 8),
    ValueType.UINT: (1, 2, 4, 8),
    ValueType.FLOAT: (4, 8),
    ValueType.BOOLEAN: (1,),
    ValueType.STRING: None,
    ValueType.HEX: None,
}

NUMERIC_TYPES = frozenset({ValueType.INT, ValueType.UINT, ValueType.FLOAT})

# custom_type values and the key they take in `Translation.locations`.
LOCATION_TYPES: dict[str, str] = {"location_lat": "lat", "location_long": "long"}

# Limits that keep a hostile template from exhausting the stack of the
# validator, the compiled decoder or the JSON encoder.
MAX_SWITCH_DEPTH = 32
MAX_ASSET_DEPTH = 64
# byte, bytelength and -endbyte; far beyond any payload, small enough to print.
MAX_OFFSET = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Selector:
    """Reads bytes of the payload and turns them into a JSON value.

    Exactly one of three range forms holds:
    - ``byte`` set, ``endbyte`` None: ``[byte, byte + bytelength)``;
    - ``byte`` and ``endbyte`` set: ``[byte, len + endbyte)``, ``bytelength`` None;
    - ``byte`` None, ``endbyte`` set: ``[len + endbyte, len + endbyte + bytelength)``.
    """

    type: ValueType
    byte: int | None
    endbyte: int | None
    bytelength: int | None
    byteorder: str  # "big" or "little"
    pointer: str
    comment: str | None = None

    @property
    def is_fixed(self) -> bool:
        """True when the range does not depend on the payload's length."""
        return self.endbyte is None

    @property
    def is_span(self) -> bool:
        """True for ``byte`` + ``endbyte``: the length follows the payload's."""
        return self.byte is not None and self.endbyte is not None


@dataclass(frozen=True, slots=True)
class Constant:
    """A string selector: the value is the string itself, no byte is read."""

    value: str
    pointer: str


@dataclass(frozen=True, slots=True)
class Mapping:
    """``{"asset": "a.b", "value": ...}``: puts one value into the output."""

    asset: str
    path: tuple[str, ...]
    value: Union[Selector, Constant]
    pointer: str
    custom_type: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Case:
    """One entry of a switch's ``on`` list; ``value`` is None for the default."""

    value: int | float | str | None
    is_default: bool
    do: tuple["Statement", ...]
    pointer: str
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Switch:
    """``{"switch": ..., "on": [...]}``: runs the first equal case, else the default."""

    selector: Union[Selector, Constant]
    cases: tuple[Case, ...]  # the non-default entries, in template order
    default: Case | None
    pointer: str
    comment: str | None = None

    @property
    def selector_pointer(self) -> str:
        return f"{self.pointer}/switch"


Statement = Union[Mapping, Switch]


@dataclass(frozen=True, slots=True)
class Template:
    sense: tuple[Statement, ...]
    name: str | None = None
    comment: str | None = None
    version: str | None = None
