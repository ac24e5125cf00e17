"""load_tests.processes: servers as whole process trees, started, paused, measured, stopped.

Real processes: `python -m http.server` on a free loopback port, and a tiny server that
first starts a helper (`sleep 60`) in a session of its own, as BentoML's circus does.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from load_tests.processes import ServerProcess, descendants, levels, tree_cpu_seconds
from services.demo.traffic import free_port

# serves like http.server, after starting a helper in a new session (out of its group)
TREE_SERVER = """\
import http.server, subprocess, sys
from pathlib import Path

helper = subprocess.Popen(["sleep", "60"], start_new_session=True)
Path(sys.argv[2]).write_text(str(helper.pid))
server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler
)
server.serve_forever()
"""


def _state(pid: int) -> str | None:
    """The process's status (psutil's: running, sleeping, stopped, zombie, …); None once
    it is gone."""
    try:
        return psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return None


RUNNING = (psutil.STATUS_RUNNING, psutil.STATUS_SLEEPING)


def _gone(pid: int) -> bool:
    # a killed helper reparented to an init that does not reap stays a zombie: dead all the same
    return _state(pid) in (None, psutil.STATUS_ZOMBIE)


def _wait_for(check: Callable[[], bool], timeout: float = 120) -> bool:
    """Poll a state; the limit only bounds a failing test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def _answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
        return bool(response.status == 200)


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """Servers a test started, stopped whatever the test did."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def _http_server(tmp_path: Path) -> tuple[ServerProcess, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = ServerProcess(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        url,
        cwd=tmp_path,
        log=tmp_path / "http.log",
    )
    return server, url


def test_a_server_starts_ready_is_measured_and_stops(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    server, url = _http_server(tmp_path)
    servers.append(server)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.pid
    server.start(timeout=60)
    assert _answers(url)
    pid = server.pid
    assert pid in descendants(pid)
    assert descendants(pid)[0] == pid
    assert _state(pid) in RUNNING
    cpu = server.cpu_seconds()
    assert isinstance(cpu, float)
    assert cpu >= 0
    assert tree_cpu_seconds(pid) >= 0
    server.stop()
    assert _state(pid) is None  # stopped and reaped
    server.stop()  # a second stop is a no-op


def test_pause_stops_and_resume_continues_every_process_of_the_tree(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    port, helper_file = free_port(), tmp_path / "helper.pid"
    script = tmp_path / "tree_server.py"
    script.write_text(TREE_SERVER)
    url = f"http://127.0.0.1:{port}/"
    server = ServerProcess(
        [sys.executable, str(script), str(port), str(helper_file)],
        url,
        cwd=tmp_path,
        log=tmp_path / "tree.log",
    )
    servers.append(server)
    server.start(timeout=60)
    helper = int(helper_file.read_text())
    tree = descendants(server.pid)
    assert sorted(tree) == sorted([server.pid, helper])  # the helper, though in its own session

    server.pause()
    assert _wait_for(lambda: all(_state(pid) == psutil.STATUS_STOPPED for pid in tree)), {
        pid: _state(pid) for pid in tree
    }
    assert server.cpu_seconds() >= 0  # measurable while paused
    server.resume()
    assert _wait_for(lambda: all(_state(pid) in RUNNING for pid in tree)), {
        pid: _state(pid) for pid in tree
    }
    assert _answers(url)

    server.pause()  # stop() must work on a paused tree too
    assert _wait_for(lambda: all(_state(pid) == psutil.STATUS_STOPPED for pid in tree))
    server.stop()
    assert _state(server.pid) is None
    assert _wait_for(lambda: _gone(helper)), _state(helper)


def test_a_helper_in_its_own_session_is_killed_by_stop(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    port, helper_file = free_port(), tmp_path / "helper.pid"
    script = tmp_path / "tree_server.py"
    script.write_text(TREE_SERVER)
    server = ServerProcess(
        [sys.executable, str(script), str(port), str(helper_file)],
        f"http://127.0.0.1:{port}/",
        log=tmp_path / "tree.log",
    )
    servers.append(server)
    server.start(timeout=60)
    helper = int(helper_file.read_text())
    assert _state(helper) in RUNNING
    assert os.getsid(helper) == helper != os.getsid(server.pid)  # out of the server's session
    server.stop()
    assert _wait_for(lambda: _gone(helper)), _state(helper)


def test_a_command_that_exits_at_once_raises_naming_its_log(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    log = tmp_path / "dead.log"
    server = ServerProcess(
        [sys.executable, "-c", "import sys; print('no model here'); sys.exit(3)"],
        f"http://127.0.0.1:{free_port()}/",
        log=log,
    )
    servers.append(server)
    with pytest.raises(RuntimeError, match=rf"exited with 3; see {re.escape(str(log))}"):
        server.start(timeout=60)
    assert "no model here" in log.read_text()  # the output went to the log
    server.stop()  # nothing left to stop


def test_a_server_never_ready_is_stopped_and_raises(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    log = tmp_path / "never.log"
    server = ServerProcess(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        f"http://127.0.0.1:{free_port()}/",  # nothing will listen there
        log=log,
    )
    servers.append(server)
    with pytest.raises(RuntimeError, match=rf"not ready within 0.5 s; see {re.escape(str(log))}"):
        server.start(timeout=0.5)
    assert _state(server.pid) is None


def test_the_server_is_pinned_to_the_core_given(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    port = free_port()
    server = ServerProcess(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        f"http://127.0.0.1:{port}/",
        cpu=0,
        cwd=tmp_path,
        env={"MLGATE_TEST_MARKER": "pinned"},
        log=tmp_path / "pinned.log",
    )
    servers.append(server)
    assert server.argv[:3] == ["/usr/bin/taskset", "-c", "0"]
    server.start(timeout=60)
    process = psutil.Process(server.pid)
    assert process.cpu_affinity() == [0]
    assert process.environ()["MLGATE_TEST_MARKER"] == "pinned"


def test_tree_cpu_seconds_adds_up_the_cpu_of_every_process_below(tmp_path: Path) -> None:
    """A parent and its child each burn a fixed amount of their own CPU time, then wait."""
    burn = "import time\nwhile time.process_time() < {0}: pass\n"
    child = tmp_path / "child.py"
    child.write_text(burn.format(0.3) + "print('done', flush=True)\ntime.sleep(60)\n")
    parent = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, {str(child)!r}], stdout=subprocess.PIPE)\n"
        + burn.format(0.2)
        + "child.stdout.readline()\nprint('done', flush=True)\ntime.sleep(60)\n"
    )
    with subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == b"done\n"  # both have burnt their share
            tree = descendants(process.pid)
            assert len(tree) == 2
            assert tree[0] == process.pid
            # clock ticks are 10 ms; interpreter start-up only adds to it
            assert tree_cpu_seconds(process.pid) >= 0.5 - 0.03
            assert tree_cpu_seconds(tree[1]) >= 0.3 - 0.02
            assert tree_cpu_seconds(tree[1]) < tree_cpu_seconds(process.pid)
        finally:
            for pid in reversed(descendants(process.pid)):
                os.kill(pid, signal.SIGKILL)
    assert descendants(process.pid) == [process.pid]  # gone, reaped: the root alone is left


def test_levels_stopped_states_and_the_log_tail_of_a_tree(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    """Resume continues the helper before its parent; what is still stopped is reported."""
    port, helper_file = free_port(), tmp_path / "helper.pid"
    script = tmp_path / "tree_server.py"
    script.write_text(
        TREE_SERVER.replace(
            "server.serve_forever()", "print('serving', flush=True)\nserver.serve_forever()"
        )
    )
    server = ServerProcess(
        [sys.executable, str(script), str(port), str(helper_file)],
        f"http://127.0.0.1:{port}/",
        log=tmp_path / "tree.log",
    )
    servers.append(server)
    assert server.exit_code() is None  # not started
    server.start(timeout=60)
    helper = int(helper_file.read_text())
    assert levels(server.pid) == [[server.pid], [helper]]
    assert server.stopped() == []
    assert sorted(server.states()) == sorted([server.pid, helper])
    server.pause()
    assert _wait_for(lambda: sorted(server.stopped()) == sorted([server.pid, helper]))
    server.resume(settle=0.2)
    assert server.stopped() == []
    assert _answers(f"http://127.0.0.1:{port}/")
    assert server.identities() == server.identities()
    assert _wait_for(lambda: "serving" in server.log_tail())
    assert server.exit_code() is None
    server.stop()
    assert server.exit_code() is not None
