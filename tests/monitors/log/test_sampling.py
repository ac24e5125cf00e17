"""The sampler: per-request coin at a rate, then a token bucket of rows per second."""

from __future__ import annotations

import random

import pytest

from monitors.log.sampling import Sampler


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_zero_keeps_nothing_and_counts_rows() -> None:
    sampler = Sampler(0.0, 1e9, random.Random(1))
    assert [sampler.take(3) for _ in range(100)] == [0] * 100
    assert sampler.sampled_out == 300
    assert sampler.capped == 0


def test_rate_one_keeps_every_row() -> None:
    sampler = Sampler(1.0, 1e9, random.Random(1))
    assert [sampler.take(5) for _ in range(100)] == [5] * 100
    assert sampler.sampled_out == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rate_quarter_keeps_about_a_quarter_of_requests_whole(seed: int) -> None:
    sampler = Sampler(0.25, 1e9, random.Random(seed))
    taken = [sampler.take(4) for _ in range(10_000)]
    assert set(taken) == {0, 4}  # a request is kept whole or not at all
    kept = taken.count(4) / len(taken)
    assert abs(kept - 0.25) < 0.02  # 4.6 standard deviations
    assert sampler.sampled_out == 4 * taken.count(0)


def test_seeded_sampling_is_reproducible() -> None:
    first = Sampler(0.5, 1e9, random.Random(7))
    second = Sampler(0.5, 1e9, random.Random(7))
    assert [first.take(1) for _ in range(200)] == [second.take(1) for _ in range(200)]


def test_cap_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    sampler = Sampler(1.0, 10.0, random.Random(0), clock)
    assert [sampler.take(4), sampler.take(4), sampler.take(4)] == [4, 4, 2]  # burst of 10
    assert sampler.take(1) == 0
    assert sampler.capped == 2 + 1
    clock.now += 0.5  # 5 rows' worth
    assert sampler.take(10) == 5
    assert sampler.capped == 3 + 5
    clock.now += 100.0  # refill stops at the burst
    assert sampler.take(50) == 10
    assert sampler.take(1) == 0


def test_cap_below_one_row_per_second_still_lets_one_row_through() -> None:
    clock = FakeClock()
    sampler = Sampler(1.0, 0.5, random.Random(0), clock)  # burst = max(1, 0.5) = 1
    assert sampler.take(3) == 1
    clock.now += 1.0  # half a row
    assert sampler.take(1) == 0
    clock.now += 1.0
    assert sampler.take(1) == 1


def test_sampled_out_requests_use_no_tokens() -> None:
    clock = FakeClock()
    sampler = Sampler(0.0, 2.0, random.Random(0), clock)
    sampler.take(100)
    assert sampler.capped == 0
    assert sampler.sampled_out == 100


def test_empty_request_takes_nothing() -> None:
    sampler = Sampler(1.0, 10.0)
    assert sampler.take(0) == 0
    assert sampler.sampled_out == sampler.capped == 0


@pytest.mark.parametrize(("rate", "cap"), [(-0.1, 10.0), (1.5, 10.0), (0.5, 0.0), (0.5, -1.0)])
def test_invalid_settings_are_refused(rate: float, cap: float) -> None:
    with pytest.raises(ValueError, match=r"rate|max_rows_per_s"):
        Sampler(rate, cap)
