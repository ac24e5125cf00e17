"""The peers' own virtual environments, built on first use and rebuilt when their pins change.

BentoML 1.4 pins its own web stack and PyTriton needs numpy<2, so neither can share the
project's .venv. Each lives in .venv-peers/<name>, built from load_tests/peers/<name>.txt
(exact pins, the same onnxruntime as the project) in one pip command; a stamp holding the
requirements file's digest says whether it is current.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import sysconfig
from pathlib import Path

__all__ = ["PEERS_HOME", "libdir", "python_for"]

HERE = Path(__file__).parent
PEERS_HOME = HERE.parent.parent / ".venv-peers"


def python_for(name: str) -> Path:
    """The interpreter of peer environment `name`, building the environment if needed."""
    requirements = HERE / f"{name}.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    home = PEERS_HOME / name
    python, stamp = home / "bin" / "python", home / ".installed"
    PEERS_HOME.mkdir(exist_ok=True)
    # Test workers run in parallel: the first builds, the others wait for it on the lock.
    from filelock import FileLock  # here: only the benchmarks and their tests build peers

    with FileLock(PEERS_HOME / f"{name}.lock"):
        if stamp.exists() and stamp.read_text() == digest and python.exists():
            return python
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True
        )
        stamp.write_text(digest)
    return python


def libdir() -> str:
    """The interpreter's own lib folder: PyTriton's Python-backend stub must load this
    libpython, not the system's, under pyenv (set as LD_LIBRARY_PATH)."""
    return str(sysconfig.get_config_var("LIBDIR"))
