"""A throwaway ``redis-server`` for tests and benchmarks.

:class:`RedisServer` runs a real ``redis-server`` process of its own: it listens
on 127.0.0.1 only, on a port picked at construction, and keeps its files (log,
append-only file) in a fresh temporary directory. The project's own tests and
benchmarks use it, and applications may use it in theirs::

    with RedisServer(appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        ...
        server.restart()  # with appendonly=True the data survives

Only the standard library is needed: the server is checked and shut down by
speaking RESP over a plain socket, and :meth:`RedisServer.cli` shells out to
``redis-cli``. Both programs come with Debian's ``redis-server`` package.

The server is never daemonized: it is a child process of the test run, so
:meth:`~RedisServer.kill` can simulate a crash, and a server that was not
stopped is killed when its :class:`RedisServer` is garbage collected or the
interpreter exits -- in the process that made it: a forked child's exit
leaves the server and its directory alone.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType

__all__ = ["RedisServer"]

_HOST = "127.0.0.1"
_INSTALL_HINT = "install Debian's redis-server package (apt-get install -y redis-server)"
_SHUTDOWN_TIMEOUT = 10.0
_LOG_TAIL_LINES = 30


def _resp_command(*parts: str) -> bytes:
    """Encode a command as a RESP array of bulk strings, as ``redis-cli`` sends it."""
    encoded = [part.encode() for part in parts]
    chunks = [b"*%d\r\n" % len(encoded)]
    for part in encoded:
        chunks.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(chunks)


def _free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now.

    The kernel picks it, so concurrent test runs do not collide; another
    process could still take it before the server binds it, which is rare
    enough to accept in tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class _Resources:
    """What must be released even if the owning :class:`RedisServer` is just dropped.

    Kept apart from the server object so that the ``weakref.finalize`` callback
    does not keep the server itself alive.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        # A forked child inherits this object and its exit-time finalizer;
        # the server and its directory stay the business of their maker.
        self.owner = os.getpid()

    def release(self) -> None:
        if os.getpid() != self.owner:
            return
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self.remove_directory()

    def remove_directory(self) -> None:
        """Delete the directory, only in the process that made it."""
        if os.getpid() == self.owner:
            shutil.rmtree(self.directory, ignore_errors=True)


class _Connection:
    """One RESP connection to 127.0.0.1 with a single deadline for all its I/O."""

    def __init__(self, port: int, deadline: float) -> None:
        self._deadline = deadline
        self._buffer = b""
        self._sock = socket.create_connection((_HOST, port), timeout=self._remaining())

    def __enter__(self) -> _Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._sock.close()

    def send(self, data: bytes) -> None:
        self._sock.settimeout(self._remaining())
        self._sock.sendall(data)

    def line(self) -> bytes:
        """The next reply line, without its CRLF.

        :raises ConnectionError: if the server closes the connection first.
        :raises TimeoutError: at the deadline.
        """
        while b"\r\n" not in self._buffer:
            self._fill()
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def bulk(self) -> bytes | None:
        """The next reply as a bulk string; None for a nil or non-bulk reply."""
        header = self.line()
        if not header.startswith(b"$") or header == b"$-1":
            return None
        size = int(header[1:])
        while len(self._buffer) < size + 2:
            self._fill()
        body, self._buffer = self._buffer[:size], self._buffer[size + 2 :]
        return body

    def _fill(self) -> None:
        self._sock.settimeout(self._remaining())
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("redis-server closed the connection")
        self._buffer += chunk

    def _remaining(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("redis-server did not answer in time")
        return remaining


class RedisServer:
    """A redis-server of its own on 127.0.0.1, a free port and a temporary directory.

    The port and the directory are chosen once, at construction, and kept
    across :meth:`shutdown`/:meth:`start` and :meth:`kill`/:meth:`start`, so a
    restarted server is reachable at the same :attr:`url` and, with
    ``appendonly=True``, reloads the data it had written. :meth:`stop` (or
    leaving the ``with`` block) shuts the server down and deletes the
    directory; starting it again afterwards begins with an empty directory.
    Only the process that made the directory deletes it (a forked child's
    :meth:`stop` shuts the server down but leaves the directory).

    RDB snapshots are disabled (``--save ""``). With ``appendonly=True`` every
    write is fsynced before it is acknowledged (``--appendfsync always``), so
    even data acknowledged right before :meth:`kill` survives a restart.

    :param appendonly: persist writes in an append-only file in ``directory``.
    :param executable: path (or name on ``PATH``) of ``redis-server``; by default the one on ``PATH``.
    :param startup_timeout: seconds :meth:`start` waits for the server to answer PING.
    :param tls: also listen for TLS on ``tls_port`` (see :attr:`tls_url`), with a
        certificate for 127.0.0.1 signed by a throwaway CA (:attr:`ca_file`) that
        ``openssl`` makes at the first start; the plain port stays open for this
        class's own use and :meth:`cli`.
    :raises FileNotFoundError: if there is no ``redis-server`` (or, with ``tls``, no ``openssl``).
    """

    port: int
    directory: Path

    def __init__(
        self,
        *,
        appendonly: bool = False,
        executable: str | None = None,
        startup_timeout: float = 10.0,
        tls: bool = False,
    ) -> None:
        # which() also accepts a path, and checks that it is an executable file.
        resolved = shutil.which(executable if executable is not None else "redis-server")
        if resolved is None:
            where = "on PATH" if executable is None else f"at {executable}"
            raise FileNotFoundError(f"no redis-server {where}; {_INSTALL_HINT}")
        self.executable = resolved
        self.appendonly = appendonly
        self.startup_timeout = startup_timeout
        if tls and shutil.which("openssl") is None:
            raise FileNotFoundError("tls=True needs openssl to make a certificate")
        self.tls = tls
        self.port = _free_port()
        self.tls_port = _free_port() if tls else None
        self.directory = Path(tempfile.mkdtemp(prefix="blinker-events-redis-"))
        self._resources = _Resources(self.directory)
        # Without this a forgotten server would outlive the test run as an orphan.
        self._finalizer = weakref.finalize(self, self._resources.release)

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<RedisServer {self.url} {state} dir={self.directory}>"

    @property
    def url(self) -> str:
        """The ``redis://`` URL of database 0, e.g. for ``redis.Redis.from_url``."""
        return f"redis://{_HOST}:{self.port}/0"

    @property
    def tls_url(self) -> str:
        """The ``rediss://`` URL of database 0 on the TLS port (``tls=True`` only);
        clients need :attr:`ca_file` to trust it."""
        if self.tls_port is None:
            raise RuntimeError("this server was made without tls=True")
        return f"rediss://{_HOST}:{self.tls_port}/0"

    @property
    def ca_file(self) -> Path:
        """The CA certificate that signed the server's TLS certificate."""
        return self.directory / "ca.crt"

    @property
    def log_file(self) -> Path:
        """The server's log file in ``directory``; its stdout and stderr go nowhere else."""
        return self.directory / "redis.log"

    def is_running(self) -> bool:
        """Whether the server process has been started and has not exited."""
        process = self._resources.process
        return process is not None and process.poll() is None

    def start(self) -> None:
        """Launch the server and return once it answers PING.

        The directory is recreated if :meth:`stop` removed it.

        :raises RuntimeError: if the server is already running, or if it exits
            or does not answer within ``startup_timeout`` seconds; in that case
            it has been killed and the message ends with the tail of its log.
        """
        if self.is_running():
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            self.executable,
            "--port", str(self.port),
            "--bind", _HOST,
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            *(["--appendfsync", "always"] if self.appendonly else []),
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", str(self.log_file),
            *self._tls_arguments(),
        ]  # fmt: skip
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._resources.process = process
        deadline = time.monotonic() + self.startup_timeout
        # Connections are refused until the server has bound the port, so a refusal
        # means "not yet", not failure; only the process exiting or the deadline ends the wait.
        while process.poll() is None and time.monotonic() < deadline:
            if self._answered_by_own_process(deadline):
                return
            time.sleep(0.02)
        exited = process.poll()
        self.kill()
        reason = (
            f"exited with code {exited}" if exited is not None else f"did not answer PING in {self.startup_timeout} s"
        )
        raise RuntimeError(f"redis-server on port {self.port} {reason}; {self._log_tail()}")

    def shutdown(self) -> None:
        """Shut the server down gracefully; nothing happens if it is not running.

        Sends SHUTDOWN, which with ``appendonly=True`` fsyncs the append-only
        file, and waits up to 10 seconds for the process to exit before
        killing it. :meth:`start` may be called again afterwards.

        :raises RuntimeError: if the server refused to shut down (it has been killed).
        """
        process = self._resources.process
        if process is None or process.poll() is not None:
            return
        deadline = time.monotonic() + _SHUTDOWN_TIMEOUT
        reply = b""
        try:
            with _Connection(self.port, deadline) as connection:
                connection.send(_resp_command("SHUTDOWN"))
                # A successful SHUTDOWN sends no reply: the server just closes the
                # connection as it exits. Only a refusal comes back as a line.
                reply = connection.line()
        except OSError:
            # Closed (the normal case), or alive but unreachable: then the wait below ends in a kill.
            pass
        if reply.startswith(b"-"):
            self.kill()
            raise RuntimeError(
                f"redis-server on port {self.port} refused SHUTDOWN: {reply.decode(errors='replace').strip()}; "
                f"it was killed; {self._log_tail()}"
            )
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill the server with SIGKILL, like a crash, and wait for it to exit.

        Nothing is flushed: what survives is what was already written (with
        ``appendonly=True`` and ``appendfsync always``, every acknowledged write).
        """
        process = self._resources.process
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()

    def restart(self) -> None:
        """:meth:`shutdown` gracefully, then :meth:`start` again on the same port and directory."""
        self.shutdown()
        self.start()

    def stop(self) -> None:
        """Shut the server down if it is running and delete ``directory``. Idempotent."""
        try:
            self.shutdown()
        finally:
            self._resources.remove_directory()

    def cli(self, *args: str) -> str:
        """Run ``redis-cli -h 127.0.0.1 -p PORT -e ARGS...`` and return its standard output.

        Replies are printed raw (``redis-cli`` does so when its output is not a
        terminal) and end with a newline: ``cli("GET", "k")`` returns ``"v\\n"``.

        :raises subprocess.CalledProcessError: if ``redis-cli`` fails, including
            on an error reply (``-e``); the error text is attached as a note.
        :raises FileNotFoundError: if there is no ``redis-cli``.
        """
        argv = [self._cli_executable(), "-h", _HOST, "-p", str(self.port), "-e", *args]
        completed = subprocess.run(argv, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            error = subprocess.CalledProcessError(completed.returncode, argv, completed.stdout, completed.stderr)
            # CalledProcessError's message leaves out stderr, where the reason is.
            error.add_note(f"redis-cli stderr: {completed.stderr.strip()}")
            raise error
        return completed.stdout

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _tls_arguments(self) -> list[str]:
        if self.tls_port is None:
            return []
        key, cert = self.directory / "server.key", self.directory / "server.crt"
        if not cert.exists():
            self._make_certificates(key, cert)
        return [
            "--tls-port", str(self.tls_port),
            "--tls-cert-file", str(cert),
            "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(self.ca_file),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def _make_certificates(self, key: Path, cert: Path) -> None:
        """A throwaway CA and a server certificate for 127.0.0.1, valid two days."""
        ca_key, request, extensions = (self.directory / name for name in ("ca.key", "server.csr", "san.cnf"))
        # What a strict verifier (Python 3.13's default) asks of a server certificate.
        extensions.write_text(
            f"subjectAltName=IP:{_HOST}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid,issuer\n"
        )
        commands = [
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(ca_key), "-out", str(self.ca_file), "-subj", "/CN=blinker-events test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["openssl", "req", "-newkey", "rsa:2048", "-nodes",
             "-keyout", str(key), "-out", str(request), "-subj", f"/CN={_HOST}"],
            ["openssl", "x509", "-req", "-in", str(request), "-CA", str(self.ca_file), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions)],
        ]  # fmt: skip
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)

    def _cli_executable(self) -> str:
        # Prefer the redis-cli installed next to the server so both have the same version.
        sibling = Path(self.executable).with_name("redis-cli")
        if sibling.is_file():
            return str(sibling)
        found = shutil.which("redis-cli")
        if found is None:
            raise FileNotFoundError(f"no redis-cli next to {self.executable} or on PATH; {_INSTALL_HINT}")
        return found

    def _answered_by_own_process(self, deadline: float) -> bool:
        """Whether the server on :attr:`port` answers PING and is this object's process.

        A PONG alone is not enough: if the port was taken by another server in
        the meantime, that one answers while ours fails to bind and exits, and
        a later SHUTDOWN would go to the wrong server. INFO's ``process_id``
        tells them apart.
        """
        process = self._resources.process
        try:
            with _Connection(self.port, min(deadline, time.monotonic() + 1.0)) as connection:
                connection.send(_resp_command("PING") + _resp_command("INFO", "server"))
                # A server still loading its AOF answers -LOADING: not ready yet.
                if connection.line() != b"+PONG":
                    return False
                info = connection.bulk()
        except OSError:
            return False
        for line in (info or b"").splitlines():
            key, _, value = line.partition(b":")
            if key == b"process_id":
                return process is not None and value.strip() == str(process.pid).encode()
        return False

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError as error:
            return f"no log ({error})"
        tail = "\n".join(lines[-_LOG_TAIL_LINES:])
        return f"last lines of {self.log_file}:\n{tail}"
