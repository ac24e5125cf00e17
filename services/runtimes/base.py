"""The runtime interface: a small async class that loads one artifact and runs batches.

Settings are passed in; batching wraps a runtime (services/gateway/batching/batcher.py), it is not
a subclass. `predict` takes named numpy arrays with the batch in dimension 0 and returns the
outputs with the compute time; it must be safe to call `max_inflight` times concurrently.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Prediction", "Runtime", "RuntimeSettings", "Tensors"]

Tensors = dict[str, np.ndarray]


class Prediction(NamedTuple):
    outputs: Tensors
    compute_s: float
    """Seconds the runtime itself spent, measured on its worker thread: what the batch cost
    model fits, free of the time the event loop took to notice the result."""


@dataclass(frozen=True)
class RuntimeSettings:
    """How to run an artifact. `device` "auto" picks CUDA when it is really usable."""

    device: str = "auto"
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    max_inflight: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


class Runtime(ABC):
    kind: str = ""
    supports_inline: bool = True
    """False for a remote runtime: its batches never run on the event loop."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings

    @abstractmethod
    async def load(self) -> None:
        """Open the artifact; raise if it cannot serve."""

    @abstractmethod
    async def predict(self, inputs: Tensors) -> Prediction:
        """Run one batch."""

    @abstractmethod
    def run_inline(self, inputs: Tensors) -> Prediction:
        """Run one batch on the calling thread (for batches cheaper than a thread hop)."""

    @abstractmethod
    async def unload(self) -> None:
        """Free the session and its memory."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """What runs it: runtime, version, device, providers, threads (for metadata)."""
