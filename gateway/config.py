"""Gateway configuration: TOML file, defaults for every key, environment overrides.

Every key has a default so `nce-gateway serve` works with no file at all. Environment variables
named ``NCE_<SECTION>_<KEY>`` (for example ``NCE_UDP_PORT=5000``) override scalar keys, which is
how containers and tests adjust a shipped file without editing it.
"""

import dataclasses
import os
import sys
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from integrators.http11 import check_header
from integrators.targets import TargetPolicy, parse_networks

DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (150.0, 180.0, 420.0, 1020.0)
EVENT_TYPES: tuple[str, ...] = (
    "TELEMETRY_DATA",
    "LIFECYCLE",
    "ERROR",
    "LOCATION",
    "GEOFENCE",
    "TEST_MESSAGE",
    "MO_SMS",
)
# The gateway's own connectivity types (docs/connectivity.md): delivered only to integrations
# that name them in event_types, so a consumer written for 1NCE OS sees nothing new by default.
OPT_IN_EVENT_TYPES: tuple[str, ...] = ("NETWORK_EVENT", "USAGE")
ALL_EVENT_TYPES: tuple[str, ...] = EVENT_TYPES + OPT_IN_EVENT_TYPES


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the key."""


class _FromEnvironment(str):
    """An ``NCE_SECTION_KEY`` override: always text, so it is converted to the key's type
    (TOML values are not: ``port = "44777"`` in a file is a string where a number belongs)."""

    variable: str = ""


def _text_override(value: str, variable: str) -> _FromEnvironment:
    text = _FromEnvironment(value)
    text.variable = variable
    return text


@dataclass
class StoreConfig:
    path: str = "data/gateway.db"
    # "sqlite:///path" (default: the file at ``path``) or "postgresql://user@host/db" (docs/operations.md)
    url: str = ""
    retention_days: float = 7.0
    # "full": one fsync of the WAL per group commit (durable across power loss);
    # "normal": durable across a process crash, not across power loss.
    synchronous: str = "full"
    purge_interval_seconds: float = 3600.0
    max_batch: int = 5000
    # a file holding the key that encrypts the store's secrets at rest (signing keys, PSKs,
    # webhook header values, AWS external ids); NCE_SECRETS_KEY (the key itself) wins over it.
    # Empty and no NCE_SECRETS_KEY: secrets are kept plain in the (0600) store.
    secrets_key_file: str = ""

    def resolved_url(self) -> str:
        """``url`` if set, else the SQLite file at ``path``."""
        return self.url or f"sqlite:///{self.path}"

    def identity(self) -> str:
        """What names this store to the processes of one host (the control sockets,
        gateway/control.py): the SQLite file, or the PostgreSQL URL without its password."""
        from inspector.store import sqlite_path
        if not self.url:
            return self.path
        path = sqlite_path(self.url)
        if path is not None:
            return path
        from inspector.store.postgres import redact
        return redact(self.url)

    def open(self):  # noqa: ANN201 (the backend's store class)
        """The store this config names (inspector.store.open_store)."""
        from inspector.store import open_store
        return open_store(self.resolved_url(), self.synchronous, self.secrets_key())

    def secrets_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The key from NCE_SECRETS_KEY or ``secrets_key_file``, else None."""
        environ = os.environ if environ is None else environ
        if environ.get("NCE_SECRETS_KEY"):
            return environ["NCE_SECRETS_KEY"]
        if not self.secrets_key_file:
            return None
        try:
            return Path(self.secrets_key_file).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"store.secrets_key_file: cannot read {self.secrets_key_file}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None


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
    # Requests of unknown or disabled SIMs (also over DTLS) get a bare 4.01, no longer than the
    # request, at most this often per source address (bursts of 5) and in total; false: no answer.
    answer_unauthorized: bool = True
    unauthorized_answers_per_ip_per_second: float = 1.0
    unauthorized_answers_per_second: float = 200.0
    # Block-wise (Block1) uploads being reassembled at once, in total and per SIM; each holds at
    # most max_payload bytes.
    max_block1_transfers: int = 256
    max_block1_transfers_per_sim: int = 4


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
    # a generated PSK older than this is rotated on the next GET /bootstrap (1NCE OS: 5 minutes);
    # 0 (default) keeps it until rotated explicitly. Keys set by a user are never replaced.
    regenerate_after_seconds: float = 0.0
    # length of generated keys in characters (letters and digits, 5.95 bits each): 16 = 95 bits,
    # which every common DTLS stack loads (tinydtls holds at most 16 bytes); 12..32
    generated_length: int = 16
    # after a rotation (or a key set through API/CLI) the old DTLS key stays valid this long
    rotation_grace_seconds: float = 7 * 86400.0


@dataclass
class ApiConfig:
    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = 8080
    # lifetime of an access token from POST /management-api/oauth/token (1NCE: 3600)
    token_ttl_seconds: int = 3600
    # failed logins allowed per user name / per client address within login_window_seconds;
    # beyond them /oauth/token answers 429 without checking the password
    login_max_failures_per_user: int = 5
    login_max_failures_per_ip: int = 20
    login_window_seconds: float = 900.0
    # password checks (argon2id, ~0.35 s each, one at a time) allowed to wait at once, from all
    # clients together; beyond it a login answers 429 at once (the queue cannot grow)
    login_max_pending_checks: int = 32
    # CA file that webhooks created through the API are verified against (default: system CAs)
    webhook_ca_file: str | None = None
    # how long POST .../webhooks/{id}/test waits for the target to take the test message
    test_timeout_seconds: float = 10.0


@dataclass
class ConsoleConfig:
    """The web console at /console on the API port (docs/console.md)."""

    enabled: bool = True
    # mark the session cookie Secure even on plain HTTP (set it when a TLS proxy terminates HTTPS in
    # front of the gateway; requests that arrive over TLS get a Secure cookie anyway)
    secure_cookie: bool = False
    # a console session ends after this many idle minutes (and always when its API token expires)
    session_idle_minutes: int = 30


@dataclass
class RegistryConfig:
    # How often the running gateway checks the store for SIM changes made by another process
    # (the CLI, another gateway instance).
    poll_interval_seconds: float = 1.0


@dataclass
class ProcessConfig:
    """Several gateway processes on one host (docs/operations.md, gateway/supervisor.py)."""

    # Worker processes sharing the ports; 0: one per CPU core. 1: one process, no supervisor.
    workers: int = 0
    # How long a duty's lease (delivery of one integration, retention purge) lasts without
    # renewal: a worker that dies hands its duties to another one after at most this long.
    lease_seconds: float = 10.0
    # Restart delay of a worker that died: doubles per quick death up to the maximum.
    restart_delay_seconds: float = 0.5
    restart_delay_max_seconds: float = 30.0


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
class ControllerConfig:
    """The Device Controller for UDP and CoAP (docs/device-controller.md)."""

    # a device heard from (any protocol) within this many seconds is sent to at once (SEND_NOW);
    # otherwise the request waits for the device's next uplink
    recent_uplink_seconds: float = 60.0
    expiry_seconds: float = 86400.0  # a request still waiting after this long is FAILED (expired)
    max_queued_per_device: int = 10  # open (SCHEDULED, IN_PROGRESS) requests per device; more: 409
    max_queued_total: int = 10000  # open requests of all devices; more: 409
    response_timeout_seconds: float = 30.0  # how long a CoAP request waits for the device's answer
    max_payload_bytes: int = 1024  # a request's payload, decoded
    poll_interval_seconds: float = 1.0  # how often expiry runs and requests written by the CLI are picked up


@dataclass
class TargetsConfig:
    """Where integrations (webhooks) may connect (integrators/targets.py). By default public
    addresses only: loopback, link-local, private and other non-public ranges are refused."""

    allow_loopback: bool = False  # 127.0.0.0/8, ::1: local tests and the demo
    allow_private: bool = False  # RFC 1918, CGNAT, IPv6 ULA, ...: private-APN and local deployments
    allow: list[str] = field(default_factory=list)  # networks allowed anyway, e.g. ["10.20.0.0/16"]
    deny: list[str] = field(default_factory=list)  # networks refused whatever else says (checked first)

    def policy(self) -> TargetPolicy:
        return TargetPolicy(self.allow_loopback, self.allow_private, parse_networks(self.allow, "targets.allow"),
                            parse_networks(self.deny, "targets.deny"))


@dataclass
class SmsConfig:
    """SMS over SMPP 3.4 to an SMSC (docs/sms.md). ``password`` is write-only: never logged."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = field(default="", repr=False)
    system_type: str = ""
    tls: bool = False
    ca_file: str | None = None  # CA certificates the SMSC's TLS certificate is checked against (default: system)
    source_address: str = ""  # source address of MT SMS whose request names none
    window: int = 10  # submit_sm outstanding at once
    enquire_link_seconds: float = 30.0
    response_timeout_seconds: float = 10.0
    reconnect_min_seconds: float = 1.0
    reconnect_max_seconds: float = 60.0
    throttle_min_seconds: float = 1.0  # first pause after ESME_RTHROTTLED; doubles up to the max
    throttle_max_seconds: float = 30.0
    retry_seconds: float = 10.0  # an MT SMS whose submit was cut off is tried again after this
    validity_hours: float = 48.0  # an MT SMS without expiry_date expires after this
    mo_parts_ttl_seconds: float = 86400.0  # parts of a concatenated MO SMS wait this long for the rest


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
    timeout_seconds: float = 20.0  # the answer, from the end of the request
    concurrency: int = 64
    cert_file: str | None = None  # client certificate for receivers that want mutual TLS
    key_file: str | None = None
    connect_timeout_seconds: float = 10.0
    tls_timeout_seconds: float = 10.0


AWS_MODES = ("mqtt", "iot_data")
AWS_MQTT_KEYS = ("host", "port", "ca_file", "cert_file", "key_file", "client_id", "keepalive",
                 "publish_rate_limit", "reconnect_min_seconds", "reconnect_max_seconds", "tls_check_seconds",
                 "mqtt_version")
AWS_IOT_DATA_KEYS = ("region", "endpoint_url", "role_arn", "external_id", "session_name",
                     "session_duration_seconds", "sts_endpoint_url", "threads")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


@dataclass
class AwsIntegrationConfig:
    """One AWS IoT Core target. ``mode`` picks the keys that apply (the others must stay unset)."""

    name: str
    mode: str = "mqtt"
    event_types: list[str] = field(default_factory=lambda: list(EVENT_TYPES))
    retry_schedule: list[float] = field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    json_payload_enabled: bool = False
    timeout_seconds: float = 20.0
    concurrency: int = 64
    # mode = "mqtt": MQTT 5 over mutual TLS
    host: str | None = None
    port: int | None = None  # 8883
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    client_id: str | None = None  # nce-gateway-{name}
    keepalive: int | None = None  # 60
    publish_rate_limit: float | None = None  # 100 per second; 0 = unlimited
    reconnect_min_seconds: float | None = None  # 1
    reconnect_max_seconds: float | None = None  # 60
    tls_check_seconds: float | None = None  # 10: how often the TLS files are compared with the ones in use
    mqtt_version: str | None = None  # "5" (falls back to 3.1.1 when the broker has only that) or "3.1.1"
    # mode = "iot_data": boto3 iot-data publish over HTTPS (SigV4)
    region: str | None = None
    endpoint_url: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str | None = None  # nce-gateway
    session_duration_seconds: int | None = None  # 3600
    sts_endpoint_url: str | None = None
    threads: int | None = None  # 8

    @property
    def kind(self) -> str:
        return "aws_mqtt" if self.mode == "mqtt" else "aws_iot_data"

    def stored(self) -> dict[str, Any]:
        """The integration's config as the store keeps it: shared keys and the set keys of its mode."""
        own = AWS_MQTT_KEYS if self.mode == "mqtt" else AWS_IOT_DATA_KEYS
        out: dict[str, Any] = {"mode": self.mode, "event_types": list(self.event_types),
                               "retry_schedule": list(self.retry_schedule),
                               "json_payload_enabled": self.json_payload_enabled,
                               "timeout_seconds": self.timeout_seconds, "concurrency": self.concurrency}
        out.update({k: getattr(self, k) for k in own if getattr(self, k) is not None})
        return out


@dataclass
class RadiusConfig:
    """RADIUS accounting from the mobile core (docs/connectivity.md). ``clients`` maps each
    accounting client's (NAS's) source address to its shared secret; the secrets are never logged.
    The same secret signs the Disconnect-Requests sent to that NAS on ``disconnect_port``."""

    enabled: bool = False
    bind: str = "0.0.0.0"
    port: int = 1813
    clients: dict[str, str] = field(default_factory=dict, repr=False)  # secrets: kept out of reprs
    disconnect_port: int = 3799
    disconnect_timeout_seconds: float = 3.0
    disconnect_attempts: int = 3
    duplicate_window_seconds: float = 30.0


@dataclass
class ConnectivityConfig:
    """Defaults of the 1NCE Connect service (SPEC §8): what a SIM gets for its lifetime."""

    data_quota_mb: float = 500.0
    sms_quota: int = 250
    lifetime_years: int = 10
    auto_topup_threshold_percent: int = 20
    # how often SIMs whose quota's lifetime ended are looked for and blocked (QUOTA_EXPIRED)
    expiry_check_seconds: float = 3600.0
    # a LIFECYCLE event SIM_ADDED for every SIM added (import, API) once, to integrations
    announce_new_sims: bool = True


@dataclass
class GatewayConfig:
    store: StoreConfig = field(default_factory=StoreConfig)
    udp: UdpConfig = field(default_factory=UdpConfig)
    coap: CoapConfig = field(default_factory=CoapConfig)
    coaps: CoapsConfig = field(default_factory=CoapsConfig)
    psk: PskConfig = field(default_factory=PskConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    process: ProcessConfig = field(default_factory=ProcessConfig)
    log: LogConfig = field(default_factory=LogConfig)
    lwm2m: LwM2MConfig = field(default_factory=LwM2MConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    targets: TargetsConfig = field(default_factory=TargetsConfig)
    radius: RadiusConfig = field(default_factory=RadiusConfig)
    connectivity: ConnectivityConfig = field(default_factory=ConnectivityConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)
    webhooks: list[WebhookConfig] = field(default_factory=list)
    aws_integrations: list[AwsIntegrationConfig] = field(default_factory=list)


_SECTIONS: dict[str, type] = {
    "store": StoreConfig,
    "udp": UdpConfig,
    "coap": CoapConfig,
    "coaps": CoapsConfig,
    "psk": PskConfig,
    "api": ApiConfig,
    "console": ConsoleConfig,
    "registry": RegistryConfig,
    "process": ProcessConfig,
    "log": LogConfig,
    "lwm2m": LwM2MConfig,
    "controller": ControllerConfig,
    "targets": TargetsConfig,
    "radius": RadiusConfig,
    "connectivity": ConnectivityConfig,
    "sms": SmsConfig,
}
_LISTS: dict[str, type] = {"webhooks": WebhookConfig, "aws_integrations": AwsIntegrationConfig}


def _coerce(value: Any, target: Any, where: str) -> Any:
    """Check a TOML value against the type of the dataclass field, or convert an environment
    override (text) to it; refused with the key's name (and the variable's, for an override)."""
    origin = getattr(target, "__origin__", None)
    textual = isinstance(value, _FromEnvironment)
    if target is bool:
        if isinstance(value, bool):
            return value
        if textual and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if target is int:
        if textual and re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if target is float:
        if textual:
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if number != number or number in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if target is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if origin is list:
        if textual:
            (item_type,) = target.__args__
            return [_coerce(_text_override(v.strip(), ""), item_type, f"{where}[{i}]")
                    for i, v in enumerate(v for v in value.split(",") if v.strip())]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_type,) = target.__args__
        return [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        bad = [k for k, v in value.items() if not isinstance(v, str)]
        if bad:
            raise ConfigError(f"{where}.{bad[0]}: expected a string, got {value[bad[0]]!r}")
        return dict(value)
    # Optional[str] and friends
    args = getattr(target, "__args__", ())
    if type(None) in args:
        if value is None or value == "":
            return None
        inner = next(a for a in args if a is not type(None))
        return _coerce(value, inner, where)
    return value


#: keys that were removed, with what replaces them (an old config gets told, not just "unknown")
REMOVED = {"sms.quota": "sms.quota was removed: MT and MO SMS count against the connectivity SMS quota; set "
                        "connectivity.sms_quota instead (docs/sms.md)"}


def _build(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table")
    for key in raw:
        if f"{where}.{key}" in REMOVED:
            raise ConfigError(REMOVED[f"{where}.{key}"])
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in raw.items():
        variable = getattr(value, "variable", "")
        kwargs[name] = _coerce(value, fields[name].type, f"{where}.{name}" + (f" ({variable})" if variable else ""))
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _validate(cfg: GatewayConfig) -> None:
    for section in ("udp", "coap", "coaps", "api"):
        port = getattr(cfg, section).port
        if not 0 <= port <= 65535:
            raise ConfigError(f"{section}.port: {port} is not a port number (0 means ephemeral)")
    process = cfg.process
    if process.workers < 0 or process.workers > 256:
        raise ConfigError(f"process.workers: {process.workers} is not between 0 (one per core) and 256")
    if process.lease_seconds < 1 or process.restart_delay_seconds <= 0 or (
            process.restart_delay_max_seconds < process.restart_delay_seconds):
        raise ConfigError("process.lease_seconds must be at least 1, process.restart_delay_seconds positive "
                          "and at most process.restart_delay_max_seconds")
    coap = cfg.coap
    if coap.max_payload < 1 or coap.max_block1_transfers < 1 or coap.max_block1_transfers_per_sim < 1:
        raise ConfigError("coap.max_payload/max_block1_transfers/max_block1_transfers_per_sim: must be at least 1")
    if coap.unauthorized_answers_per_ip_per_second <= 0 or coap.unauthorized_answers_per_second <= 0:
        raise ConfigError("coap.unauthorized_answers_per_ip_per_second/_per_second: must be positive "
                          "(answer_unauthorized = false answers none)")
    if cfg.api.token_ttl_seconds < 1:
        raise ConfigError("api.token_ttl_seconds: must be at least 1")
    if cfg.api.login_max_failures_per_user < 1 or cfg.api.login_max_failures_per_ip < 1:
        raise ConfigError("api.login_max_failures_per_user/_per_ip: must be at least 1")
    if cfg.api.login_max_pending_checks < 1:
        raise ConfigError("api.login_max_pending_checks: must be at least 1")
    if cfg.api.login_window_seconds <= 0 or cfg.api.test_timeout_seconds <= 0:
        raise ConfigError("api.login_window_seconds/test_timeout_seconds: must be positive")
    if cfg.store.url and not cfg.store.url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError("store.url: must be sqlite:///path or postgresql://...")
    if cfg.store.synchronous not in ("full", "normal"):
        raise ConfigError("store.synchronous: must be 'full' or 'normal'")
    if cfg.store.retention_days <= 0:
        raise ConfigError("store.retention_days: must be positive")
    try:
        targets = cfg.targets.policy()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    names = set()
    for i, hook in enumerate(cfg.webhooks):
        where = f"webhooks[{i}]"
        if hook.name in names:
            raise ConfigError(f"{where}.name: {hook.name!r} is used twice")
        names.add(hook.name)
        if not hook.url.startswith(("https://", "http://")):
            raise ConfigError(f"{where}.url: must start with https:// (or http:// for local tests)")
        refused = targets.check_literal(urlsplit(hook.url).hostname or "")
        if refused:
            raise ConfigError(f"{where}.url: {refused}")
        bad = [t for t in hook.event_types if t not in ALL_EVENT_TYPES]
        if bad:
            raise ConfigError(f"{where}.event_types: unknown {', '.join(bad)}; known: {', '.join(ALL_EVENT_TYPES)}")
        if not hook.retry_schedule or any(s < 0 for s in hook.retry_schedule):
            raise ConfigError(f"{where}.retry_schedule: needs at least one non-negative delay")
        for name, value in hook.headers.items():
            try:
                check_header(name, value)
            except (ValueError, UnicodeError) as exc:
                raise ConfigError(f"{where}.headers: {exc}") from None
        if bool(hook.cert_file) != bool(hook.key_file):
            raise ConfigError(f"{where}.cert_file/key_file: give both (mutual TLS) or neither")
        for key in ("timeout_seconds", "connect_timeout_seconds", "tls_timeout_seconds"):
            if getattr(hook, key) <= 0:
                raise ConfigError(f"{where}.{key}: must be positive")
    lw = cfg.lwm2m
    if not 0 < lw.short_server_id < 65535:
        raise ConfigError("lwm2m.short_server_id: must be 1..65534")
    if lw.lifetime < 1:
        raise ConfigError("lwm2m.lifetime: must be at least 1 second")
    if lw.binding not in ("U", "UQ", "N", "T", "UN", "UT", "UQS", "US", "S", "SQ"):
        raise ConfigError("lwm2m.binding: must be a binding mode such as U or UQ")
    for key in ("registration_grace_seconds", "request_timeout_seconds", "queue_timeout_seconds",
                "queue_awake_seconds", "action_poll_interval_seconds"):
        value = getattr(lw, key)
        if value < 0 or (value == 0 and key != "registration_grace_seconds"):
            raise ConfigError(f"lwm2m.{key}: must be positive")
    ctl = cfg.controller
    for key in ("recent_uplink_seconds", "expiry_seconds", "max_queued_per_device", "max_queued_total",
                "response_timeout_seconds", "max_payload_bytes", "poll_interval_seconds"):
        if getattr(ctl, key) <= 0:
            raise ConfigError(f"controller.{key}: must be positive")
    for key in ("server_uri", "dtls_server_uri"):
        uri = getattr(lw, key)
        if uri and not uri.startswith(("coap://", "coaps://")):
            raise ConfigError(f"lwm2m.{key}: must start with coap:// or coaps://")
    if cfg.coaps.public_url and not cfg.coaps.public_url.startswith("coaps://"):
        raise ConfigError("coaps.public_url: must start with coaps:// (or be empty)")
    for i, aws in enumerate(cfg.aws_integrations):
        where = f"aws_integrations[{i}]"
        if aws.name in names:
            raise ConfigError(f"{where}.name: {aws.name!r} is used twice (integration names are shared "
                              "by [[webhooks]] and [[aws_integrations]])")
        names.add(aws.name)
        validate_aws(aws, where)
    _validate_radius(cfg)
    if not 12 <= cfg.psk.generated_length <= 32:
        raise ConfigError("psk.generated_length: must be 12..32 characters (tinydtls loads at most 16)")
    if not 0 <= cfg.psk.rotation_grace_seconds <= 10 * 365 * 86400:
        raise ConfigError("psk.rotation_grace_seconds: must be 0 to 315360000 (10 years)")
    if cfg.psk.regenerate_after_seconds < 0:
        raise ConfigError("psk.regenerate_after_seconds: must be >= 0")
    _validate_sms(cfg.sms)
    if cfg.log.format not in ("json", "text"):
        raise ConfigError("log.format: must be 'json' or 'text'")


def _validate_radius(cfg: GatewayConfig) -> None:
    import ipaddress

    r = cfg.radius
    for key in ("port", "disconnect_port"):
        if not 0 <= getattr(r, key) <= 65535:
            raise ConfigError(f"radius.{key}: {getattr(r, key)} is not a port number")
    for address, secret in r.clients.items():
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(f"radius.clients: {address!r} is not an IP address") from None
        if not secret:
            raise ConfigError(f"radius.clients.{address}: the shared secret is empty")
    if r.enabled and not r.clients:
        raise ConfigError("radius.clients: at least one accounting client (address = \"secret\") is needed")
    if r.disconnect_timeout_seconds <= 0 or r.disconnect_attempts < 1 or r.duplicate_window_seconds <= 0:
        raise ConfigError("radius.disconnect_timeout_seconds/disconnect_attempts/duplicate_window_seconds: must be positive")
    c = cfg.connectivity
    if c.data_quota_mb < 0 or c.sms_quota < 0 or c.lifetime_years < 1 or not 0 <= c.auto_topup_threshold_percent <= 100:
        raise ConfigError("connectivity: quotas must be >= 0, lifetime_years >= 1, the threshold 0..100 percent")
    if c.expiry_check_seconds <= 0:
        raise ConfigError("connectivity.expiry_check_seconds: must be positive")


def _validate_sms(sms: SmsConfig) -> None:
    if not 0 < sms.port <= 65535:
        raise ConfigError(f"sms.port: {sms.port} is not a port number")
    if sms.enabled and not sms.system_id:
        raise ConfigError("sms.system_id: required when sms.enabled (the ESME's name at the SMSC)")
    for key, limit in (("system_id", 15), ("password", 8), ("system_type", 12), ("source_address", 20)):
        if len(getattr(sms, key)) > limit:
            raise ConfigError(f"sms.{key}: SMPP 3.4 allows at most {limit} characters")
    if sms.window < 1:
        raise ConfigError("sms.window: at least 1")
    for key in ("enquire_link_seconds", "response_timeout_seconds", "reconnect_min_seconds", "reconnect_max_seconds",
                "throttle_min_seconds", "throttle_max_seconds", "retry_seconds", "validity_hours",
                "mo_parts_ttl_seconds"):
        if getattr(sms, key) <= 0:
            raise ConfigError(f"sms.{key}: must be positive")
    if sms.ca_file and not sms.tls:
        raise ConfigError("sms.ca_file: only used with sms.tls = true")


def validate_aws(aws: AwsIntegrationConfig, where: str, check_files: bool = True) -> None:
    """Refuse an AWS integration that cannot work, naming the key (the API reuses this)."""
    if not aws.name or len(aws.name) > 128:
        raise ConfigError(f"{where}.name: 1 to 128 characters")
    if aws.mode not in AWS_MODES:
        raise ConfigError(f"{where}.mode: must be \"mqtt\" or \"iot_data\", got {aws.mode!r}")
    bad = [t for t in aws.event_types if t not in ALL_EVENT_TYPES]
    if bad or not aws.event_types:
        raise ConfigError(f"{where}.event_types: unknown {', '.join(bad) or '(empty list)'}; "
                          f"known: {', '.join(ALL_EVENT_TYPES)}")
    if not aws.retry_schedule or any(s < 0 for s in aws.retry_schedule):
        raise ConfigError(f"{where}.retry_schedule: needs at least one non-negative delay")
    if aws.timeout_seconds <= 0:
        raise ConfigError(f"{where}.timeout_seconds: must be positive")
    if not 1 <= aws.concurrency <= 10000:
        raise ConfigError(f"{where}.concurrency: 1 to 10000")
    other = AWS_IOT_DATA_KEYS if aws.mode == "mqtt" else AWS_MQTT_KEYS
    for key in other:
        if getattr(aws, key) is not None:
            raise ConfigError(f"{where}.{key}: only for mode = \"{'iot_data' if aws.mode == 'mqtt' else 'mqtt'}\" "
                              f"(this integration has mode = \"{aws.mode}\")")
    if aws.mode == "mqtt":
        for key in ("host", "cert_file", "key_file"):
            if not getattr(aws, key):
                raise ConfigError(f"{where}.{key}: required for mode = \"mqtt\"")
        if aws.port is not None and not 1 <= aws.port <= 65535:
            raise ConfigError(f"{where}.port: {aws.port} is not a port number")
        if aws.keepalive is not None and not 0 <= aws.keepalive <= 65535:
            raise ConfigError(f"{where}.keepalive: 0 (off) to 65535 seconds (AWS IoT Core accepts 30 to 1200)")
        if aws.publish_rate_limit is not None and aws.publish_rate_limit < 0:
            raise ConfigError(f"{where}.publish_rate_limit: publishes per second, 0 for no limit")
        if aws.client_id is not None and not 1 <= len(aws.client_id.encode()) <= 128:
            raise ConfigError(f"{where}.client_id: 1 to 128 bytes (AWS IoT Core's limit)")
        low, high = aws.reconnect_min_seconds or 1.0, aws.reconnect_max_seconds or 60.0
        if low <= 0 or high < low:
            raise ConfigError(f"{where}.reconnect_max_seconds: must be at least reconnect_min_seconds (> 0)")
        if aws.mqtt_version is not None and aws.mqtt_version not in ("5", "3.1.1"):
            raise ConfigError(f"{where}.mqtt_version: \"5\" or \"3.1.1\", got {aws.mqtt_version!r}")
        if aws.tls_check_seconds is not None and aws.tls_check_seconds <= 0:
            raise ConfigError(f"{where}.tls_check_seconds: must be positive")
        if check_files:
            for key in ("ca_file", "cert_file", "key_file"):
                path = getattr(aws, key)
                if path is not None and not os.path.isfile(path):
                    raise ConfigError(f"{where}.{key}: {path} is not a readable file")
    else:
        if aws.role_arn is not None and not _ROLE_ARN.fullmatch(aws.role_arn):
            raise ConfigError(f"{where}.role_arn: expected arn:aws:iam::<12-digit account>:role/<name>")
        if aws.external_id is not None and aws.role_arn is None:
            raise ConfigError(f"{where}.external_id: needs role_arn (the external id is given when assuming it)")
        if aws.external_id is not None and not 2 <= len(aws.external_id) <= 1224:
            raise ConfigError(f"{where}.external_id: 2 to 1224 characters")
        if aws.session_name is not None and not re.fullmatch(r"[\w+=,.@-]{2,64}", aws.session_name):
            raise ConfigError(f"{where}.session_name: 2 to 64 of A-Z a-z 0-9 + = , . @ _ -")
        if aws.session_duration_seconds is not None and not 900 <= aws.session_duration_seconds <= 43200:
            raise ConfigError(f"{where}.session_duration_seconds: 900 to 43200")
        if aws.region is not None and not _REGION.fullmatch(aws.region):
            raise ConfigError(f"{where}.region: {aws.region!r} is not an AWS region name (e.g. eu-central-1)")
        for key in ("endpoint_url", "sts_endpoint_url"):
            url = getattr(aws, key)
            if url is not None and not url.startswith(("https://", "http://")):
                raise ConfigError(f"{where}.{key}: must start with https:// (http:// for local tests)")
        if aws.threads is not None and not 1 <= aws.threads <= 256:
            raise ConfigError(f"{where}.threads: 1 to 256")
        if aws.region is None:
            raise ConfigError(f"{where}.region: required for mode = \"iot_data\" (requests are signed for a region)")


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
            raw.setdefault(section, {})[key] = _text_override(value, name)
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


def worker_count(process: ProcessConfig) -> int:
    """The number of worker processes to run (``workers = 0``: one per CPU core this process may use)."""
    if process.workers:
        return process.workers
    if not sys.platform.startswith("linux"):
        return 1  # the per-source socket groups are Linux's (SO_ATTACH_REUSEPORT_CBPF)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
