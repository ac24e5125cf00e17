"""Keeping the garbage collector off the serving path.

NOTE: a gateway process holds ~500k long-lived objects (torch, onnx, Evidently, the
models). A full collection walks all of them holding the GIL: ~300 ms on this machine,
during which the event loop answers nothing (every swap used to cost the tail that much).
So after a load or unload only what is new since the last settle is collected (about a
millisecond), and then frozen out of the collector's sight (`gc.freeze`). Frozen objects
are still freed by reference counting; only reference cycles among them (a retired
version's) wait for `settle_all`, which the model manager runs when nothing is in flight.
"""

from __future__ import annotations

import gc

__all__ = ["settle_all", "settle_new"]


def settle_new() -> None:
    """Collect what is not frozen yet, then freeze what survived."""
    gc.collect()
    gc.freeze()


def settle_all() -> None:
    """A full collection (≈ 300 ms holding the GIL): only when nothing is being served."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
