"""The contract between mlgate and training code: what a trainer entrypoint returns.

A trainer entrypoint is a function `train(data, params=None, *, seed=0)` that takes a
DataFrame of features plus the label column and returns a `TrainingResult`. Its
`"module:function"` name is recorded in lineage, so that a retraining task can run the
same code on new data and register the result as a child version.

A trainer that can be retrained also takes `context: TrainingContext | None = None`: the
retrainer then calls `train(context.window, params, seed=seed, context=context)`, and the
trainer builds its data from the logged window's features and labels (the label column
names are in `context.label_columns`; the trainer knows what its own label is called).

A trainer may report each epoch with `context.progress(epoch, total, loss=...)` (any float
metrics by name): `mlgate retrain` shows them as a bar in a terminal; with nobody
listening (tests, the gateway's in-process retrainer) the call does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from registry.lineage import Dataset, Metric
from registry.reference import ReferenceInput

if TYPE_CHECKING:
    import torch

    from registry.records import ModelVersion
    from registry.store import Registry

__all__ = ["EpochListener", "TrainingContext", "TrainingResult"]

log = logging.getLogger("mlgate.retrainer")

EpochListener = Callable[[int, int | None, Mapping[str, float]], None]
"""Told of each epoch a trainer reports: (epoch, total epochs or None, metrics by name)."""


@dataclass(frozen=True, eq=False)
class TrainingContext:
    """What a retraining task hands the trainer entrypoint."""

    window: Any
    """DataFrame: the logged rows of the drifted window that have ground truth, minus the
    held-out rows the retrainer keeps for its comparison; the model's feature columns,
    its outputs at the time, and the label column(s)."""
    label_columns: tuple[str, ...]
    reference: Any
    """DataFrame: the serving version's reference sample (its inputs and outputs)."""
    parent: str
    """The serving version, `name:version`."""
    task_id: int
    seed: int
    params: Mapping[str, Any] = field(default_factory=dict)
    listener: EpochListener | None = field(default=None, repr=False)
    """Who hears `progress` (the retrainer's display); None: nobody."""

    def progress(self, epoch: int, total: int | None = None, **metrics: float) -> None:
        """Report that `epoch` (counted from 1) of `total` is done, with any metrics
        (`loss=0.41`). Nothing happens when nobody listens; a listener that fails is logged
        and never stops the training."""
        if self.listener is None:
            return
        try:
            self.listener(epoch, total, {name: float(value) for name, value in metrics.items()})
        except Exception:  # a progress display must not fail a training run
            log.warning("task %s: the progress listener failed", self.task_id, exc_info=True)


@dataclass
class TrainingResult:
    model: torch.nn.Module
    example_inputs: Any
    feature_names: Sequence[str] | None
    reference: ReferenceInput | None
    datasets: Sequence[Dataset] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    output_names: Sequence[str] | None = None
    factory: str | None = None
    factory_kwargs: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Any = None
    """Labelled rows the model did not train on (a DataFrame with the `label` column): its
    quality baseline and calibration are computed on them at registration."""
    label: str | None = None
    task: str | None = None
    """binary, multiclass or regression (inferred where unambiguous when left out)."""
    output_kind: str | None = None

    def register(
        self, registry: Registry, name: str, *, trainer: str, **options: Any
    ) -> ModelVersion:
        """Register this result under `name`, recording `trainer` as its entrypoint."""
        return registry.register(
            self.model,
            name,
            self.example_inputs,
            feature_names=self.feature_names,
            output_names=self.output_names,
            reference=self.reference,
            datasets=self.datasets,
            trainer=trainer,
            params=self.params,
            metrics=self.metrics,
            factory=self.factory,
            factory_kwargs=self.factory_kwargs,
            **{
                "task": self.task,
                "output_kind": self.output_kind,
                "evaluation": self.evaluation,
                "label": self.label,
                **options,  # the retrainer passes the parent's task when the trainer did not
            },
        )
