"""The peers' own virtual environments, built on first use and rebuilt when their locks change.

BentoML 1.4 pins its own web stack and PyTriton needs numpy<2, so neither can share the
project's .venv. Each lives in .venv-peers/<name>, built from its lock,
load_tests/peers/locks/<name>.txt: every package pinned with == and its hashes, compiled by
`make lock` from load_tests/peers/<name>.in (the peer's top-level pins, the same onnxruntime
as the project). As for .venv (see the Makefile), the venv first takes the locked pip
(requirements/pip.txt), then one pip command installs the lock with hashes required. A stamp
holding the digest of both files says whether the environment is current.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import sysconfig
from pathlib import Path

__all__ = ["PEERS_HOME", "libdir", "lock_for", "python_for"]

HERE = Path(__file__).parent
REPO = HERE.parent.parent
PEERS_HOME = REPO / ".venv-peers"
PIP_LOCK = REPO / "requirements" / "pip.txt"


def lock_for(name: str) -> Path:
    """The lock peer environment `name` is built from."""
    return HERE / "locks" / f"{name}.txt"


def python_for(name: str) -> Path:
    """The interpreter of peer environment `name`, building the environment if needed."""
    peer_lock = lock_for(name)
    digest = hashlib.sha256(PIP_LOCK.read_bytes() + peer_lock.read_bytes()).hexdigest()
    home = PEERS_HOME / name
    python, stamp = home / "bin" / "python", home / ".installed"
    PEERS_HOME.mkdir(exist_ok=True)
    # Test workers run in parallel: the first builds, the others wait for it on the lock.
    from filelock import FileLock  # here: only the benchmarks and their tests build peers

    with FileLock(PEERS_HOME / f"{name}.lock"):
        if stamp.exists() and stamp.read_text() == digest and python.exists():
            return python
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--require-hashes", "-r"]
        for requirements in (PIP_LOCK, peer_lock):
            subprocess.run([*pip, str(requirements)], check=True)
        stamp.write_text(digest)
    return python


def libdir() -> str:
    """The interpreter's own lib folder: PyTriton's Python-backend stub must load this
    libpython, not the system's, under pyenv (set as LD_LIBRARY_PATH)."""
    return str(sysconfig.get_config_var("LIBDIR"))
