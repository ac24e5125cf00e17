"""What quality can still do for a version registered without a task or evaluation data.

A version imported from an ONNX file alone may not say what it predicts, and may carry no
labelled evaluation data: no problem, no baseline. Once labels come back, they can say
both, and these two fallbacks use them, each recorded as such in every evaluation:

- **the problem from feedback**: the same unambiguous rules as at registration
  (`registry.quality.problem.infer_problem`) applied to the labelled predictions: 0/1
  labels on one column of probabilities is a binary classifier, labels that are not
  whole numbers a regression, and so on. Nothing is guessed beyond those rules.
- **a baseline from the version's first labelled predictions**: the primary metric on
  the oldest `window_rows` labelled predictions of the version, frozen once there are
  `min_labels` of them. A fall is then judged against how the version did when it
  started serving: weaker evidence than held-out evaluation data (the start may already
  have drifted), so the evaluation says where its baseline came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from monitors.quality.buckets import Bucket
from monitors.quality.figures import QualityThresholds, usable_labels
from registry.quality.metrics import Figure, score
from registry.quality.problem import Problem, infer_problem, read_predictions
from registry.signature import Signature

__all__ = ["early_baseline", "problem_from_feedback"]


def problem_from_feedback(
    signature: Signature, buckets: Sequence[Bucket], min_labels: int
) -> Problem | None:
    """The problem the labelled predictions leave no doubt about, or None."""
    outputs = [b.output[b.labelled] for b in buckets if b.labelled.any()]
    labels = [b.label[b.labelled] for b in buckets if b.labelled.any()]
    if not signature.outputs or sum(len(x) for x in labels) < min_labels:
        return None
    sample = {signature.outputs[0].name: np.concatenate(outputs)}
    found, _ = infer_problem(signature, sample, np.concatenate(labels))
    return None if found is None else replace(found, source="feedback")


def early_baseline(
    buckets: Sequence[Bucket], problem: Problem, metric: str, thresholds: QualityThresholds
) -> Figure | None:
    """The metric on the version's oldest labelled predictions, once there are enough."""
    outputs, labels, stamps = [], [], []
    for bucket in buckets:
        usable = bucket.labelled & usable_labels(problem, bucket.label)
        outputs.append(bucket.output[usable])
        labels.append(bucket.label[usable])
        stamps.append(bucket.ts_us[usable])
    if not stamps:
        return None
    ts = np.concatenate(stamps)
    if len(ts) < thresholds.min_labels:
        return None
    oldest = np.argsort(ts, kind="stable")[: thresholds.window_rows]
    truth = np.concatenate(labels)[oldest]
    predictions = read_predictions(problem, np.concatenate(outputs)[oldest])
    cast = truth.astype(np.int64) if problem.classifier else truth
    return score(predictions, cast, classes=problem.classes).figures.get(metric)
