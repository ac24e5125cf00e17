"""The credit-risk network: standardise the raw features, then a small MLP, then P(default).

The standardisation statistics are buffers, so they travel in the state dict and the
factory needs only sizes to rebuild the model.
"""

# No `from __future__ import annotations` here: torch.jit.script reads the buffer
# annotations below at run time and cannot resolve them as strings.
import torch
from torch import nn

__all__ = ["CreditRiskNet", "build_model"]


class CreditRiskNet(nn.Module):
    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, n_features: int = 14, hidden: int = 32) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.layers = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def fit_scaler(self, features: torch.Tensor) -> None:
        self.mean.copy_(features.mean(dim=0))
        self.scale.copy_(features.std(dim=0).clamp_min(1e-6))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers((features - self.mean) / self.scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(features))


def build_model(n_features: int = 14, hidden: int = 32) -> CreditRiskNet:
    """The factory recorded in lineage: rebuilds the network before its weights load."""
    return CreditRiskNet(n_features=n_features, hidden=hidden)
