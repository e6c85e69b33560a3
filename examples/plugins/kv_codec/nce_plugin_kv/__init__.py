"""An example nce-gateway codec plugin: payloads ``KV:key=value;key=value`` become JSON.

``KV:t=21.5;hum=40;door=open`` -> ``{"t": 21.5, "hum": 40, "door": "open"}``: numbers become
numbers, everything else stays text. Payloads without the ``KV:`` prefix are not this codec's
(``decode`` answers None, so the message stays raw). A malformed pair raises ValueError: the
gateway stores the message with that error, as for a failed Energy Saver translation.
"""

from __future__ import annotations

PREFIX = b"KV:"


class KeyValueCodec:
    kind = "codec"

    def decode(self, protocol: str, payload: bytes) -> dict | None:
        if not payload.startswith(PREFIX):
            return None
        values: dict[str, object] = {}
        for pair in payload[len(PREFIX):].decode("utf-8").split(";"):
            if not pair:
                continue
            key, sep, text = pair.partition("=")
            if not sep or not key:
                raise ValueError(f"{pair!r} is not key=value")
            values[key] = _number(text)
        return values


def _number(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
