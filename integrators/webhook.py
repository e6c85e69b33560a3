"""HTTPS webhook delivery (SPEC §4): POST the event, 2xx within the timeout is success."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .base import DeliveryError
from .http11 import HttpError, HttpPool, check_header
from .targets import TargetPolicy, TargetRefused, guarded_connect

PLACEHOLDERS = (":iccid:", ":imsi:", ":ip:")


@dataclass
class WebhookSettings:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    timeout_seconds: float = 20.0
    concurrency: int = 64
    targets: TargetPolicy | None = None  # which addresses it may connect to (None: any)


def substitute(template: str, device: dict[str, str] | None) -> str:
    """Replace ``:iccid:``, ``:imsi:`` and ``:ip:`` with the event's device (empty without one)."""
    if ":" not in template:
        return template
    device = device or {}
    return (template.replace(":iccid:", device.get("iccid", ""))
            .replace(":imsi:", device.get("imsi", ""))
            .replace(":ip:", device.get("ip", "")))


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification always on: the system CAs, or the given CA file instead."""
    context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def split_url(url: str) -> tuple[str, str]:
    """(origin, target): ``https://host:port`` and ``/path?query`` of a URL."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return f"{parts.scheme}://{parts.netloc}", target


class WebhookSender:
    """POSTs events over kept-alive connections (``http11.HttpPool``, one pool per origin)."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self.needs_device = any(p in settings.url or any(p in v for v in settings.headers.values())
                                for p in PLACEHOLDERS)
        self._pools: dict[str, HttpPool] = {}
        self._ssl: ssl.SSLContext | None = None
        # without placeholders every request carries the same headers: encode them once
        self._fixed_headers = self._encode_headers(settings.headers)

    @staticmethod
    def _encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
        return [(b"User-Agent", b"nce-gateway"), (b"Content-Type", b"application/json"),
                *(check_header(k, v) for k, v in headers.items())]

    def _pool(self, origin: str) -> HttpPool:
        pool = self._pools.get(origin)
        if pool is None:
            if origin.startswith("https://") and self._ssl is None:
                try:
                    self._ssl = tls_context(self.settings.ca_file)
                except (OSError, ssl.SSLError) as exc:
                    raise DeliveryError(f"cannot load ca_file {self.settings.ca_file}: {exc}") from None
            connect = guarded_connect(self.settings.targets) if self.settings.targets is not None else None
            pool = self._pools[origin] = HttpPool(origin, ssl_context=self._ssl, size=self.settings.concurrency,
                                                  connect=connect)
        return pool

    async def send(self, body: str, device: dict[str, str] | None, event_type: str) -> None:
        url, headers = self.settings.url, self._fixed_headers
        if self.needs_device:
            url = substitute(url, device)
            headers = self._encode_headers({k: substitute(v, device) for k, v in self.settings.headers.items()})
        origin, target = split_url(url)
        data = body.encode("utf-8")
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                status = await self._pool(origin).post(target, headers, data)
        except TimeoutError:
            raise DeliveryError(f"webhook did not answer within {self.settings.timeout_seconds:g} s") from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"webhook TLS certificate refused: {exc.verify_message or exc}") from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"webhook TLS error: {exc}") from None
        except HttpError as exc:
            raise DeliveryError(f"webhook request failed: {exc}") from None
        except TargetRefused as exc:
            raise DeliveryError(f"webhook {exc} ([targets] in the config)") from None
        except (OSError, UnicodeError, ValueError) as exc:
            raise DeliveryError(f"webhook unreachable: {exc}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"webhook answered HTTP {status}")

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
