from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from registry import ModelVersion, Registry
from tests.fixtures import make_mlp

FEATURES = [f"f{i}" for i in range(6)]


def register_mlp(registry: Registry, name: str = "mlp", rows: int = 200) -> ModelVersion:
    reference = pd.DataFrame(
        np.random.default_rng(0).standard_normal((rows, 6)).astype(np.float32), columns=FEATURES
    )
    return registry.register(
        make_mlp(),
        name,
        torch.randn(8, 6),
        feature_names=FEATURES,
        reference=reference,
        factory="tests.fixtures:make_mlp",
    )
