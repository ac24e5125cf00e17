"""Batch run records on SQLite and on the real PostgreSQL server: written running, updated,
read by id, listed by model and by a file's digest; only their outcome fields change."""

from __future__ import annotations

import pytest
import torch

from registry.errors import ModelNotFound, NotFound
from registry.store import Registry
from tests.fixtures import make_mlp


def test_a_run_is_recorded_running_then_finished(registry: Registry) -> None:
    registry.register(make_mlp(), "churn", torch.randn(4, 6), factory="tests.fixtures:make_mlp")
    registry.register(
        make_mlp(seed=1), "churn", torch.randn(4, 6), factory="tests.fixtures:make_mlp"
    )
    runs = registry.batch_runs
    started = runs.start(
        "churn:2",
        runner="local",
        input_uri="/d/in.csv",
        output_uri="/d/out.csv",
        details={"batch_size": 64},
    )
    assert (started.model, started.version, started.status) == ("churn", 2, "running")
    assert (started.rows, started.progress, started.done) == (0, 0.0, False)

    going = runs.update(started.id, rows=500, progress=0.5, seconds=1.5)
    assert (going.rows, going.progress, going.status) == (500, 0.5, "running")
    assert going.updated_at >= started.updated_at
    done = runs.update(
        started.id,
        status="succeeded",
        rows=1000,
        scored=990,
        rejected=10,
        input_digest="a" * 64,
        output_digest="b" * 64,
        progress=1.0,
    )
    assert done.done
    assert runs.get(started.id) == done
    other = runs.start(
        "churn:1",
        runner="gateway host-a",
        input_uri="/d/x.parquet",
        output_uri="/d/y.parquet",
        details={},
    )

    assert [r.id for r in runs.list()] == [other.id, started.id]  # newest first
    assert [r.id for r in runs.list("churn", limit=1)] == [other.id]
    assert [r.id for r in runs.list(digest="b" * 64)] == [started.id]
    assert runs.list(digest="c" * 64) == []
    assert done.to_json()["started_at"] == done.started_at.isoformat()


def test_what_cannot_be_read_or_changed(registry: Registry) -> None:
    registry.register(make_mlp(), "churn", torch.randn(4, 6))
    run = registry.batch_runs.start(
        "churn:1", runner="local", input_uri="i", output_uri="o", details={}
    )
    with pytest.raises(ValueError, match=r"cannot change: \['input_uri', 'runner'\]"):
        registry.batch_runs.update(run.id, runner="elsewhere", input_uri="j")
    with pytest.raises(NotFound, match="no batch run 99"):
        registry.batch_runs.get(99)
    with pytest.raises(NotFound, match="no batch run 99"):
        registry.batch_runs.update(99, rows=1)
    with pytest.raises(ModelNotFound):
        registry.batch_runs.list("nope")
    with pytest.raises(NotFound):
        registry.batch_runs.start("churn:7", runner="l", input_uri="i", output_uri="o", details={})
