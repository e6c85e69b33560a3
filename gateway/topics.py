"""The CoAP ``t`` query: the topic a device publishes to (SPEC §2)."""

from __future__ import annotations

import re

_TOPIC = re.compile(rb"[A-Za-z0-9_/]{1,253}")


class BadTopic(ValueError):
    """The request's ``t`` cannot be used; answered with 4.00 Bad Request."""


def topic_from_query(query: list[bytes]) -> str | None:
    """The topic of a request's Uri-Query options, None when there is no ``t``.

    Other query parameters are ignored (devices add their own); a second ``t`` is refused
    because it is ambiguous.
    """
    topic: bytes | None = None
    for item in query:
        if item[:2] == b"t=":
            if topic is not None:
                raise BadTopic("more than one t= query parameter")
            topic = item[2:]
    if topic is None:
        return None
    if not _TOPIC.fullmatch(topic):
        raise BadTopic("t must be 1 to 253 characters of A-Z a-z 0-9 _ /")
    if b"//" in topic:
        raise BadTopic("t must not contain //")
    return topic.decode("ascii")
