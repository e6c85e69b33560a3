"""A private Mosquitto for tests and benchmarks: mutual TLS on an ephemeral loopback port.

Debian's ``mosquitto`` stands in for AWS IoT Core: ``require_certificate true`` (a client
without a certificate from the test CA is refused), the certificate's CN is the user name, and
an ACL file denies some topics, as an IoT policy would. Each broker gets its own directory,
config and port, and is stopped by whoever started it; the system Mosquitto is never touched.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import trustme

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ClientFiles:
    cert_file: str
    key_file: str


@dataclass
class Pki:
    """A test CA with a server certificate (localhost, 127.0.0.1) and client certificates."""

    directory: Path
    ca: trustme.CA = field(default_factory=trustme.CA)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = str(self.directory / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        server = self.ca.issue_cert("localhost", "127.0.0.1", common_name="localhost")
        self.server_cert = str(self.directory / "server.pem")
        self.server_key = str(self.directory / "server.key")
        server.cert_chain_pems[0].write_to_path(self.server_cert)
        server.private_key_pem.write_to_path(self.server_key)

    def client(self, name: str, *, ca: trustme.CA | None = None, not_after: dt.datetime | None = None,
               not_before: dt.datetime | None = None) -> ClientFiles:
        """A client certificate whose CN (the broker's user name) is ``name``."""
        issued = (ca or self.ca).issue_cert(f"{name}.clients.test", common_name=name, not_after=not_after,
                                            not_before=not_before)
        cert = self.directory / f"{name}.pem"
        key = self.directory / f"{name}.key"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        return ClientFiles(str(cert), str(key))


class Mosquitto:
    """One broker process; ``start``/``stop`` may be called again (same port, same config)."""

    def __init__(self, directory: Path, pki: Pki, *, acl: str | None = None, extra: str = "",
                 persistence: bool = False) -> None:
        self.directory = directory
        self.pki = pki
        self.port = free_tcp_port()
        self.process: subprocess.Popen | None = None
        self.config = directory / "mosquitto.conf"
        lines = [
            "per_listener_settings false",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {directory}/",
            "user root",  # stay the user that owns the test's files
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            f"listener {self.port} 127.0.0.1",
            f"cafile {pki.ca_file}",
            f"certfile {pki.server_cert}",
            f"keyfile {pki.server_key}",
            "require_certificate true",
            "use_identity_as_username true",
        ]
        if acl is not None:
            acl_file = directory / "acl"
            acl_file.write_text(acl)
            lines.append(f"acl_file {acl_file}")
        self.config.write_text("\n".join(line for line in lines if line) + "\n" + extra)
        self.log = directory / "mosquitto.log"

    def command(self) -> list[str]:
        return [MOSQUITTO, "-c", str(self.config)]

    def start(self, timeout: float = 10.0) -> None:
        assert self.process is None
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command()[0]} exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.command()[0]} did not start listening")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


AMQTT = shutil.which("amqtt") or str(Path(sys.executable).parent / "amqtt")


class Amqtt(Mosquitto):
    """amqtt's broker (Python, MQTT 3.1.1 only) in its own process: TLS on loopback with the
    test CA (client certificates asked for, not required), anonymous clients, no ACL."""

    def __init__(self, directory: Path, pki: Pki) -> None:
        self.directory, self.pki = directory, pki
        self.port = free_tcp_port()
        self.process = None
        self.config = directory / "amqtt.yaml"
        self.log = directory / "amqtt.log"
        self.config.write_text(f"""listeners:
  default:
    type: tcp
    bind: 127.0.0.1:{self.port}
    ssl: true
    cafile: {pki.ca_file}
    certfile: {pki.server_cert}
    keyfile: {pki.server_key}
plugins:
  amqtt.plugins.authentication.AnonymousAuthPlugin:
    allow_anonymous: true
""")

    def command(self) -> list[str]:
        return [AMQTT, "-c", str(self.config)]

    def start(self, timeout: float = 30.0) -> None:
        super().start(timeout)


def available() -> bool:
    return os.path.exists(MOSQUITTO)
