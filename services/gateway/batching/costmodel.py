"""The batch-cost model: how long a batch of n rows takes, cost(n) ≈ a·n + b, fitted online.

Ordinary least squares over the last `window` batches, refitted on every observation
from running sums (Σn, Σt, Σn², Σnt, updated as samples enter and leave the window), so
a refit costs the same few float operations whatever the window: it runs once per batch,
which for a small model is once per request. Until two different batch sizes have been
seen, the model knows only a mean (a = 0); until the first observation it knows nothing,
and callers must not shed on a guess. `a` and `b` are kept non-negative: a batch never
costs less than nothing, and a bigger batch never costs less than a smaller one.
"""

from __future__ import annotations

from collections import deque

__all__ = ["CostModel"]

# Once this many batches were seen, one batch counts as at most _OUTLIER × its predicted
# cost (+ a floor, for a model predicted to cost almost nothing).
_SETTLED = 8
_OUTLIER = 10.0
_OUTLIER_FLOOR_S = 0.001


class CostModel:
    def __init__(self, window: int = 64) -> None:
        self._samples: deque[tuple[int, float]] = deque(maxlen=window)
        self._sums = [0.0, 0.0, 0.0, 0.0]  # Σn, Σt, Σn², Σnt over the window
        self._added = 0
        self.per_row_s = 0.0
        self.fixed_s = 0.0

    @property
    def fitted(self) -> bool:
        return bool(self._samples)

    def observe(self, rows: int, seconds: float) -> None:
        if len(self._samples) >= _SETTLED:
            # A batch timed across a stall (a stopped process, a long GC) is not its cost:
            # without a bound, one such sample would predict every batch late.
            seconds = min(seconds, _OUTLIER * self.cost(rows) + _OUTLIER_FLOOR_S)
        samples, sums = self._samples, self._sums
        if len(samples) == samples.maxlen:
            n, t = samples[0]
            sums[0] -= n
            sums[1] -= t
            sums[2] -= n * n
            sums[3] -= n * t
        samples.append((rows, seconds))
        sums[0] += rows
        sums[1] += seconds
        sums[2] += rows * rows
        sums[3] += rows * seconds
        self._added += 1
        if self._added % 4096 == 0:  # wash out the rounding of many add/subtract pairs
            self._sums = [
                float(sum(n for n, _ in samples)),
                sum(t for _, t in samples),
                float(sum(n * n for n, _ in samples)),
                sum(n * t for n, t in samples),
            ]
        self._fit()

    def cost(self, rows: int) -> float:
        """Predicted seconds for a batch of `rows` (0.0 before any observation)."""
        return self.per_row_s * rows + self.fixed_s

    def _fit(self) -> None:
        count = len(self._samples)
        sum_n, sum_t, sum_nn, sum_nt = self._sums
        mean_n, mean_t = sum_n / count, sum_t / count
        spread = sum_nn - sum_n * mean_n  # Σ(n - n̄)²; batch sizes are integers
        if spread < 0.5 / count:  # every batch the same size (a spread is ≥ (count-1)/count)
            self.per_row_s, self.fixed_s = 0.0, mean_t
            return
        slope = max((sum_nt - sum_n * mean_t) / spread, 0.0)
        intercept = mean_t - slope * mean_n
        if intercept < 0:
            # Refit through the origin rather than predict negative fixed costs.
            intercept = 0.0
            slope = sum_nt / sum_nn
        self.per_row_s, self.fixed_s = slope, intercept
