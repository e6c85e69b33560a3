"""Gateway configuration: TOML file, defaults for every key, environment overrides.

Every key has a default so `nce-gateway serve` works with no file at all. Environment variables
named ``NCE_<SECTION>_<KEY>`` (for example ``NCE_UDP_PORT=5000``) override scalar keys, which is
how containers and tests adjust a shipped file without editing it.
"""

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (150.0, 180.0, 420.0, 1020.0)
EVENT_TYPES: tuple[str, ...] = (
    "TELEMETRY_DATA",
    "LIFECYCLE",
    "ERROR",
    "LOCATION",
    "GEOFENCE",
    "TEST_MESSAGE",
)


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the key."""


@dataclass
class StoreConfig:
    path: str = "data/gateway.db"
    retention_days: float = 7.0
    # "full": one fsync of the WAL per group commit (durable across power loss);
    # "normal": durable across a process crash, not across power loss.
    synchronous: str = "full"
    purge_interval_seconds: float = 3600.0
    max_batch: int = 5000


@dataclass
class UdpConfig:
    enabled: bool = True
    bind: str = "0.0.0.0"
    port: int = 4445
    max_payload: int = 65507
    receive_buffer_bytes: int = 4 * 1024 * 1024


@dataclass
class CoapConfig:
    enabled: bool = True
    bind: str = "0.0.0.0"
    port: int = 5683
    max_payload: int = 65000
    exchange_lifetime_seconds: float = 247.0
    receive_buffer_bytes: int = 4 * 1024 * 1024


@dataclass
class CoapsConfig:
    enabled: bool = True
    bind: str = "0.0.0.0"
    port: int = 5684
    # what GET /bootstrap appends to "ICCID,PSK" so devices know where to go; empty: nothing
    public_url: str = ""
    idle_timeout_seconds: float = 600.0
    max_sessions: int = 20_000  # about 51 KiB each (Mbed TLS buffers)
    max_half_open: int = 500
    handshakes_per_ip_per_second: float = 10.0
    receive_buffer_bytes: int = 4 * 1024 * 1024


@dataclass
class PskConfig:
    # a generated PSK older than this is replaced on the next GET /bootstrap (1NCE OS: 5 minutes);
    # 0 keeps it forever. Keys set by a user are never replaced.
    regenerate_after_seconds: float = 300.0


@dataclass
class ApiConfig:
    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = 8080


@dataclass
class RegistryConfig:
    # How often the running gateway checks the store for SIM changes made by another process
    # (the CLI, another gateway instance).
    poll_interval_seconds: float = 1.0


@dataclass
class LwM2MConfig:
    enabled: bool = True
    # Written into the device's Security object at bootstrap. Empty: coap://<coap.bind>:<coap port>
    # (127.0.0.1 when bound to every address), which only suits local tests: set the host name or
    # address devices reach the gateway at.
    server_uri: str = ""
    # The same for devices that bootstrapped over DTLS. Empty: coaps.public_url, else server_uri's
    # host with scheme coaps and the CoAPs port.
    dtls_server_uri: str = ""
    short_server_id: int = 1
    lifetime: int = 3600  # seconds, written into the Server object (/1/x/1)
    binding: str = "U"  # written into the Server object (/1/x/7)
    registration_grace_seconds: float = 60.0
    passive_reporting: bool = False
    request_timeout_seconds: float = 30.0  # one request to a device, retransmissions included
    queue_timeout_seconds: float = 600.0  # how long a request waits for a sleeping (queue mode) device
    queue_awake_seconds: float = 93.0  # a queue-mode device listens this long after Register/Update
    action_poll_interval_seconds: float = 0.5  # how often queued device actions are picked up
    objects_dir: str = ""  # extra OMA DDF XML object definitions (*.xml)


@dataclass
class LogConfig:
    level: str = "INFO"
    format: str = "json"  # json | text


@dataclass
class WebhookConfig:
    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    event_types: list[str] = field(default_factory=lambda: list(EVENT_TYPES))
    ca_file: str | None = None
    retry_schedule: list[float] = field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    json_payload_enabled: bool = False
    timeout_seconds: float = 20.0
    concurrency: int = 64


@dataclass
class GatewayConfig:
    store: StoreConfig = field(default_factory=StoreConfig)
    udp: UdpConfig = field(default_factory=UdpConfig)
    coap: CoapConfig = field(default_factory=CoapConfig)
    coaps: CoapsConfig = field(default_factory=CoapsConfig)
    psk: PskConfig = field(default_factory=PskConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    log: LogConfig = field(default_factory=LogConfig)
    lwm2m: LwM2MConfig = field(default_factory=LwM2MConfig)
    webhooks: list[WebhookConfig] = field(default_factory=list)


_SECTIONS: dict[str, type] = {
    "store": StoreConfig,
    "udp": UdpConfig,
    "coap": CoapConfig,
    "coaps": CoapsConfig,
    "psk": PskConfig,
    "api": ApiConfig,
    "registry": RegistryConfig,
    "log": LogConfig,
    "lwm2m": LwM2MConfig,
}
_LISTS: dict[str, type] = {"webhooks": WebhookConfig}


def _coerce(value: Any, target: Any, where: str) -> Any:
    """Convert a TOML or environment value to the type of the dataclass field."""
    origin = getattr(target, "__origin__", None)
    if target is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if target is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if target is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if target is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_type,) = target.__args__
        return [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    # Optional[str] and friends
    args = getattr(target, "__args__", ())
    if type(None) in args:
        if value is None or value == "":
            return None
        inner = next(a for a in args if a is not type(None))
        return _coerce(value, inner, where)
    return value


def _build(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in raw.items():
        kwargs[name] = _coerce(value, fields[name].type, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _validate(cfg: GatewayConfig) -> None:
    for section in ("udp", "coap", "coaps", "api"):
        port = getattr(cfg, section).port
        if not 0 <= port <= 65535:
            raise ConfigError(f"{section}.port: {port} is not a port number (0 means ephemeral)")
    if cfg.store.synchronous not in ("full", "normal"):
        raise ConfigError("store.synchronous: must be 'full' or 'normal'")
    if cfg.store.retention_days <= 0:
        raise ConfigError("store.retention_days: must be positive")
    names = set()
    for i, hook in enumerate(cfg.webhooks):
        where = f"webhooks[{i}]"
        if hook.name in names:
            raise ConfigError(f"{where}.name: {hook.name!r} is used twice")
        names.add(hook.name)
        if not hook.url.startswith(("https://", "http://")):
            raise ConfigError(f"{where}.url: must start with https:// (or http:// for local tests)")
        bad = [t for t in hook.event_types if t not in EVENT_TYPES]
        if bad:
            raise ConfigError(f"{where}.event_types: unknown {', '.join(bad)}; known: {', '.join(EVENT_TYPES)}")
        if not hook.retry_schedule or any(s < 0 for s in hook.retry_schedule):
            raise ConfigError(f"{where}.retry_schedule: needs at least one non-negative delay")
    lw = cfg.lwm2m
    if not 0 < lw.short_server_id < 65535:
        raise ConfigError("lwm2m.short_server_id: must be 1..65534")
    if lw.lifetime < 1:
        raise ConfigError("lwm2m.lifetime: must be at least 1 second")
    if lw.binding not in ("U", "UQ", "N", "T", "UN", "UT", "UQS", "US", "S", "SQ"):
        raise ConfigError("lwm2m.binding: must be a binding mode such as U or UQ")
    for key in ("registration_grace_seconds", "request_timeout_seconds", "queue_timeout_seconds",
                "queue_awake_seconds", "action_poll_interval_seconds"):
        if getattr(lw, key) <= 0 and key != "registration_grace_seconds" or getattr(lw, key) < 0:
            raise ConfigError(f"lwm2m.{key}: must be positive")
    for key in ("server_uri", "dtls_server_uri"):
        uri = getattr(lw, key)
        if uri and not uri.startswith(("coap://", "coaps://")):
            raise ConfigError(f"lwm2m.{key}: must start with coap:// or coaps://")
    if cfg.coaps.public_url and not cfg.coaps.public_url.startswith("coaps://"):
        raise ConfigError("coaps.public_url: must start with coaps:// (or be empty)")
    if cfg.log.format not in ("json", "text"):
        raise ConfigError("log.format: must be 'json' or 'text'")


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read the TOML file (if any), apply ``NCE_SECTION_KEY`` overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
    environ = os.environ if environ is None else environ
    for name, value in environ.items():
        if not name.startswith("NCE_") or name.count("_") < 2:
            continue
        section, _, key = name[4:].lower().partition("_")
        if section in _SECTIONS:
            raw.setdefault(section, {})[key] = value
    unknown = sorted(set(raw) - set(_SECTIONS) - set(_LISTS))
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        if section in raw:
            kwargs[section] = _build(cls, raw[section], section)
    for section, cls in _LISTS.items():
        if section in raw:
            items = raw[section]
            if not isinstance(items, list):
                raise ConfigError(f"{section}: expected a list of tables ([[{section}]])")
            kwargs[section] = [_build(cls, item, f"{section}[{i}]") for i, item in enumerate(items)]
    cfg = GatewayConfig(**kwargs)
    _validate(cfg)
    return cfg
