"""``blinker_events.redis.testing.RedisServer``: a real, throwaway redis-server.

These tests start real servers. Without ``redis-server`` they are skipped,
except under CI, where a missing server is a broken setup and must fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

if shutil.which("redis-server") is None and not os.environ.get("CI"):
    pytest.skip("redis-server is not installed (apt-get install -y redis-server)", allow_module_level=True)

from blinker_events.redis.testing import RedisServer


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A started server without persistence, stopped afterwards."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def test_start_answers_ping(server: RedisServer) -> None:
    assert server.is_running()
    assert server.cli("PING").strip() == "PONG"
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert (server.directory / "redis.log").is_file()


def test_starting_twice_is_an_error(server: RedisServer) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        server.start()


def test_cli_error_reply_raises(server: RedisServer) -> None:
    with pytest.raises(subprocess.CalledProcessError):
        server.cli("NO-SUCH-COMMAND")


def test_appendonly_data_survives_restart() -> None:
    with RedisServer(appendonly=True) as server:
        port, directory = server.port, server.directory
        assert server.cli("SET", "k", "v").strip() == "OK"
        server.restart()
        assert server.is_running()
        assert (server.port, server.directory) == (port, directory)
        assert server.cli("GET", "k") == "v\n"


def test_appendonly_data_survives_kill() -> None:
    # appendfsync always: an acknowledged write is on disk even after SIGKILL.
    with RedisServer(appendonly=True) as server:
        server.cli("SET", "k", "v")
        server.kill()
        assert not server.is_running()
        server.start()
        assert server.cli("GET", "k") == "v\n"


def test_without_appendonly_data_is_lost_on_restart(server: RedisServer) -> None:
    server.cli("SET", "k", "v")
    server.restart()
    assert server.cli("GET", "k") == "\n"


def test_kill(server: RedisServer) -> None:
    server.kill()
    assert not server.is_running()
    with pytest.raises(subprocess.CalledProcessError):
        server.cli("PING")


def test_shutdown_then_start(server: RedisServer) -> None:
    server.shutdown()
    assert not server.is_running()
    server.shutdown()  # a no-op once stopped
    server.start()
    assert server.cli("PING").strip() == "PONG"


def test_stop_removes_directory_and_is_idempotent() -> None:
    server = RedisServer()
    server.start()
    directory = server.directory
    assert directory.is_dir()
    server.stop()
    assert not server.is_running()
    assert not directory.exists()
    server.stop()
    assert not directory.exists()


def test_context_manager() -> None:
    with RedisServer() as server:
        assert server.is_running()
        assert server.cli("PING").strip() == "PONG"
        directory = server.directory
    assert not server.is_running()
    assert not directory.exists()


def test_startup_failure_reports_log() -> None:
    # Two servers on one port: the second cannot bind and says why in its log.
    with RedisServer() as first:
        second = RedisServer(startup_timeout=5.0)
        second.port = first.port
        try:
            with pytest.raises(RuntimeError, match="exited with code") as excinfo:
                second.start()
            assert "last lines of" in str(excinfo.value)
            assert not second.is_running()
        finally:
            second.stop()
        assert first.cli("PING").strip() == "PONG"


def test_missing_executable() -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install -y redis-server"):
        RedisServer(executable="/nonexistent/redis-server")
