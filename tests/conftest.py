"""Shared fixtures: registries on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import torch
from sqlalchemy.engine import make_url

from registry import Registry
from tests.support.pgserver import ENV_VAR, postgres_server


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches ./.mlgate or the caller's MLGATE_* settings."""
    for key in list(os.environ):
        if key.startswith("MLGATE_") and key != ENV_VAR:
            monkeypatch.delenv(key)
    monkeypatch.setenv("MLGATE_HOME", str(tmp_path / "home"))
    # `mlgate serve` children run one worker unless a test asks for more (the default is
    # one per core, which would make every served test a multi-process one).
    monkeypatch.setenv("MLGATE_WORKERS", "1")
    # A gateway's monitoring child runs at normal priority in tests: at the default
    # (SCHED_IDLE) its rounds wait for CPU that a machine loaded on every core never leaves,
    # and a test waiting on a round would then wait for the load to stop. The idle
    # priority itself is tested where it is set (test_monitor_process.py).
    monkeypatch.setenv("MLGATE_MONITOR_PRIORITY", "normal")
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """The server `make test` started, or one started here for this worker."""
    url = os.environ.get(ENV_VAR)
    if url:
        yield url
        return
    with postgres_server() as started:
        yield started


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def _fresh_postgres(admin_url: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    with _fresh_postgres(postgres_admin_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same registry tests run against SQLite and against PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def other_database_url(
    registry_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A second empty database of the same kind as `registry_url` (SQLite or PostgreSQL)."""
    if make_url(registry_url).get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'other.db'}"
        return
    with _fresh_postgres(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


@pytest.fixture
def registry(registry_url: str, tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(url=registry_url, home=tmp_path / "home")
    yield reg
    reg.close()


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(home=tmp_path / "home")
    yield reg
    reg.close()
