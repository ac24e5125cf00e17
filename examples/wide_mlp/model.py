"""The wide MLP: 768 → 3072 → 3072 → 768 → 16, GELU between, seeded random weights.

No training: it exists to be expensive in a realistic way (14 M parameters, 56 MB). On
this project's 2-core machine, onnxruntime with one thread runs a row in about 1.5 ms
alone and in about 0.17 ms inside a batch of 64: almost 9 times cheaper per row, which is
what adaptive batching is for.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from registry import Registry

__all__ = ["FACTORY", "TINY_WIDTHS", "WIDTHS", "build_model", "register"]

WIDTHS = (768, 3072, 3072, 768, 16)
TINY_WIDTHS = (16, 64, 64, 4)  # about 5,700 parameters: serving overhead, not compute
FACTORY = "examples.wide_mlp.model:build_model"


class WideMLP(nn.Module):
    def __init__(self, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.Linear(width_in, width_out))
            if index < len(widths) - 2:
                layers.append(nn.GELU())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_model(seed: int = 0, widths: Sequence[int] = WIDTHS) -> WideMLP:
    torch.manual_seed(seed)
    return WideMLP(tuple(widths)).eval()


def register(
    registry: Registry, name: str = "wide-mlp", seed: int = 0, widths: Sequence[int] = WIDTHS
) -> str:
    """Register, export to ONNX through the gate, promote to production; returns the ref.

    Other `widths` give other MLPs of the same shape: the peer benchmark's overhead-bound
    model is TINY_WIDTHS."""
    from exporters import export

    model = build_model(seed, widths)
    version = registry.register(
        model,
        name,
        torch.randn(8, widths[0]),
        factory=FACTORY,
        factory_kwargs={"seed": seed, "widths": list(widths)},
        reference=torch.randn(256, widths[0]).numpy(),
    )
    result = export(registry, version.ref, "onnx")
    if not result.passed:
        raise RuntimeError(f"the wide MLP failed its parity gate: {result.report['failures']}")
    registry.set_alias(name, "production", version.version, reason="benchmark model")
    return version.ref
