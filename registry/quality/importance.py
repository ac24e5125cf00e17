"""Which input features a version's predictions depend on: permutation importance, no labels.

Computed at registration on the reference data (the rows drift is measured against), so
that drift on a feature can be weighed by how much the model uses it. A feature's
importance is how far the model's prediction moves when that feature's values are shuffled
across rows (scikit-learn's `permutation_importance`, with the model's own predictions on
the unshuffled rows as the target), so it needs no labels and works for a version
registered from an ONNX file alone:

- a classifier with probabilities: the total-variation distance between the class
  probabilities before and after (½ Σ|p' − p|, in [0, 1]);
- a classifier that outputs only its class: the share of rows whose class changed;
- anything else: the mean absolute change of each output column, in units of that
  column's standard deviation on the reference.

Importances are shares: they sum to 1 over the features, so "drift on features holding
half the model's importance" means the same for every model. Only 2-D inputs with feature
names have features; other inputs (images, sequences) are shuffled as a whole but get no
share, since drift has no column for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from registry.quality.problem import Problem, read_predictions
from registry.signature import Predict, Signature

__all__ = ["Importance", "feature_importance"]

_ROWS = 2000
_REPEATS = 3


@dataclass(frozen=True, slots=True)
class Importance:
    features: dict[str, float]
    """Feature → share of the model's sensitivity (sums to 1), largest first."""
    method: str
    rows: int
    repeats: int

    def to_json(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "method": self.method,
            "rows": self.rows,
            "repeats": self.repeats,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Importance:
        return cls(
            features={str(k): float(v) for k, v in data["features"].items()},
            method=str(data["method"]),
            rows=int(data["rows"]),
            repeats=int(data["repeats"]),
        )

    def top(self, n: int) -> list[tuple[str, float]]:
        return list(self.features.items())[:n]


def feature_importance(
    predict: Predict,
    signature: Signature,
    inputs: Mapping[str, np.ndarray],
    problem: Problem | None,
    *,
    rows: int = _ROWS,
    repeats: int = _REPEATS,
    seed: int = 0,
) -> tuple[Importance | None, str]:
    """Importance of every named feature, or None and why there is none."""
    from sklearn.inspection import permutation_importance

    if not signature.feature_names:
        return None, "the model has no named features (a 2-D input with feature names)"
    total = len(next(iter(inputs.values())))
    keep = np.sort(np.random.default_rng(seed).permutation(total)[:rows])
    sample = {name: np.asarray(array)[keep] for name, array in inputs.items()}
    distance = _distance(predict, signature, sample, problem)
    raw: dict[str, float] = {}
    for input_name, names in signature.feature_names.items():

        def model_of(matrix: np.ndarray, input_name: str = input_name) -> Any:
            return predict({**sample, input_name: matrix.astype(sample[input_name].dtype)})

        result = permutation_importance(
            _Model(model_of),
            sample[input_name],
            np.arange(len(keep)),  # row indices: the scorer looks up the unshuffled answers
            scoring=lambda estimator, matrix, index: -distance(estimator.predict(matrix), index),
            n_repeats=repeats,
            random_state=seed,
        )
        for feature, value in zip(names, result.importances_mean, strict=True):
            raw[feature] = max(0.0, float(value))
    spent = sum(raw.values())
    if spent <= 0:
        return None, "the model's output does not change when any feature is shuffled"
    shares = {k: v / spent for k, v in sorted(raw.items(), key=lambda kv: -kv[1])}
    method = f"permutation: {_what(problem)}, shuffled on {len(keep)} reference rows"
    return Importance(shares, method, len(keep), repeats), ""


class _Model:
    """The smallest thing `permutation_importance` takes as an estimator."""

    def __init__(self, predict: Callable[[np.ndarray], Any]) -> None:
        self._predict = predict

    def fit(self, *_args: Any) -> _Model:
        return self

    def predict(self, matrix: np.ndarray) -> Any:
        return self._predict(matrix)


def _what(problem: Problem | None) -> str:
    if problem is None or problem.task == "regression":
        return "mean absolute change of the outputs, in reference standard deviations"
    if problem.output_kind in ("labels", "score"):
        return "share of rows whose predicted class changed"
    return "total-variation distance between class probabilities"


def _distance(
    predict: Predict,
    signature: Signature,
    sample: Mapping[str, np.ndarray],
    problem: Problem | None,
) -> Callable[[Mapping[str, np.ndarray], np.ndarray], float]:
    """How far shuffled answers are from the unshuffled ones, per the module doc."""
    before = predict(sample)
    if problem is not None and problem.task != "regression":
        base = read_predictions(problem, before[problem.output])
        if base.proba is not None and problem.output_kind not in ("labels", "score"):
            proba = base.proba

            def by_proba(after: Mapping[str, np.ndarray], index: np.ndarray) -> float:
                moved = read_predictions(problem, after[problem.output]).proba
                assert moved is not None
                return float(0.5 * np.abs(moved - proba[index]).sum(axis=1).mean())

            return by_proba
        label = base.label

        def by_label(after: Mapping[str, np.ndarray], index: np.ndarray) -> float:
            moved = read_predictions(problem, after[problem.output]).label
            return float(np.mean(moved != label[index]))

        return by_label
    count = len(next(iter(sample.values())))
    flat = {n: np.asarray(before[n], np.float64).reshape(count, -1) for n in signature.output_names}
    scale = {n: np.where(a.std(axis=0) > 0, a.std(axis=0), 1.0) for n, a in flat.items()}

    def by_value(after: Mapping[str, np.ndarray], index: np.ndarray) -> float:
        moved = [
            np.abs(np.asarray(after[n], np.float64).reshape(len(index), -1) - flat[n][index])
            / scale[n]
            for n in flat
        ]
        return float(np.mean(np.concatenate(moved, axis=1)))

    return by_value
