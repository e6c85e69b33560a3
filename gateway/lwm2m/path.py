"""LwM2M paths: ``/`` (root), ``/O``, ``/O/I``, ``/O/I/R`` and ``/O/I/R/RI``.

Paths are small immutable values, hashable and ordered numerically (``/3/0/10`` sorts
after ``/3/0/9``), so codecs can sort and group them without reparsing strings.
"""

from __future__ import annotations

from functools import total_ordering
from typing import Iterator

from .errors import PathError

MAX_ID = 65535
MAX_DEPTH = 4
_MAX_TEXT = 64  # "/65535/65535/65535/65535" is 24 characters; anything longer is junk


@total_ordering
class LwM2MPath:
    """An object, object instance, resource or resource instance address."""

    __slots__ = ("ids",)
    ids: tuple[int, ...]

    def __init__(self, *ids: int) -> None:
        if len(ids) > MAX_DEPTH:
            raise PathError(f"path has {len(ids)} levels; at most {MAX_DEPTH} are allowed")
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int):
                raise PathError(f"path id {i!r} is not an integer")
            if not 0 <= i <= MAX_ID:
                raise PathError(f"path id {i} is out of range 0..{MAX_ID}")
        object.__setattr__(self, "ids", tuple(ids))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("LwM2MPath is immutable")

    # -- parsing and formatting -------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> "LwM2MPath":
        """Parse ``"/3/0/1"``; ``"/"`` is the root. No trailing slash, no empty segment."""
        if not isinstance(text, str):
            raise PathError(f"path {text!r} is not a string")
        if len(text) > _MAX_TEXT:
            raise PathError(f"path {text[:_MAX_TEXT]!r}... is too long")
        if text == "/":
            return cls()
        if not text.startswith("/"):
            raise PathError(f"path {text!r} must start with '/'")
        parts = text[1:].split("/")
        if len(parts) > MAX_DEPTH:
            raise PathError(f"path {text!r} has {len(parts)} levels; at most {MAX_DEPTH} are allowed")
        ids = []
        for part in parts:
            if not part:
                raise PathError(f"path {text!r} has an empty segment")
            if not (part.isascii() and part.isdigit()):
                raise PathError(f"path {text!r}: segment {part!r} is not a decimal id")
            value = int(part)
            if value > MAX_ID:
                raise PathError(f"path {text!r}: id {value} is out of range 0..{MAX_ID}")
            ids.append(value)
        return cls(*ids)

    @classmethod
    def of(cls, value: "LwM2MPath | str") -> "LwM2MPath":
        """Accept a path or its string form, so public functions take either."""
        if isinstance(value, LwM2MPath):
            return value
        return cls.parse(value)

    def __str__(self) -> str:
        if not self.ids:
            return "/"
        return "/" + "/".join(map(str, self.ids))

    def __repr__(self) -> str:
        return f"LwM2MPath({str(self)!r})"

    # -- value semantics ----------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LwM2MPath):
            return self.ids == other.ids
        return NotImplemented

    def __lt__(self, other: "LwM2MPath") -> bool:
        if not isinstance(other, LwM2MPath):
            return NotImplemented
        return self.ids < other.ids

    def __hash__(self) -> int:
        return hash(("LwM2MPath", self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids)

    def __reduce__(self):  # pickling/copying despite __slots__ + immutability
        return (LwM2MPath, self.ids)

    # -- accessors ----------------------------------------------------------------------

    def _at(self, index: int) -> int | None:
        return self.ids[index] if len(self.ids) > index else None

    @property
    def object_id(self) -> int | None:
        return self._at(0)

    @property
    def instance_id(self) -> int | None:
        return self._at(1)

    @property
    def resource_id(self) -> int | None:
        return self._at(2)

    @property
    def resource_instance_id(self) -> int | None:
        return self._at(3)

    @property
    def is_root(self) -> bool:
        return not self.ids

    @property
    def is_object(self) -> bool:
        return len(self.ids) == 1

    @property
    def is_object_instance(self) -> bool:
        return len(self.ids) == 2

    @property
    def is_resource(self) -> bool:
        return len(self.ids) == 3

    @property
    def is_resource_instance(self) -> bool:
        return len(self.ids) == 4

    @property
    def parent(self) -> "LwM2MPath":
        if not self.ids:
            raise PathError("the root path has no parent")
        return LwM2MPath(*self.ids[:-1])

    def child(self, id_: int) -> "LwM2MPath":
        return LwM2MPath(*self.ids, id_)

    def startswith(self, prefix: "LwM2MPath") -> bool:
        """True when ``prefix`` is this path or one of its ancestors (segment-wise)."""
        return self.ids[: len(prefix.ids)] == prefix.ids

    @property
    def resource_path(self) -> "LwM2MPath":
        """``/O/I/R`` of a resource or resource instance path."""
        if len(self.ids) < 3:
            raise PathError(f"{self} does not name a resource")
        return LwM2MPath(*self.ids[:3])


ROOT = LwM2MPath()
