from __future__ import annotations

import pytest

from services.gateway.costmodel import CostModel


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
