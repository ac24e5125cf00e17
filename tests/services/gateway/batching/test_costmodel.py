from __future__ import annotations

import pytest

from services.gateway.batching.costmodel import CostModel


def test_it_recovers_a_linear_cost() -> None:
    model = CostModel()
    assert not model.fitted
    assert model.cost(10) == 0.0
    for n in (1, 2, 4, 8, 16, 32):
        model.observe(n, 0.002 + 0.0005 * n)
    assert model.per_row_s == pytest.approx(0.0005)
    assert model.fixed_s == pytest.approx(0.002)
    assert model.cost(64) == pytest.approx(0.034)


def test_one_size_gives_a_mean_and_the_window_forgets() -> None:
    model = CostModel(window=4)
    for seconds in (0.01, 0.03):
        model.observe(8, seconds)
    assert model.per_row_s == 0.0
    assert model.fixed_s == pytest.approx(0.02)
    for _ in range(4):
        model.observe(8, 0.05)
    assert model.cost(8) == pytest.approx(0.05)


def test_costs_are_never_negative() -> None:
    model = CostModel()
    model.observe(1, 0.010)
    model.observe(10, 0.001)  # noisy: bigger batch measured faster
    assert model.per_row_s == 0.0
    assert model.fixed_s > 0
    steep = CostModel()
    steep.observe(1, 0.0001)
    steep.observe(2, 0.010)  # would fit a negative intercept
    assert steep.fixed_s == 0.0
    assert steep.per_row_s > 0


def _least_squares(samples: list[tuple[int, float]]) -> tuple[float, float]:
    """The textbook fit, from scratch, for comparison with the running sums."""
    mean_n = sum(n for n, _ in samples) / len(samples)
    mean_t = sum(t for _, t in samples) / len(samples)
    spread = sum((n - mean_n) ** 2 for n, _ in samples)
    slope = sum((n - mean_n) * (t - mean_t) for n, t in samples) / spread
    return slope, mean_t - slope * mean_n


def test_the_running_sums_fit_the_window_exactly_as_a_full_refit() -> None:
    import random

    rng = random.Random(3)
    model = CostModel(window=16)
    seen: list[tuple[int, float]] = []
    for _ in range(10_000):  # past the periodic recomputation of the sums, twice
        n = rng.randint(1, 64)
        t = 0.003 + 0.0004 * n + rng.uniform(0, 0.0002)
        model.observe(n, t)
        seen.append((n, t))
    slope, intercept = _least_squares(seen[-16:])
    assert model.per_row_s == pytest.approx(slope, rel=1e-9)
    assert model.fixed_s == pytest.approx(intercept, rel=1e-9)
