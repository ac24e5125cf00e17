"""A real, throwaway PostgreSQL server for the tests, on a free loopback port.

    python -m tests.support.pgserver run -- pytest ...

installs Debian's `postgresql` if its server binaries are missing (root with apt-get
only), runs `initdb` in a temporary folder (as the `postgres` user when we are root, since
initdb refuses root), starts `postgres` bound to 127.0.0.1, exports
`MLGATE_TEST_POSTGRES_URL` to the command, and afterwards stops the server by its PID and
deletes the folder. The pytest fixtures start one the same way when that variable is
unset. Durability is switched off (fsync=off): these databases die with the run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tests.support.debian import apt_install

__all__ = ["ENV_VAR", "postgres_server"]

ENV_VAR = "MLGATE_TEST_POSTGRES_URL"
START_TIMEOUT_S = 60.0


def _server_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    return candidates[-1].parent if candidates else None


def _install() -> None:
    apt_install("postgresql", "PostgreSQL server binaries (initdb, postgres) are missing")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yields a SQLAlchemy URL to its `postgres` database."""
    bin_dir = _server_bin()
    if bin_dir is None:
        _install()
        bin_dir = _server_bin()
        if bin_dir is None:
            raise RuntimeError("installed postgresql but found no initdb")
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    folder = Path(tempfile.mkdtemp(prefix="mlgate-pg-"))
    if as_root:
        shutil.chown(folder, "postgres", "postgres")
    data, sockets = folder / "data", folder / "sockets"
    subprocess.run(
        [*prefix, "mkdir", str(data), str(sockets)], check=True, stdout=subprocess.DEVNULL
    )
    subprocess.run(
        [
            *prefix,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "mlgate",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = _free_port()
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [
            *prefix,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"postgresql+psycopg://mlgate@127.0.0.1:{port}/postgres"
    try:
        _wait_ready(port, server, folder / "server.log")
        yield url
    finally:
        _stop(server)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_ready(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(
                f"postgres exited with {server.returncode}: {log.read_text()[-2000:]}"
            )
        try:
            with psycopg.connect(host="127.0.0.1", port=port, user="mlgate", dbname="postgres"):
                return
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise RuntimeError(f"postgres did not accept connections within {START_TIMEOUT_S}s")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    # SIGINT is PostgreSQL's "fast shutdown". runuser forwards it to the server.
    os.killpg(server.pid, signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "run" or argv[1] != "--":
        print("usage: python -m tests.support.pgserver run -- COMMAND...", file=sys.stderr)
        return 2
    if os.environ.get(ENV_VAR):
        return subprocess.call(argv[2:])
    with postgres_server() as url:
        return subprocess.call(argv[2:], env={**os.environ, ENV_VAR: url})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
