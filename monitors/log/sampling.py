"""Which rows of a request the inference log keeps: a per-request coin, then a row cap.

`Sampler.take(rows)` runs on the request path, so it is O(1) and allocates nothing
beyond a float or two: one `random()` call when the rate is below 1, one clock read and
a token-bucket update. Sampling is per request (all of a request's rows or none), so
that a logged request is whole unless the cap cuts it; the cap is a token bucket of rows
refilled at `max_rows_per_s`, holding at most `max(1, max_rows_per_s)` rows (the burst).
A request that finds fewer tokens than it has rows logs its first rows only.

Not thread-safe: one thread (the gateway's event loop) calls `take`, and owns the
counters `sampled_out` and `capped`, which other threads may read.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

__all__ = ["Sampler"]


class Sampler:
    """Per-request Bernoulli sampling at `rate`, then a token bucket of rows per second."""

    __slots__ = (
        "_burst",
        "_clock",
        "_last",
        "_random",
        "_rate",
        "_refill",
        "_tokens",
        "capped",
        "sampled_out",
    )

    def __init__(
        self,
        rate: float,
        max_rows_per_s: float,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sample rate must be within [0, 1], got {rate}")
        if not max_rows_per_s > 0:
            raise ValueError(f"max_rows_per_s must be positive, got {max_rows_per_s}")
        self._rate = rate
        # Not for security: which requests get logged need not be unpredictable.
        self._random = (rng or random.Random()).random  # noqa: S311
        self._clock = clock
        self._refill = max_rows_per_s
        self._burst = max(1.0, max_rows_per_s)
        self._tokens = self._burst
        self._last = clock()
        self.sampled_out = 0
        """Rows of requests the coin left out."""
        self.capped = 0
        """Rows of sampled requests the row cap left out."""

    def take(self, rows: int) -> int:
        """How many of this request's `rows` to log (its first ones): 0 when sampled out."""
        if rows <= 0:
            return 0
        # random() < rate keeps a request with probability `rate`; rate 1 skips the draw.
        if self._rate < 1.0 and self._random() >= self._rate:
            self.sampled_out += rows
            return 0
        now = self._clock()
        tokens = self._tokens + (now - self._last) * self._refill
        if tokens > self._burst:
            tokens = self._burst
        self._last = now
        taken = rows if rows <= tokens else int(tokens)
        self._tokens = tokens - taken
        if taken < rows:
            self.capped += rows - taken
        return taken
