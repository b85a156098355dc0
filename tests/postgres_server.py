"""A throwaway PostgreSQL server for the Django integration's tests.

:class:`PostgresServer` runs Debian's ``postgres`` as a child process: a
cluster made by ``initdb`` in a fresh temporary directory, listening on a
free port of 127.0.0.1 only (its Unix socket in that directory), trust
authentication, no fsync. PostgreSQL refuses to run as root, so under root
the server runs as the ``postgres`` user the Debian package creates.
:meth:`~PostgresServer.stop` (or garbage collection, or interpreter exit)
stops it and removes the directory.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "need_postgres"]

HOST = "127.0.0.1"
INSTALL_HINT = "PostgreSQL is not installed (apt-get install -y postgresql)"


def postgres_bindir() -> Path | None:
    """Where ``initdb`` and ``postgres`` are: on PATH, else Debian's
    ``/usr/lib/postgresql/<version>/bin`` (the newest), else None."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


def need_postgres() -> Path:
    """The binaries' directory; skip the test when PostgreSQL is missing,
    except under CI, where a missing server is a broken setup and fails."""
    bindir = postgres_bindir()
    problem = None
    if bindir is None or (os.geteuid() == 0 and _postgres_user() is None):
        problem = INSTALL_HINT
    elif importlib.util.find_spec("psycopg") is None:
        problem = "psycopg is not installed (the test dependency group has it)"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    assert bindir is not None
    return bindir


def _postgres_user() -> str | None:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes], directory: str) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # "fast" shutdown: disconnect clients, stop
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    shutil.rmtree(directory, ignore_errors=True)


class PostgresServer:
    """One throwaway cluster; ``dsn`` and ``port`` once :meth:`start` returned."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = _free_port()
        self.directory = tempfile.mkdtemp(prefix="blinker-events-pg-")
        self.user = _postgres_user() if os.geteuid() == 0 else None
        if self.user is not None:
            os.chown(self.directory, pwd.getpwnam(self.user).pw_uid, -1)
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def dsn(self) -> str:
        return f"host={HOST} port={self.port} user=postgres dbname=postgres"

    def start(self, timeout: float = 20.0) -> None:
        data = os.path.join(self.directory, "data")
        subprocess.run(
            [str(self.bindir / "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
            user=self.user,
            check=True,
            capture_output=True,
        )
        log = open(os.path.join(self.directory, "log"), "wb")  # noqa: SIM115 -- the server's, closed with it
        self._process = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                *("-D", data, "-p", str(self.port), "-k", self.directory),
                *("-c", f"listen_addresses={HOST}", "-c", "fsync=off", "-c", "max_connections=100"),
            ],
            user=self.user,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._finalizer = weakref.finalize(self, _stop, self._process, self.directory)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    pass
                # Listening is not accepting yet: a query proves it is up.
                if self.query("SELECT 1") == 1:
                    return
            except Exception:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start: {self.log_tail()}") from None
                time.sleep(0.05)

    def query(self, sql: str, *params: object) -> object:
        """The first column of the first row of ``sql``, on a connection of its own."""
        import psycopg

        with psycopg.connect(self.dsn, application_name="blinker-events-tests", connect_timeout=5) as conn:
            row = conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def log_tail(self) -> str:
        try:
            return Path(self.directory, "log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
