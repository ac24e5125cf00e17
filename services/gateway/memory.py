"""Keeping the garbage collector off the serving path.

NOTE: a gateway process holds ~500k long-lived objects (torch, onnx, Evidently, the
models). A full collection walks all of them holding the GIL: ~300 ms on this machine,
during which the event loop answers nothing (every swap used to cost the tail that much).
So after a load or unload only what is new since the last settle is collected (about a
millisecond), and then frozen out of the collector's sight (`gc.freeze`). Frozen objects
are still freed by reference counting; only reference cycles among them (a retired
version's) wait for `settle_all`, which the model manager runs once no request has arrived
for `QUIET_S`: a gateway that is never quiet keeps them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from typing import Any

__all__ = ["QUIET_S", "settle_all", "settle_all_if_quiet", "settle_new"]

QUIET_S = 10.0


def settle_new() -> bool:
    """Collect what is not frozen yet, then freeze what survived; False: nothing is left
    unsettled."""
    gc.collect()
    gc.freeze()
    return False


def settle_all() -> None:
    """A full collection (≈ 300 ms holding the GIL): only when nothing is being served."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def settle_all_if_quiet(batchers: Iterable[Any]) -> bool:
    """`settle_all` if no batcher has work or has had a request for QUIET_S (a pause
    between two requests is not enough); whether it ran."""
    if any(b.queued_rows or b.inflight or b.quiet_for() < QUIET_S for b in batchers):
        return False
    settle_all()
    return True
