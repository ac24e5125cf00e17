"""The locks `make setup` and the peer venvs install from, read without a network.

requirements/lock.txt (the project and its dev extra), requirements/pip.txt (pip itself) and
load_tests/peers/locks/<peer>.txt are written by `make lock` (pip-compile). Installing a
lock installs only what it lists, so a requirement added to pyproject.toml or a peer's .in
without `make lock` would be missing, or held at a version its new range excludes: these
tests say so, and which command fixes it. Every pin must be exact and carry its hashes,
since pip installs the locks with --require-hashes.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from load_tests.peers.venvs import PIP_LOCK, lock_for

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"
LOCK = REPO / "requirements" / "lock.txt"
PEERS = REPO / "load_tests" / "peers"
PEER_INPUTS = sorted(PEERS.glob("*.in"))
ALL_LOCKS = [LOCK, PIP_LOCK, *(lock_for(path.stem) for path in PEER_INPUTS)]


def _pins(lock: Path) -> dict[str, tuple[Requirement, list[str]]]:
    """Each entry of a pip-compile output: its requirement line and its hashes, by name."""
    pins: dict[str, tuple[Requirement, list[str]]] = {}
    hashes: list[str] = []
    for line in lock.read_text().splitlines():
        text = line.strip().removesuffix("\\").strip()
        if not text or text.startswith("#"):
            continue
        if not line[0].isspace():
            requirement, hashes = Requirement(text), []
            pins[canonicalize_name(requirement.name)] = (requirement, hashes)
        elif text.startswith("--hash="):
            hashes.append(text.removeprefix("--hash="))
        else:
            raise AssertionError(f"{lock}: unexpected line {line!r}")
    return pins


def _requirements(lines: list[str]) -> list[str]:
    return [line for line in (raw.split("#")[0].strip() for raw in lines) if line]


def _unmet(requirements: list[str], lock: Path, extra: str = "") -> list[str]:
    """The requirements the lock does not satisfy (absent, outside the range, an extra
    missing), for the Python running the tests, the one the lock is compiled for."""
    pins = _pins(lock)
    unmet = []
    for line in requirements:
        wanted = Requirement(line)
        if wanted.marker is not None and not wanted.marker.evaluate({"extra": extra}):
            continue
        pinned = pins.get(canonicalize_name(wanted.name))
        if pinned is None:
            unmet.append(f"{line}: not in the lock")
            continue
        (spec,) = pinned[0].specifier
        if not wanted.specifier.contains(spec.version, prereleases=True):
            unmet.append(f"{line}: the lock has {spec.version}")
        elif not wanted.extras <= pinned[0].extras:
            unmet.append(f"{line}: the lock has extras {sorted(pinned[0].extras)}")
    return unmet


def test_lock_covers_pyproject() -> None:
    pyproject = tomllib.loads(PYPROJECT.read_text())
    project = pyproject["project"]
    unmet = _unmet(project["dependencies"], LOCK)
    unmet += _unmet(project["optional-dependencies"]["dev"], LOCK, extra="dev")
    # setuptools builds the editable install from the lock (--no-build-isolation).
    unmet += _unmet(pyproject["build-system"]["requires"], LOCK)
    assert not unmet, f"requirements/lock.txt is behind pyproject.toml: run `make lock`: {unmet}"


def test_lock_holds_the_cpu_build_of_torch() -> None:
    """pyproject's torch==2.13.0 matches PyPI's CUDA build as well; the lock says which."""
    (spec,) = _pins(LOCK)["torch"][0].specifier
    assert Version(spec.version).local == "cpu"


def test_pip_lock_covers_its_input() -> None:
    lines = _requirements((REPO / "requirements" / "pip.in").read_text().splitlines())
    assert lines == ["pip"]
    assert not _unmet(lines, PIP_LOCK), "requirements/pip.txt is stale: run `make lock`"


@pytest.mark.parametrize("peer_input", PEER_INPUTS, ids=lambda path: path.stem)
def test_peer_lock_covers_its_input(peer_input: Path) -> None:
    lock = lock_for(peer_input.stem)
    assert lock.is_file(), f"no lock for {peer_input.name}: run `make lock`"
    unmet = _unmet(_requirements(peer_input.read_text().splitlines()), lock)
    assert not unmet, f"{lock.relative_to(REPO)} is behind {peer_input.name}: {unmet}"


def test_every_peer_lock_has_an_input() -> None:
    inputs = {path.stem for path in PEER_INPUTS}
    assert inputs, "no peer inputs found"
    assert {path.stem for path in (PEERS / "locks").glob("*.txt")} == inputs


@pytest.mark.parametrize("lock", ALL_LOCKS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_pin_is_exact_and_hashed(lock: Path) -> None:
    pins = _pins(lock)
    assert pins
    for name, (requirement, hashes) in pins.items():
        (spec,) = requirement.specifier
        assert spec.operator == "==", name
        assert hashes, f"{name} has no hash: pip refuses it in --require-hashes mode"
        assert all(digest.startswith("sha256:") for digest in hashes), name
