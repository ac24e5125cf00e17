"""The quality profile: what a version knows about its own quality, fixed at registration.

Stored as the version's `quality` artifact (`profile.json`, plus `evaluation.parquet` when
labelled evaluation data was given) in the same transaction as the version:

- its **problem** (task and output kind: declared, or inferred where unambiguous; when
  neither, the reason, and the version still serves);
- its **baseline**: the realised metrics, with intervals, on the labelled evaluation data
  (a dataset the model did not train on; or, if only the reference carries labels, a
  seeded holdout of it, recorded as such);
- its **calibration** (classifiers), fitted on the same rows, which the estimated quality
  (before labels arrive) needs;
- its **feature importances** on the reference data (`importance.py`), which weigh drift.

The evaluation rows are stored with the model's outputs on them and their labels, so that
a retrained candidate can be compared with this version on exactly the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from registry.errors import InvalidModelInput
from registry.quality.calibration import Calibration, fit_calibration
from registry.quality.importance import Importance, feature_importance
from registry.quality.metrics import Scores, score
from registry.quality.problem import Problem, declare_problem, infer_problem, read_predictions
from registry.reference import (
    ReferenceInput,
    predict_in_chunks,
    rebuild_tensors,
    reference_arrays,
    tensor_columns,
)
from registry.signature import Predict, Signature

if TYPE_CHECKING:  # pandas is imported where a function needs it, not by the gateway
    import pandas as pd

__all__ = [
    "EVALUATION_FILE",
    "PROFILE_FILE",
    "Evaluation",
    "QualityProfile",
    "QualitySpec",
    "build_profile",
    "read_evaluation",
    "read_profile",
    "split_labelled_reference",
]

PROFILE_FILE = "profile.json"
EVALUATION_FILE = "evaluation.parquet"
LABEL_COLUMN = "__label__"
_META_KEY = b"mlgate"
HOLDOUT_SHARE = 0.3

EvaluationInput: TypeAlias = "pd.DataFrame | tuple[ReferenceInput, Any]"


@dataclass(frozen=True)
class QualitySpec:
    """What registration was told about the version's quality (all optional)."""

    task: str | None = None
    output_kind: str | None = None
    output: str | None = None
    classes: int | None = None
    threshold: float | None = None
    evaluation: EvaluationInput | None = None
    """Labelled data the model did not train on: a DataFrame with the features and the
    `label` column, or `(inputs, labels)` for a model without feature names."""
    label: str | None = None
    """The label column of a DataFrame `evaluation` (or of a labelled `reference`)."""
    evaluation_source: str = "evaluation"
    """Where `evaluation` came from: `evaluation`, or `reference holdout`."""

    def declared(self, signature: Signature) -> Problem | None:
        if self.task is None:
            if self.output_kind is not None or self.threshold is not None:
                raise InvalidModelInput("output_kind and threshold need task= to be given too")
            return None
        return declare_problem(
            signature,
            self.task,
            self.output_kind,
            output=self.output,
            classes=self.classes,
            threshold=self.threshold,
        )


@dataclass(frozen=True)
class Evaluation:
    """Labelled rows with the model's outputs on them, as stored in `evaluation.parquet`."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    labels: np.ndarray
    source: str

    @property
    def rows(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class QualityProfile:
    problem: Problem | None
    problem_reason: str
    baseline: Scores | None
    baseline_reason: str
    calibration: Calibration | None
    importance: Importance | None
    importance_reason: str
    evaluation_rows: int = 0
    evaluation_source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "problem": None if self.problem is None else self.problem.to_json(),
            "problem_reason": self.problem_reason,
            "baseline": None if self.baseline is None else self.baseline.to_json(),
            "baseline_reason": self.baseline_reason,
            "calibration": None if self.calibration is None else self.calibration.to_json(),
            "importance": None if self.importance is None else self.importance.to_json(),
            "importance_reason": self.importance_reason,
            "evaluation": {"rows": self.evaluation_rows, "source": self.evaluation_source},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QualityProfile:
        def maybe(key: str, build: Any) -> Any:
            return None if data.get(key) is None else build(data[key])

        evaluation = data.get("evaluation") or {}
        return cls(
            problem=maybe("problem", Problem.from_json),
            problem_reason=str(data.get("problem_reason", "")),
            baseline=maybe("baseline", Scores.from_json),
            baseline_reason=str(data.get("baseline_reason", "")),
            calibration=maybe("calibration", Calibration.from_json),
            importance=maybe("importance", Importance.from_json),
            importance_reason=str(data.get("importance_reason", "")),
            evaluation_rows=int(evaluation.get("rows") or 0),
            evaluation_source=evaluation.get("source"),
        )


def split_labelled_reference(
    reference: ReferenceInput | None, spec: QualitySpec, *, seed: int = 0
) -> tuple[ReferenceInput | None, QualitySpec]:
    """Without evaluation data, a reference DataFrame that carries the label column gives
    a seeded holdout (`HOLDOUT_SHARE` of its rows) as evaluation data; the rest stays the
    reference. Anything else is returned unchanged."""
    import pandas as pd

    if (
        spec.evaluation is not None
        or spec.label is None
        or not isinstance(reference, pd.DataFrame)
        or spec.label not in reference.columns
    ):
        return reference, spec
    rows = len(reference)
    if rows < 2:
        raise InvalidModelInput("a labelled reference needs at least 2 rows to hold some out")
    order = np.random.default_rng(seed).permutation(rows)
    held = np.sort(order[: max(1, int(rows * HOLDOUT_SHARE))])
    kept = np.sort(order[len(held) :])
    holdout = reference.iloc[held].reset_index(drop=True)
    rest = reference.iloc[kept].drop(columns=[spec.label]).reset_index(drop=True)
    return rest, replace(spec, evaluation=holdout, evaluation_source="reference holdout")


def build_profile(
    spec: QualitySpec,
    signature: Signature,
    predict: Predict,
    reference: Mapping[str, np.ndarray] | None,
    folder: Path,
    *,
    max_rows: int,
    seed: int = 0,
) -> QualityProfile:
    """Compute the profile and write it (and the evaluation rows) into `folder`."""
    declared = spec.declared(signature)
    evaluation = _evaluation(spec, signature, predict, max_rows, seed)
    problem: Problem | None
    if declared is not None:
        problem, problem_reason = declared, ""
    else:
        sample = evaluation.outputs if evaluation is not None else _outputs(predict, reference)
        labels = None if evaluation is None else evaluation.labels
        problem, problem_reason = infer_problem(signature, sample, labels)
    baseline, calibration, baseline_reason = None, None, ""
    if problem is None:
        baseline_reason = f"the model's problem is unknown: {problem_reason}"
    elif evaluation is None:
        baseline_reason = (
            "no labelled evaluation data was registered (evaluation= and label=; CLI "
            "--eval-dataset with --label)"
        )
    else:
        labels = problem.check_labels(evaluation.labels, "evaluation labels")
        evaluation = Evaluation(evaluation.inputs, evaluation.outputs, labels, evaluation.source)
        predictions = read_predictions(problem, evaluation.outputs[problem.output])
        baseline = score(predictions, labels, classes=problem.classes, seed=seed)
        if problem.classifier:
            calibration = fit_calibration(predictions, labels, seed=seed)
        _write_evaluation(folder, signature, evaluation)
    inputs = reference if reference is not None else (evaluation and evaluation.inputs)
    if inputs:
        importance, importance_reason = feature_importance(
            predict, signature, inputs, problem, seed=seed
        )
    else:
        importance, importance_reason = None, "no reference or evaluation rows to shuffle"
    profile = QualityProfile(
        problem=problem,
        problem_reason=problem_reason,
        baseline=baseline,
        baseline_reason=baseline_reason,
        calibration=calibration,
        importance=importance,
        importance_reason=importance_reason,
        evaluation_rows=0 if evaluation is None else evaluation.rows,
        evaluation_source=None if evaluation is None else evaluation.source,
    )
    (folder / PROFILE_FILE).write_text(json.dumps(profile.to_json(), indent=1), encoding="utf-8")
    return profile


def read_profile(folder: Path) -> QualityProfile:
    return QualityProfile.from_json(json.loads((folder / PROFILE_FILE).read_text("utf-8")))


def read_evaluation(folder: Path) -> Evaluation | None:
    """The stored evaluation rows, or None if the version was registered without any."""
    path = folder / EVALUATION_FILE
    if not path.exists():
        return None
    table = pq.read_table(path)
    layout = json.loads((table.schema.metadata or {})[_META_KEY])
    inputs, outputs = rebuild_tensors(table, layout)
    labels = table.column(LABEL_COLUMN).to_numpy()
    return Evaluation(inputs, outputs, labels, str(layout.get("source", "evaluation")))


def _evaluation(
    spec: QualitySpec, signature: Signature, predict: Predict, max_rows: int, seed: int
) -> Evaluation | None:
    import pandas as pd

    data, source = spec.evaluation, spec.evaluation_source
    if data is None:
        return None
    if isinstance(data, pd.DataFrame):
        if spec.label is None or spec.label not in data.columns:
            raise InvalidModelInput(
                f"the evaluation data has no label column {spec.label!r}; name it with "
                f"label= (CLI --label); its columns: {list(data.columns)[:20]}"
            )
        labels = data[spec.label].to_numpy()
        inputs = reference_arrays(data.drop(columns=[spec.label]), signature)
    elif isinstance(data, tuple) and len(data) == 2:
        inputs = reference_arrays(data[0], signature)
        labels = np.asarray(data[1])
    else:
        raise InvalidModelInput(
            "evaluation must be a DataFrame with the label column, or (inputs, labels)"
        )
    total = len(next(iter(inputs.values())))
    if len(labels) != total:
        raise InvalidModelInput(f"evaluation has {total} rows but {len(labels)} labels")
    if total > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(total, size=max_rows, replace=False))
        inputs = {name: array[keep] for name, array in inputs.items()}
        labels = labels[keep]
    outputs = _outputs(predict, inputs)
    assert outputs is not None
    return Evaluation(inputs, outputs, labels, source)


def _outputs(
    predict: Predict, inputs: Mapping[str, np.ndarray] | None
) -> dict[str, np.ndarray] | None:
    return predict_in_chunks(predict, inputs) if inputs else None


def _write_evaluation(folder: Path, signature: Signature, evaluation: Evaluation) -> None:
    columns, layout = tensor_columns(signature, evaluation.inputs, evaluation.outputs)
    columns[LABEL_COLUMN] = pa.array(evaluation.labels)
    layout.update(rows=evaluation.rows, source=evaluation.source, label=LABEL_COLUMN)
    table = pa.table(columns).replace_schema_metadata({_META_KEY: json.dumps(layout).encode()})
    pq.write_table(table, folder / EVALUATION_FILE)
