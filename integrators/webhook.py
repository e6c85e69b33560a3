"""HTTPS webhook delivery (SPEC §4): POST the event, 2xx within the timeout is success."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import aiohttp

from .base import DeliveryError

PLACEHOLDERS = (":iccid:", ":imsi:", ":ip:")


@dataclass
class WebhookSettings:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    timeout_seconds: float = 20.0
    concurrency: int = 64


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


class WebhookSender:
    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self.needs_device = any(p in settings.url or any(p in v for v in settings.headers.values())
                              for p in PLACEHOLDERS)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            try:
                ssl_context: ssl.SSLContext | bool = (
                    tls_context(self.settings.ca_file) if self.settings.url.startswith("https://") else False)
            except (OSError, ssl.SSLError) as exc:
                raise DeliveryError(f"cannot load ca_file {self.settings.ca_file}: {exc}") from None
            connector = aiohttp.TCPConnector(ssl=ssl_context, limit=self.settings.concurrency)
            # without placeholders every request carries the same headers: set them once on the
            # session instead of merging a dict per request
            headers = {"User-Agent": "nce-gateway", "Content-Type": "application/json"}
            if not self.needs_device:
                headers.update(self.settings.headers)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
                headers=headers,
            )
        return self._session

    async def send(self, body: str, device: dict[str, str] | None, event_type: str) -> None:
        url = self.settings.url
        headers = None
        if self.needs_device:
            url = substitute(url, device)
            headers = {k: substitute(v, device) for k, v in self.settings.headers.items()}
        try:
            async with self._client().post(url, data=body.encode("utf-8"), headers=headers) as response:
                await response.read()
                if not 200 <= response.status < 300:
                    raise DeliveryError(f"webhook answered HTTP {response.status} {response.reason or ''}".strip())
        except asyncio.TimeoutError:
            raise DeliveryError(f"webhook did not answer within {self.settings.timeout_seconds:g} s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise DeliveryError(f"webhook TLS certificate refused: {exc.certificate_error}") from None
        except aiohttp.ClientSSLError as exc:
            raise DeliveryError(f"webhook TLS error: {exc}") from None
        except aiohttp.ClientConnectionError as exc:
            raise DeliveryError(f"webhook unreachable: {exc}") from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"webhook request failed: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
