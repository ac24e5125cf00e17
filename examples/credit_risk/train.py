"""The trainer entrypoint recorded in lineage: `examples.credit_risk.train:train`.

`train(data, params, seed=..., source=..., context=None)` takes a DataFrame with the
feature columns and the `default` label (or, from a retraining task, a `TrainingContext`
whose labelled window it trains on), holds out a seeded validation split, fits the network and
returns a `TrainingResult` (model, example inputs, reference inputs, datasets with
digests, params, metrics on the validation set, and the validation set itself as the
labelled evaluation data of the version's quality baseline). A retraining task calls the same
function with new data, and hears each epoch's mean training loss through
`context.progress`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from torch import nn

from examples.credit_risk.data import FEATURES, LABEL
from examples.credit_risk.model import build_model
from registry import Dataset, Metric, TrainingContext, TrainingResult

__all__ = ["DEFAULT_PARAMS", "TRAINER", "auc", "train"]

TRAINER = "examples.credit_risk.train:train"
FACTORY = "examples.credit_risk.model:build_model"
DEFAULT_PARAMS: dict[str, Any] = {
    "hidden": 32,
    "epochs": 12,
    "batch_size": 256,
    "learning_rate": 0.003,
    "weight_decay": 1e-4,
    "validation_fraction": 0.2,
}


def train(
    data: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    source: str = "memory://credit-risk",
    context: TrainingContext | None = None,
) -> TrainingResult:
    settings = {**DEFAULT_PARAMS, **dict(params or {}), "seed": seed}
    if context is not None:
        # A retraining task: the logged window's features with their ground truth.
        label = context.window[context.label_columns[0]].round().astype(int)
        data = context.window[FEATURES].assign(**{LABEL: label})
        source = f"retraining-task://{context.task_id}?parent={context.parent}"
    missing = [c for c in [*FEATURES, LABEL] if c not in data.columns]
    if missing:
        raise ValueError(f"training data lacks columns {missing}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    n_valid = max(1, int(len(data) * settings["validation_fraction"]))
    valid = data.iloc[np.sort(order[:n_valid])].reset_index(drop=True)
    train_part = data.iloc[np.sort(order[n_valid:])].reset_index(drop=True)

    torch.manual_seed(seed)
    model = build_model(n_features=len(FEATURES), hidden=int(settings["hidden"]))
    x_train = torch.tensor(train_part[FEATURES].to_numpy(np.float32))
    y_train = torch.tensor(train_part[LABEL].to_numpy(np.float32)).unsqueeze(1)
    model.fit_scaler(x_train)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=settings["learning_rate"], weight_decay=settings["weight_decay"]
    )
    loss_fn = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    epochs = int(settings["epochs"])
    for epoch in range(1, epochs + 1):
        total_loss = 0.0
        for batch in torch.randperm(len(x_train), generator=generator).split(
            int(settings["batch_size"])
        ):
            optimiser.zero_grad()
            loss = loss_fn(model.logits(x_train[batch]), y_train[batch])
            loss.backward()
            optimiser.step()
            total_loss += loss.item() * len(batch)
        if context is not None:  # `mlgate retrain` shows it; a no-op when nobody listens
            context.progress(epoch, epochs, loss=total_loss / len(x_train))
    model.eval()

    x_valid = torch.tensor(valid[FEATURES].to_numpy(np.float32))
    with torch.inference_mode():
        predicted = model(x_valid).squeeze(1).numpy().astype(np.float64)
    labels = valid[LABEL].to_numpy()
    metrics = {
        "auc": Metric(auc(labels, predicted), dataset="valid"),
        "log_loss": Metric(float(log_loss(labels, predicted, labels=[0, 1])), dataset="valid"),
        "accuracy": Metric(float(accuracy_score(labels, predicted >= 0.5)), dataset="valid"),
        "default_rate": Metric(float(labels.mean()), dataset="valid"),
    }
    return TrainingResult(
        model=model,
        example_inputs=(x_train[:8],),
        feature_names=FEATURES,
        output_names=["default_probability"],
        reference=train_part[FEATURES],
        datasets=[
            Dataset.from_frame(train_part, name="train", source=f"{source}#train", role="training"),
            Dataset.from_frame(valid, name="valid", source=f"{source}#valid", role="validation"),
        ],
        params=settings,
        metrics=metrics,
        factory=FACTORY,
        factory_kwargs={"n_features": len(FEATURES), "hidden": int(settings["hidden"])},
        # The validation rows are labelled and held out of training: the version's quality
        # baseline and calibration are computed on them at registration.
        evaluation=valid,
        label=LABEL,
        task="binary",
        output_kind="probabilities",
    )


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn's), NaN when only one class is present."""
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))
