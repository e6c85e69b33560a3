"""The one exception family of the LwM2M codecs.

Everything a device (or a user) can get wrong in a payload, a path, a link list or an
object definition ends as a :class:`FormatError`, so the CoAP layer needs a single
``except`` to turn bad input into a 4.00 / 4.06 answer and keep serving.
"""

from __future__ import annotations


class FormatError(ValueError):
    """Malformed or unsupported LwM2M content.

    ``offset`` is the byte (or character) offset where the problem was found, when the
    format has one; ``field`` names the record, label or path involved. Both are also
    spelled out in the message, which is meant to be shown to a person as is.
    """

    def __init__(self, message: str, *, offset: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.field = field

    def __str__(self) -> str:
        return self.message


class PathError(FormatError):
    """A string or id sequence that is not a valid LwM2M path."""


class ModelError(FormatError):
    """An object definition (DDF XML) that cannot be loaded."""
