"""``blinker_events.redis.testing.RedisServer``: a real, throwaway redis-server.

These tests start real servers. Without ``redis-server`` they are skipped,
except under CI, where a missing redis_server is a broken setup and must fail.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from blinker_events.redis.testing import RedisServer
from tests.conftest import need_redis_server


@pytest.fixture(autouse=True)
def _needs_redis_server() -> None:
    need_redis_server()


def test_start_answers_ping(redis_server: RedisServer) -> None:
    assert redis_server.is_running()
    assert redis_server.cli("PING").strip() == "PONG"
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert (redis_server.directory / "redis.log").is_file()


def test_starting_twice_is_an_error(redis_server: RedisServer) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        redis_server.start()


def test_cli_error_reply_raises(redis_server: RedisServer) -> None:
    with pytest.raises(subprocess.CalledProcessError):
        redis_server.cli("NO-SUCH-COMMAND")


def test_appendonly_data_survives_restart() -> None:
    with RedisServer(appendonly=True) as redis_server:
        port, directory = redis_server.port, redis_server.directory
        assert redis_server.cli("SET", "k", "v").strip() == "OK"
        redis_server.restart()
        assert redis_server.is_running()
        assert (redis_server.port, redis_server.directory) == (port, directory)
        assert redis_server.cli("GET", "k") == "v\n"


_FORK_AND_EXIT = """
import os, sys
from blinker_events.redis.testing import RedisServer
server = RedisServer(appendonly=True)
server.start()
server.cli("SET", "k", "v")

def child_exits():
    pid = os.fork()
    if pid == 0:
        sys.exit(0)  # a normal exit: the interpreter's exit-time cleanup runs
    os.waitpid(pid, 0)

child_exits()  # while the server runs
print(server.is_running(), server.directory.is_dir(), server.cli("GET", "k").strip())
server.shutdown()
child_exits()  # between shutdown() and start()
print(server.directory.is_dir())
server.start()
print(server.cli("GET", "k").strip())
directory = server.directory
server.stop()
print(directory.exists())
"""


def test_a_forked_childs_exit_leaves_the_server_and_its_directory_alone() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FORK_AND_EXIT], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split("\n") == ["True True v", "True", "v", "False", ""]


def test_appendonly_data_survives_kill() -> None:
    # appendfsync always: an acknowledged write is on disk even after SIGKILL.
    with RedisServer(appendonly=True) as redis_server:
        redis_server.cli("SET", "k", "v")
        redis_server.kill()
        assert not redis_server.is_running()
        redis_server.start()
        assert redis_server.cli("GET", "k") == "v\n"


def test_without_appendonly_data_is_lost_on_restart(redis_server: RedisServer) -> None:
    redis_server.cli("SET", "k", "v")
    redis_server.restart()
    assert redis_server.cli("GET", "k") == "\n"


def test_kill(redis_server: RedisServer) -> None:
    redis_server.kill()
    assert not redis_server.is_running()
    with pytest.raises(subprocess.CalledProcessError):
        redis_server.cli("PING")


def test_shutdown_then_start(redis_server: RedisServer) -> None:
    redis_server.shutdown()
    assert not redis_server.is_running()
    redis_server.shutdown()  # a no-op once stopped
    redis_server.start()
    assert redis_server.cli("PING").strip() == "PONG"


def test_stop_removes_directory_and_is_idempotent() -> None:
    redis_server = RedisServer()
    redis_server.start()
    directory = redis_server.directory
    assert directory.is_dir()
    redis_server.stop()
    assert not redis_server.is_running()
    assert not directory.exists()
    redis_server.stop()
    assert not directory.exists()


def test_context_manager() -> None:
    with RedisServer() as redis_server:
        assert redis_server.is_running()
        assert redis_server.cli("PING").strip() == "PONG"
        directory = redis_server.directory
    assert not redis_server.is_running()
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
