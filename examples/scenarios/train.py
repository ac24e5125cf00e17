"""The trainer entrypoint of the scenario models: `examples.scenarios.train:train`.

`train(data, params, seed=..., context=None)` fits a small MLP for `params["task"]`
(binary: P(y=1) out; multiclass: three class probabilities; regression: the value) on
the features of `data.py`, holding out a seeded validation split that it returns as the
labelled evaluation data, so the registered version gets its quality baseline and
calibration. A retraining task calls the same function on its window's labelled rows, and
hears each epoch's mean training loss through `context.progress`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from examples.scenarios.data import FEATURES, LABEL
from examples.scenarios.model import build_model
from registry import Dataset, TrainingContext, TrainingResult

__all__ = ["DEFAULT_PARAMS", "TRAINER", "train"]

TRAINER = "examples.scenarios.train:train"
FACTORY = "examples.scenarios.model:build_model"
DEFAULT_PARAMS: dict[str, Any] = {
    "task": "binary",
    "hidden": 32,
    "epochs": 12,
    "batch_size": 256,
    "learning_rate": 0.01,
    # Noise channels get small weights: a model that learned the truth shrugs off their drift.
    "weight_decay": 0.05,
    "validation_fraction": 0.25,
}


def train(
    data: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    source: str = "memory://scenarios",
    context: TrainingContext | None = None,
) -> TrainingResult:
    settings = {**DEFAULT_PARAMS, **dict(params or {}), "seed": seed}
    task = str(settings["task"])
    if context is not None:
        data = context.window[FEATURES].assign(**{LABEL: context.window[context.label_columns[0]]})
        source = f"retraining-task://{context.task_id}?parent={context.parent}"
    order = np.random.default_rng(seed).permutation(len(data))
    n_valid = max(1, int(len(data) * settings["validation_fraction"]))
    valid = data.iloc[np.sort(order[:n_valid])].reset_index(drop=True)
    part = data.iloc[np.sort(order[n_valid:])].reset_index(drop=True)

    torch.manual_seed(seed)
    model = build_model(task, n_features=len(FEATURES), hidden=int(settings["hidden"]))
    x = torch.tensor(part[FEATURES].to_numpy(np.float32))
    model.fit_scaler(x)
    if task == "regression":
        y = torch.tensor(part[LABEL].to_numpy(np.float32)).unsqueeze(1)
        loss_fn: nn.Module = nn.MSELoss()
    elif task == "binary":
        y = torch.tensor(part[LABEL].to_numpy(np.float32)).unsqueeze(1)
        loss_fn = nn.BCEWithLogitsLoss()
    else:
        y = torch.tensor(part[LABEL].round().to_numpy(np.int64))
        loss_fn = nn.CrossEntropyLoss()
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=settings["learning_rate"], weight_decay=settings["weight_decay"]
    )
    generator = torch.Generator().manual_seed(seed)
    model.train()
    epochs = int(settings["epochs"])
    for epoch in range(1, epochs + 1):
        total_loss = 0.0
        for batch in torch.randperm(len(x), generator=generator).split(int(settings["batch_size"])):
            optimiser.zero_grad()
            loss = loss_fn(model.raw(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
            total_loss += loss.item() * len(batch)
        if context is not None:  # `mlgate retrain` shows it; a no-op when nobody listens
            context.progress(epoch, epochs, loss=total_loss / len(x))
    model.eval()
    if task != "regression":
        valid = valid.assign(**{LABEL: valid[LABEL].round().astype(np.int64)})
    return TrainingResult(
        model=model,
        example_inputs=(x[:8],),
        feature_names=FEATURES,
        output_names=["prediction"],
        reference=part[FEATURES],
        datasets=[
            Dataset.from_frame(part, name="train", source=f"{source}#train", role="training"),
            Dataset.from_frame(valid, name="valid", source=f"{source}#valid", role="evaluation"),
        ],
        params=settings,
        factory=FACTORY,
        factory_kwargs={
            "task": task,
            "n_features": len(FEATURES),
            "hidden": int(settings["hidden"]),
        },
        evaluation=valid,
        label=LABEL,
        task=task,
    )
