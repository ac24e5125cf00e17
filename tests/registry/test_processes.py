"""Real processes: concurrent writers, and a registering process killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from registry import Registry
from registry.errors import ModelNotFound

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
VERSIONS_EACH = 5


@contextmanager
def _registry(url: str, home: Path) -> Iterator[Registry]:
    registry = Registry(url=url, home=home)
    try:
        yield registry
    finally:
        registry.close()


def _kill_at(stage: str, worker: subprocess.Popen[str]) -> None:
    """Read the worker's progress until it reaches `stage`, then SIGKILL it there."""
    with worker:
        assert worker.stdout is not None
        for line in worker.stdout:
            if line.strip() == f"STAGE {stage}":
                break
        else:
            pytest.fail(f"the worker never reached {stage}")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL


def _run(worker: subprocess.Popen[str]) -> str:
    with worker:
        stdout, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 0, stderr[-3000:]
    return stdout.strip()


def _worker(url: str, home: Path, name: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.register_worker",
            "--url",
            url,
            "--home",
            str(home),
            "--name",
            name,
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_writers_never_fail_or_collide(registry_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    workers = [
        _worker(registry_url, home, "shared", "--count", str(VERSIONS_EACH), "--seed", str(seed))
        for seed in range(WORKERS)
    ]
    # Each worker also races the others to create the same model and the schema.
    outputs = [w.communicate(timeout=240) for w in workers]
    for worker, (_stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr[-3000:]
    done = sorted(
        line for stdout, _ in outputs for line in stdout.splitlines() if line.startswith("DONE")
    )
    assert len(done) == WORKERS * VERSIONS_EACH
    with _registry(registry_url, home) as registry:
        versions = registry.versions("shared")
        assert [v.version for v in versions] == list(range(1, WORKERS * VERSIONS_EACH + 1))
        for version in versions:
            for artifact in version.artifacts:
                registry.open_artifact(artifact)  # every file present and matching its sha256


@pytest.mark.parametrize("stage", ["reference", "database"])
def test_a_killed_registration_leaves_no_visible_trace(
    registry_url: str, tmp_path: Path, stage: str
) -> None:
    home = tmp_path / "home"
    assert _run(_worker(registry_url, home, "victim")).endswith("DONE victim:1")
    _kill_at(stage, _worker(registry_url, home, "victim", "--pause-at", stage, "--seed", "3"))

    with _registry(registry_url, home) as registry:
        assert [v.version for v in registry.versions("victim")] == [1]
        survivor = registry.get("victim:1")
        for artifact in survivor.artifacts:
            registry.open_artifact(artifact)
        # The dead process's files are in staging or in unreferenced artifact folders.
        stored = {p.name for p in (home / "artifacts").glob("??/*")}
        assert {a.digest for a in survivor.artifacts} <= stored

        assert _run(_worker(registry_url, home, "victim", "--seed", "3")).endswith("DONE victim:2")
        assert [v.version for v in registry.versions("victim")] == [1, 2]


def test_a_process_killed_before_its_first_version_leaves_no_model(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    url = sqlite_registry.settings.database_url()
    _kill_at("database", _worker(url, tmp_path / "home", "never", "--pause-at", "database"))
    with pytest.raises(ModelNotFound):
        sqlite_registry.get("never")
