"""The batch-cost model: how long a batch of n rows takes, cost(n) ≈ a·n + b, fitted online.

Ordinary least squares over the last `window` batches, refitted on every observation
(a 2×2 solve: microseconds). Until two different batch sizes have been seen, the model
knows only a mean (a = 0); until the first observation it knows nothing, and callers
must not shed on a guess. `a` and `b` are kept non-negative: a batch never costs less
than nothing, and a bigger batch never costs less than a smaller one.
"""

from __future__ import annotations

from collections import deque

__all__ = ["CostModel"]


class CostModel:
    def __init__(self, window: int = 64) -> None:
        self._samples: deque[tuple[int, float]] = deque(maxlen=window)
        self.per_row_s = 0.0
        self.fixed_s = 0.0

    @property
    def fitted(self) -> bool:
        return bool(self._samples)

    def observe(self, rows: int, seconds: float) -> None:
        self._samples.append((rows, seconds))
        self._fit()

    def cost(self, rows: int) -> float:
        """Predicted seconds for a batch of `rows` (0.0 before any observation)."""
        return self.per_row_s * rows + self.fixed_s

    def _fit(self) -> None:
        count = len(self._samples)
        mean_n = sum(n for n, _ in self._samples) / count
        mean_t = sum(t for _, t in self._samples) / count
        spread = sum((n - mean_n) ** 2 for n, _ in self._samples)
        if spread == 0:
            self.per_row_s, self.fixed_s = 0.0, mean_t
            return
        slope = sum((n - mean_n) * (t - mean_t) for n, t in self._samples) / spread
        slope = max(slope, 0.0)
        intercept = mean_t - slope * mean_n
        if intercept < 0:
            # Refit through the origin rather than predict negative fixed costs.
            intercept = 0.0
            slope = sum(n * t for n, t in self._samples) / sum(n * n for n, _ in self._samples)
        self.per_row_s, self.fixed_s = slope, intercept
