"""HTTPS webhook delivery (SPEC §4): POST the event, 2xx within the timeout is success."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .base import DeliveryError, SenderContext
from .http11 import HttpError, HttpPool, check_header
from .targets import TargetPolicy, TargetRefused
from .tls_files import FileContext

PLACEHOLDERS = (":iccid:", ":imsi:", ":ip:")


@dataclass
class WebhookSettings:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    cert_file: str | None = None  # client certificate (mutual TLS), with key_file
    key_file: str | None = None
    timeout_seconds: float = 20.0  # for the answer, from the end of the request
    connect_timeout_seconds: float = 10.0
    tls_timeout_seconds: float = 10.0
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


def tls_context(ca_file: str | None, cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
    """Verification always on: the system CAs, or the given CA file instead; a client
    certificate when given."""
    context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
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

    def __init__(self, settings: WebhookSettings, context: SenderContext | None = None) -> None:
        self.settings = settings
        metrics, name = (context.metrics, context.name) if context is not None else (None, "")
        self._m_connections = metrics.webhook_connections.labels(name).inc if metrics else None
        self._m_resent = metrics.webhook_resent.labels(name).inc if metrics else None
        self.needs_device = any(p in settings.url or any(p in v for v in settings.headers.values())
                                for p in PLACEHOLDERS)
        self._pools: dict[str, HttpPool] = {}
        # read before every new connection: a replaced CA or client certificate is used at once
        self.tls = FileContext(lambda: tls_context(settings.ca_file, settings.cert_file, settings.key_file),
                               {"ca_file": settings.ca_file, "cert_file": settings.cert_file,
                                "key_file": settings.key_file}, name=settings.url)
        # without placeholders every request carries the same headers: encode them once
        self._fixed_headers = self._encode_headers(settings.headers)

    @staticmethod
    def _encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
        return [(b"User-Agent", b"nce-gateway"), (b"Content-Type", b"application/json"),
                *(check_header(k, v) for k, v in headers.items())]

    def _pool(self, origin: str) -> HttpPool:
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = HttpPool(
                origin, ssl_context=self.tls.get, size=self.settings.concurrency,
                connect_timeout=self.settings.connect_timeout_seconds,
                tls_timeout=self.settings.tls_timeout_seconds, answer_timeout=self.settings.timeout_seconds,
                on_connect=self._m_connections, on_resend=self._m_resent,
                check_address=self.settings.targets.refusal if self.settings.targets is not None else None)
        return pool

    async def send(self, body: str, device: dict[str, str] | None, event_type: str) -> None:
        url, headers = self.settings.url, self._fixed_headers
        if self.needs_device:
            url = substitute(url, device)
            headers = self._encode_headers({k: substitute(v, device) for k, v in self.settings.headers.items()})
        origin, target = split_url(url)
        data = body.encode("utf-8")
        try:
            status = await self._pool(origin).post(target, headers, data)
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"webhook TLS certificate refused: {exc.verify_message or exc}") from None
        except ssl.SSLError as exc:
            if exc.library == "PEM" or exc.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_OR_CRL_FOUND"):
                raise DeliveryError(f"cannot load the TLS files of the webhook ({_files(self.settings)}): "
                                    f"{exc.reason or exc}") from None
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


def _files(settings: WebhookSettings) -> str:
    return ", ".join(f"{key} {path}" for key, path in (("ca_file", settings.ca_file), ("cert_file", settings.cert_file),
                                                        ("key_file", settings.key_file)) if path)
