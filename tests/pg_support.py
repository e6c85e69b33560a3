"""A PostgreSQL server for the tests: NCE_TEST_PG_URL if set, else one of our own.

Our own: Debian's ``postgresql`` package's ``initdb`` into a temporary folder, started on a free
loopback port with its socket in that folder (as the ``postgres`` user when the tests run as
root: the server refuses root), stopped when the test process exits. Each test gets a database
of its own (:func:`fresh_database`). Without server binaries the PostgreSQL tests are skipped
with the reason, except under CI (``CI=true``), where that is a failure: CI installs the package.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

_server: tuple[str, str] | None = None  # (admin URL, folder)
_control: list[str] = []  # pg_ctl command prefix of our own server (as_user + pg_ctl -D data)


def _binaries() -> Path | None:
    """The folder of initdb/postgres: Debian keeps them outside PATH, newest version first."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if os.access(os.path.join(folder, "initdb"), os.X_OK) and os.access(os.path.join(folder, "postgres"), os.X_OK):
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("postgres") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL tests cannot run under CI: {reason} (.ci/run installs Debian's postgresql)")
    pytest.skip(f"no PostgreSQL: {reason}; install Debian's postgresql or set NCE_TEST_PG_URL")


def _start() -> tuple[str, str]:
    binaries = _binaries()
    if binaries is None:
        _unavailable("initdb/postgres not found (Debian package postgresql)")
    assert binaries is not None
    folder = tempfile.mkdtemp(prefix="nce-pg-")
    os.chmod(folder, 0o755)
    data = os.path.join(folder, "data")
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    port = _free_port()
    subprocess.run([*as_user, str(binaries / "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
                    "--no-sync", "-E", "UTF8", "--locale=C"], check=True, capture_output=True)
    with open(os.path.join(data, "postgresql.conf"), "a", encoding="utf-8") as conf:  # kept across restarts
        conf.write(f"\nport = {port}\nunix_socket_directories = '{folder}'\nlisten_addresses = '127.0.0.1'\n"
                   "max_connections = 200\n")
    log = os.path.join(folder, "server.log")
    subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "60", "start"],
                   check=True, capture_output=True)

    _control[:] = [*as_user, str(binaries / "pg_ctl"), "-D", data, "-l", log]

    def stop() -> None:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)

    atexit.register(stop)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", folder


def admin_url() -> str:
    """The URL of the server's maintenance database (started on first use)."""
    global _server
    if os.environ.get("NCE_TEST_PG_URL"):
        return os.environ["NCE_TEST_PG_URL"]
    if _server is None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            _unavailable("psycopg is not installed")
        _server = _start()
    return _server[0]


def fresh_database() -> str:
    """The URL of a new, empty database on the test server."""
    import psycopg

    admin = admin_url()
    name = f"nce_{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return admin.rsplit("/", 1)[0] + "/" + name


def server_down_and_up(down: float = 0.0) -> None:
    """Stop our own server (fast: connections cut), wait ``down`` seconds, start it again.
    Skips when the tests use a server of the machine (NCE_TEST_PG_URL): we do not restart that."""
    server_down()
    time.sleep(down)
    server_up()


def server_down(mode: str = "fast") -> None:
    """Stop our own server (``fast``: connections cut, a clean shutdown; ``immediate``: as a
    crash, recovery from the WAL at the next start); skip with a server of the machine."""
    if os.environ.get("NCE_TEST_PG_URL") or not _control:
        pytest.skip("the PostgreSQL server is not ours to stop (NCE_TEST_PG_URL)")
    subprocess.run([*_control, "-m", mode, "-w", "stop"], check=True, capture_output=True)


def server_up() -> None:
    subprocess.run([*_control, "-w", "-t", "60", "start"], check=True, capture_output=True)
