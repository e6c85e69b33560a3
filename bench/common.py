"""Helpers shared by the benchmarks: free ports, child processes, result tables."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def child(args: Sequence[str], ready: str = "ready", timeout: float = 30.0,
          env: dict[str, str] | None = None, cwd: str | None = None) -> Iterator[subprocess.Popen]:
    """Run a process until the block ends; wait for a line containing ``ready`` on its stdout."""
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env={**os.environ, **(env or {})}, cwd=cwd)
    try:
        deadline = time.monotonic() + timeout
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"{' '.join(args)} exited before it was ready")
            if ready in line:
                break
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def coap_gateway_config(directory: Path, coap_port: int, extra: str = "", *, name: str = "bench",
                        synchronous: str = "full", store_url: str = "", api: str = "") -> Path:
    """A TOML file for a gateway child process serving only plain CoAP on ``coap_port`` (no UDP,
    no CoAPs, API on an ephemeral port), its store in ``directory`` (or at ``store_url``);
    ``extra`` adds sections, ``api`` lines to the ``[api]`` section."""
    path = directory / f"{name}.toml"
    path.write_text(f"""
[store]
path = "{directory / f'{name}.db'}"
url = "{store_url}"
synchronous = "{synchronous}"
[udp]
enabled = false
[coap]
bind = "127.0.0.1"
port = {coap_port}
[coaps]
enabled = false
[api]
port = 0
{api}
[targets]
allow_loopback = true
{extra}""")
    return path


def receiver_tls(directory: Path) -> tuple[str, str, str]:
    """A throw-away CA and a certificate for localhost/127.0.0.1 signed by it, for the HTTPS
    receivers of the benchmarks: (ca_file, cert_file, key_file) written into ``directory``."""
    import trustme

    ca = trustme.CA()
    ca_file = str(directory / "webhook-ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = str(directory / "webhook.pem"), str(directory / "webhook.key")
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    return ca_file, cert_file, key_file


def processes_cpu(name: str) -> float:
    """CPU seconds used so far by every process called ``name`` that we may read (a local
    PostgreSQL's backends, which do the database's share of the work)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        if stat.split("(", 1)[1].rsplit(")", 1)[0] == name:
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], note: str = "") -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*(fmt(v) for v in row))
    console = Console(width=120)
    console.print(table)
    if note:
        console.print(note)


def fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
