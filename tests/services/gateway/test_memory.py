"""The full garbage collection waits until the gateway is quiet: never between requests."""

from __future__ import annotations

import gc
from dataclasses import dataclass

from services.gateway import memory


@dataclass
class Batcher:
    queued_rows: int = 0
    inflight: int = 0
    quiet_s: float = float("inf")

    def quiet_for(self) -> float:
        return self.quiet_s


def test_a_full_collection_waits_for_quiet() -> None:
    frozen = gc.get_freeze_count()
    try:
        assert not memory.settle_all_if_quiet([Batcher(), Batcher(queued_rows=3)])
        assert not memory.settle_all_if_quiet([Batcher(inflight=1)])
        # a pause between two requests is not quiet
        assert not memory.settle_all_if_quiet([Batcher(quiet_s=memory.QUIET_S / 2)])
        assert memory.settle_all_if_quiet([Batcher(), Batcher(quiet_s=memory.QUIET_S * 2)])
        assert memory.settle_all_if_quiet([])  # nothing served: nothing to wait for
        assert gc.get_freeze_count() > 0  # what survived is frozen again
    finally:
        if not frozen:
            gc.unfreeze()
