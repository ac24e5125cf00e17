"""Toy models for the tests, importable by name so that factories can rebuild them."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn


class TabularMLP(nn.Module):
    def __init__(self, n_features: int = 6, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head over 1×16×16 images, ten class logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(8 * 4 * 4, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image).flatten(1))


class TwoInputs(nn.Module):
    """Named inputs `numeric` (rows × 4) and `counts` (rows × 3, int64); two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.numeric_layer = nn.Linear(4, 5)
        self.counts_layer = nn.Linear(3, 5)

    def forward(
        self, numeric: torch.Tensor, counts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = torch.tanh(self.numeric_layer(numeric) + self.counts_layer(counts.float()))
        return hidden.sum(dim=1, keepdim=True), hidden.argmax(dim=1)


class DataDependentBranch(nn.Module):
    """Takes a different path when the batch holds a negative value: tracing keeps one."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.min() < 0:
            return self.linear(x) * 2.0
        return self.linear(x)


def make_mlp(n_features: int = 6, hidden: int = 16, seed: int = 0) -> TabularMLP:
    torch.manual_seed(seed)
    return TabularMLP(n_features, hidden)


def onnx_file(
    path: Path,
    *,
    dynamic: bool = True,
    model: nn.Module | None = None,
    features: int = 6,
    names: tuple[str, str] = ("x", "p"),
) -> Path:
    """A model exported outside mlgate (by default an MLP, 6 features in, `p` out), as a
    user would bring one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic_shapes = {names[0]: {0: torch.export.Dim("batch")}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own chatter is not under test here
        torch.onnx.export(
            model if model is not None else make_mlp(),
            (torch.randn(4, features),),
            f=str(path),
            input_names=[names[0]],
            output_names=[names[1]],
            dynamic_shapes=dynamic_shapes,
            verbose=False,
        )
    return path


class SlowStack(nn.Module):
    """32 square layers of 256: a few thousand rows take the better part of a second."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[nn.Linear(256, 256) for _ in range(32)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def ready_version(registry: Any, seed: int, *, candidate: bool = False) -> int:
    """A `churn` version with a passing ONNX export recorded the way the exporters record
    one (the file is a stand-in: nothing runs it), so it may serve, shadow or be a canary."""
    version = registry.register(
        make_mlp(seed=seed), "churn", torch.randn(4, 6), candidate=candidate
    )
    with registry.stage() as folder:
        (folder / "model.onnx").write_bytes(b"onnx")
        staged = registry.commit_artifact(folder, "onnx", status="passed", parity={"passed": True})
    registry.add_artifact(version.ref, staged)
    return int(version.version)
