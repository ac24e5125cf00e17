"""What a transport hands the data plane, and what it gets back: transport-neutral.

REST (`rest`, with `codec` for the OIP JSON and binary bodies) and gRPC (`rpc.service`,
with `rpc.codec` for Triton's protobuf messages) each translate their wire format into an
`InferRequest` and an `InferResult` back, and carry one `Call` per inference through the
data plane: the model's name as asked, its version label (the routed version, then the one
that answered), whether admission counted it in flight, and when it arrived. The data
plane opens a call (`DataPlane.begin`: label, require, admit) and closes it
(`DataPlane.end`: leave admission, count and time it under bounded labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Call", "InferRequest", "InferResult"]


@dataclass
class InferRequest:
    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, bool] | None = None  # requested output → binary?
    binary_by_default: bool = False


class InferResult:
    __slots__ = ("binary", "model", "outputs", "request_id", "version")

    def __init__(
        self,
        model: str,
        version: int,
        outputs: dict[str, np.ndarray],
        binary: dict[str, bool],
        request_id: str | None,
    ) -> None:
        self.model, self.version, self.outputs = model, version, outputs
        self.binary, self.request_id = binary, request_id


class Call:
    """One inference as it passes the data plane (see the module docstring). `started`:
    time.perf_counter() when the transport received it."""

    __slots__ = ("admitted", "name", "route_key", "started", "version")

    def __init__(self, name: str, started: float) -> None:
        self.name = name
        self.started = started
        self.version = ""  # the metric label: routed, then answered
        self.admitted = False  # counted in flight by admission: leaves when answered
        self.route_key: str | None = None  # a transport's key for a canary split (a header)
