"""What a version predicts: its task, what its output is, and how to read that output.

A version's `Problem` says whether it is a binary classifier, a multi-class classifier or
a regressor, which output tensor carries the prediction, and what that tensor holds:

    task        output_kind     the output tensor                      read as
    binary      probabilities   (n,) or (n, 1): P(y=1); (n, 2): both   P(y=1) ≥ threshold → 1
    binary      logits          (n,) or (n, 1): log-odds; (n, 2)       sigmoid / softmax
    binary      score           (n,) or (n, 1): any ranking score      score ≥ threshold → 1
    binary      labels          (n,) or (n, 1): the predicted class    as is
    multiclass  probabilities   (n, k), rows sum to 1                  argmax
    multiclass  logits          (n, k)                                 softmax, argmax
    multiclass  labels          (n,) or (n, 1): the predicted class    as is
    regression  values          (n,) or (n, 1)                         as is

Labels are class indices 0..k-1 (binary: 0/1). A `score` has no probabilities until it
is calibrated on labelled data; `labels` never has any (no AUC, no log loss, no estimate).

`infer_problem` guesses only what is unambiguous (see its docstring) and otherwise says
what to declare; `declare_problem` checks a declared one against the signature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from registry.errors import InvalidModelInput
from registry.signature import Signature, TensorSpec

__all__ = [
    "OUTPUT_KINDS",
    "TASKS",
    "Predictions",
    "Problem",
    "declare_problem",
    "infer_problem",
    "read_predictions",
]

TASKS = ("binary", "multiclass", "regression")
OUTPUT_KINDS = {
    "binary": ("probabilities", "logits", "score", "labels"),
    "multiclass": ("probabilities", "logits", "labels"),
    "regression": ("values",),
}
_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True, slots=True)
class Problem:
    task: str
    output_kind: str
    output: str
    """The output tensor that carries the prediction (the first one by default)."""
    classes: int | None = None
    """Classifiers: the number of classes (2 for binary)."""
    threshold: float | None = None
    """Binary: the decision threshold on P(y=1) (probabilities, logits) or on the score."""
    source: str = "declared"
    """`declared` at registration, or `inferred` from the signature and the data."""

    @property
    def classifier(self) -> bool:
        return self.task != "regression"

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "output_kind": self.output_kind,
            "output": self.output,
            "classes": self.classes,
            "threshold": self.threshold,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Problem:
        return cls(
            task=str(data["task"]),
            output_kind=str(data["output_kind"]),
            output=str(data["output"]),
            classes=None if data.get("classes") is None else int(data["classes"]),
            threshold=None if data.get("threshold") is None else float(data["threshold"]),
            source=str(data.get("source", "declared")),
        )

    def describe(self) -> str:
        classes = f", {self.classes} classes" if self.task == "multiclass" else ""
        return f"{self.task} ({self.output_kind} in {self.output!r}{classes}, {self.source})"

    def check_labels(self, labels: np.ndarray, where: str = "labels") -> np.ndarray:
        """Labels as this problem needs them (class indices, or finite floats); 400 if not."""
        values = np.asarray(labels)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise InvalidModelInput(
                f"{where} must be one value per row, got shape {list(values.shape)}"
            )
        if values.dtype.kind not in "biuf":
            raise InvalidModelInput(f"{where} must be numbers, got {values.dtype.name} values")
        floats = values.astype(np.float64)
        if not np.isfinite(floats).all():
            raise InvalidModelInput(f"{where}: {int((~np.isfinite(floats)).sum())} are NaN or inf")
        if not self.classifier:
            return floats
        whole = np.round(floats)
        classes = self.classes or 2
        bad = (whole != floats) | (whole < 0) | (whole >= classes)
        if bad.any():
            first = floats[bad][0]
            raise InvalidModelInput(
                f"{where}: {int(bad.sum())} are not class indices 0..{classes - 1} of this "
                f"{self.task} model (first: {first:g})"
            )
        return whole.astype(np.int64)


@dataclass(frozen=True, slots=True)
class Predictions:
    """A classifier's or regressor's output, read the same way whatever the model emits."""

    task: str
    label: np.ndarray
    """(n,): the predicted class (int64) or value (float64)."""
    proba: np.ndarray | None
    """(n, k) class probabilities (k = 2 for binary), when the output has them."""
    score: np.ndarray | None
    """Binary: (n,) a ranking score of the positive class (AUC); else None."""

    @property
    def rows(self) -> int:
        return len(self.label)

    def take(self, index: np.ndarray) -> Predictions:
        return Predictions(
            self.task,
            self.label[index],
            None if self.proba is None else self.proba[index],
            None if self.score is None else self.score[index],
        )


def read_predictions(problem: Problem, output: np.ndarray) -> Predictions:
    """The output tensor of `problem.output`, read as predictions (see the module table)."""
    array = np.asarray(output)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim not in (1, 2):
        raise InvalidModelInput(
            f"output {problem.output!r} has shape {list(np.shape(output))}; a {problem.task} "
            "prediction is one column per row (or one per class)"
        )
    values = array.astype(np.float64)
    if problem.task == "regression":
        return Predictions("regression", values.reshape(len(values)), None, None)
    kind, classes = problem.output_kind, problem.classes or 2
    if kind == "labels":
        return Predictions(problem.task, np.round(values).astype(np.int64).reshape(-1), None, None)
    if array.ndim == 2:
        if array.shape[1] != classes:
            raise InvalidModelInput(
                f"output {problem.output!r} has {array.shape[1]} columns; the problem has "
                f"{classes} classes"
            )
        proba = _softmax(values) if kind == "logits" else values
    elif problem.task == "binary" and kind in ("probabilities", "logits"):
        positive = 1.0 / (1.0 + np.exp(-values)) if kind == "logits" else values
        proba = np.stack([1.0 - positive, positive], axis=1)
    elif problem.task == "binary":  # a score: ranks, no probabilities until calibrated
        threshold = problem.threshold if problem.threshold is not None else 0.0
        return Predictions("binary", (values >= threshold).astype(np.int64), None, values)
    else:
        raise InvalidModelInput(
            f"output {problem.output!r} has one column; a multiclass {kind} output has one "
            "column per class"
        )
    if problem.task == "binary":
        threshold = problem.threshold if problem.threshold is not None else 0.5
        label = (proba[:, 1] >= threshold).astype(np.int64)
        return Predictions("binary", label, proba, proba[:, 1])
    return Predictions("multiclass", proba.argmax(axis=1).astype(np.int64), proba, None)


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def declare_problem(
    signature: Signature,
    task: str,
    output_kind: str | None = None,
    *,
    output: str | None = None,
    classes: int | None = None,
    threshold: float | None = None,
) -> Problem:
    """A declared problem, checked against the signature; InvalidModelInput if it cannot be."""
    if task not in TASKS:
        raise InvalidModelInput(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    spec = _output_spec(signature, output)
    width = _width(spec)
    kinds = OUTPUT_KINDS[task]
    if output_kind is None:
        output_kind = _default_kind(task, spec)
    if output_kind not in kinds:
        raise InvalidModelInput(
            f"a {task} model's output kind is one of {', '.join(kinds)}; got {output_kind!r}"
        )
    if width is None:
        raise InvalidModelInput(
            f"output {spec.describe()} is not one value or one row of class scores per row"
        )
    if task == "regression":
        if width != 1:
            raise InvalidModelInput(
                f"a regression output is one value per row; {spec.describe()} has {width}"
            )
        return Problem("regression", "values", spec.name, None, None, "declared")
    if output_kind == "labels" and width != 1:
        raise InvalidModelInput(f"a labels output is one class per row; {spec.describe()}")
    if task == "binary":
        if width not in (1, 2):
            raise InvalidModelInput(
                f"a binary output has one column (P(y=1), a logit or a score) or two; "
                f"{spec.describe()} has {width}"
            )
        if output_kind == "score" and width != 1:
            raise InvalidModelInput("a binary score output has one column")
        if classes not in (None, 2):
            raise InvalidModelInput(f"a binary model has 2 classes, not {classes}")
        default = 0.0 if output_kind == "score" else 0.5
        chosen = default if threshold is None else float(threshold)
        if not math.isfinite(chosen) or (output_kind != "score" and not 0 < chosen < 1):
            raise InvalidModelInput(f"threshold must be a probability in (0, 1); got {threshold}")
        return Problem("binary", output_kind, spec.name, 2, chosen, "declared")
    if threshold is not None:
        raise InvalidModelInput("a threshold applies to binary models only")
    if output_kind == "labels":
        if classes is None or classes < 3:
            raise InvalidModelInput(
                "a multiclass labels output does not say how many classes there are: give "
                "classes (3 or more)"
            )
        return Problem("multiclass", "labels", spec.name, classes, None, "declared")
    if width < 3 or classes not in (None, width):
        raise InvalidModelInput(
            f"a multiclass output has one column per class (3 or more); {spec.describe()} "
            f"has {width}{'' if classes is None else f' but classes is {classes}'}"
        )
    return Problem("multiclass", output_kind, spec.name, width, None, "declared")


def infer_problem(
    signature: Signature,
    outputs: Mapping[str, np.ndarray] | None = None,
    labels: np.ndarray | None = None,
) -> tuple[Problem | None, str]:
    """The problem when the signature and data leave no doubt, else None and what to declare.

    Unambiguous cases (the first output; `outputs` are the model's outputs on reference or
    evaluation rows, `labels` the evaluation labels):
    - an integer output: the predicted class (binary if its values and labels are 0/1);
    - k ≥ 2 float columns whose rows are probabilities summing to 1: a classifier with k
      classes (binary if k = 2);
    - k ≥ 2 float columns that are not, with integer labels in 0..k-1: logits;
    - one float column with 0/1 labels: binary, P(y=1) if every output is in [0, 1];
    - one float column with labels that are not all whole numbers: regression.
    Everything else (one float column and no labels, say) could be several things.
    """
    if not signature.outputs:
        return None, "the model has no outputs"
    spec = signature.outputs[0]
    width = _width(spec)
    declare = "declare it at registration (task=..., output_kind=...; CLI --task, --output-kind)"
    if width is None:
        return None, f"output {spec.describe()} is not one value or class row per row; {declare}"
    sample = None if outputs is None else outputs.get(spec.name)
    label_values = None if labels is None else np.asarray(labels, dtype=np.float64).reshape(-1)
    whole = label_values is not None and bool(np.all(label_values == np.round(label_values)))
    binary_labels = whole and label_values is not None and set(np.unique(label_values)) <= {0, 1}
    kind = np.dtype(spec.dtype).kind
    if kind in "iub":
        if width != 1:
            return None, f"an integer output with {width} columns; {declare}"
        top = 1 if sample is None else int(np.max(sample, initial=1))
        if label_values is not None and whole:
            top = max(top, int(label_values.max(initial=0)))
        task = "binary" if top <= 1 else "multiclass"
        return Problem(task, "labels", spec.name, max(2, top + 1), None, "inferred"), ""
    if width >= 2:
        if sample is not None and _probability_rows(np.asarray(sample, np.float64)):
            task = "binary" if width == 2 else "multiclass"
            threshold = 0.5 if width == 2 else None
            return Problem(task, "probabilities", spec.name, width, threshold, "inferred"), ""
        if label_values is not None and whole and label_values.max(initial=0) < width:
            task = "binary" if width == 2 else "multiclass"
            threshold = 0.5 if width == 2 else None
            return Problem(task, "logits", spec.name, width, threshold, "inferred"), ""
        return None, (
            f"output {spec.describe()} has {width} columns that are not probabilities (logits, "
            f"or {width} regression targets?); {declare}"
        )
    if label_values is None:
        return None, (
            f"output {spec.describe()} is one number per row (a probability, a score or a "
            f"regression value?) and no labelled evaluation data says which; {declare}"
        )
    if binary_labels and sample is not None:
        values = np.asarray(sample, np.float64)
        if values.size and values.min() >= 0 and values.max() <= 1:
            return Problem("binary", "probabilities", spec.name, 2, 0.5, "inferred"), ""
        return None, (
            f"output {spec.describe()} has values outside [0, 1] with 0/1 labels (logits or a "
            f"score?); {declare}"
        )
    if not whole:
        return Problem("regression", "values", spec.name, None, None, "inferred"), ""
    return None, (
        f"output {spec.describe()} is one number per row and the labels are whole numbers "
        f"(classes or counts?); {declare}"
    )


def _output_spec(signature: Signature, output: str | None) -> TensorSpec:
    if not signature.outputs:
        raise InvalidModelInput("the model has no outputs to judge")
    if output is None:
        return signature.outputs[0]
    for spec in signature.outputs:
        if spec.name == output:
            return spec
    raise InvalidModelInput(
        f"output {output!r} is not an output of the model ({signature.output_names})"
    )


def _width(spec: TensorSpec) -> int | None:
    """Columns per row: 1 for (n,) and (n, 1), k for (n, k); None for anything else."""
    if len(spec.shape) == 1:
        return 1
    if len(spec.shape) == 2 and spec.shape[1] >= 1:
        return spec.shape[1]
    return None


def _default_kind(task: str, spec: TensorSpec) -> str:
    if task == "regression":
        return "values"
    if np.dtype(spec.dtype).kind in "iub":
        return "labels"
    return "probabilities"


def _probability_rows(values: np.ndarray) -> bool:
    if values.ndim != 2 or not len(values) or not np.isfinite(values).all():
        return False
    inside = values.min() >= 0 and values.max() <= 1
    return bool(inside and np.allclose(values.sum(axis=1), 1.0, atol=_SUM_TOLERANCE))
