"""The scenario models: standardise, a small MLP, then the task's output.

binary: P(y=1), one column; multiclass: three class probabilities; regression: the value.
The standardisation statistics are buffers, so they travel in the state dict.
"""

# No `from __future__ import annotations`: torch.jit.script reads the annotations below
# at run time.
import torch
from torch import nn

__all__ = ["ScenarioNet", "build_model"]

_WIDTH = {"binary": 1, "multiclass": 3, "regression": 1}


class ScenarioNet(nn.Module):
    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, task: str = "binary", n_features: int = 12, hidden: int = 32) -> None:
        super().__init__()
        self.task = task
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.layers = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, _WIDTH[task]),
        )

    def fit_scaler(self, features: torch.Tensor) -> None:
        self.mean.copy_(features.mean(dim=0))
        self.scale.copy_(features.std(dim=0).clamp_min(1e-6))

    def raw(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (classifiers) or the value (regression): what training's loss takes."""
        return self.layers((features - self.mean) / self.scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        raw = self.raw(features)
        if self.task == "binary":
            return torch.sigmoid(raw)
        if self.task == "multiclass":
            return torch.softmax(raw, dim=1)
        return raw


def build_model(task: str = "binary", n_features: int = 12, hidden: int = 32) -> ScenarioNet:
    """The factory recorded in lineage."""
    return ScenarioNet(task=task, n_features=n_features, hidden=hidden)
