"""Canary records on SQLite and on the real PostgreSQL server: one running per alias, how
each ended, and a judge that can only end the canary it judged."""

from __future__ import annotations

import pytest
import torch

from registry.errors import BadRequest, NotFound, NotServable
from registry.store import Registry
from tests.fixtures import make_mlp, ready_version


def test_one_canary_runs_per_alias_and_each_ending_is_kept(registry: Registry) -> None:
    one, two, three = (ready_version(registry, seed) for seed in range(3))
    registry.set_alias("churn", "production", one, reason="first")
    canaries = registry.canaries
    first = canaries.start("churn", "production", two, 0.1, reason="try two")
    second = canaries.start("churn", "production", three, 0.2, reason="try three")
    assert canaries.running(["production"]) == {"churn": {"production": second}}
    with pytest.raises(NotFound, match="no running canary"):  # a judge of the first one
        canaries.end("churn", "production", "rolled_back", reason="r", canary_id=first.id)
    ended = canaries.end(
        "churn",
        "production",
        "rolled_back",
        reason="worse",
        evidence={"rule": "errors"},
        canary_id=second.id,
    )
    assert (ended.status, ended.ended_reason, ended.evidence) == (
        "rolled_back",
        "worse",
        {"rule": "errors"},
    )
    assert [(c.version, c.status) for c in canaries.of("churn")] == [
        (three, "rolled_back"),
        (two, "stopped"),
    ]
    assert canaries.running(["production"]) == {}
    with pytest.raises(BadRequest, match="rolled_back or stopped"):
        canaries.end("churn", "production", "completed", reason="r")


def test_what_a_canary_is_refused(registry: Registry) -> None:
    one, two = ready_version(registry, 0), ready_version(registry, 1)
    unexported = registry.register(make_mlp(seed=9), "churn", torch.randn(4, 6)).version
    registry.set_alias("churn", "production", one, reason="first")
    start = registry.canaries.start
    with pytest.raises(NotServable):
        start("churn", "production", unexported, 0.1, reason="r")
    with pytest.raises(BadRequest, match="above 0 and below 1"):
        start("churn", "production", two, float("nan"), reason="r")
    with pytest.raises(BadRequest, match="a reason is required"):
        start("churn", "production", two, 0.1, reason="")
    with pytest.raises(NotFound, match="no alias 'staging'"):
        start("churn", "staging", two, 0.1, reason="r")
    with pytest.raises(NotFound, match="no running canary"):
        registry.canaries.complete("churn", "production", reason="r")
