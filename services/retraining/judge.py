"""Judging a retrained candidate against the serving version, and the promotion rule.

Both versions' gate-passed ONNX artifacts predict the same labelled rows, twice:

- the **window**: the held-out labelled rows of the task's window (the rows that showed
  the harm), which the candidate did not train on;
- the **evaluation data** registered with the serving version (when it has some), to
  catch forgetting.

On each, the task's primary metric (accuracy for classifiers, MAE for regression, or
the metric the policy names) is compared with a paired interval of the gain
(`registry.quality.compare`). The rule, in order:

1. the gain on the window is at least `margin` and its interval is above zero, and the
   candidate did not forget → **promote** (automatically when `auto_promote`);
2. the candidate is worse on the window (gain < 0), or it forgot → **decline**: it stays
   registered, marked `declined`, never `@latest`;
3. otherwise (better, but not by the margin, or not surely) → left for a person.

Forgetting: the candidate is worse than the serving version on the evaluation data by
more than `max_forgetting`. It does not count when the serving version itself is worse
on the window than on its own evaluation data by more than that: then the old labels no
longer describe the world (the relation changed), and doing worse on them is the point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from exporters.runners import onnx_predictor
from registry.errors import BadRequest
from registry.quality.compare import Comparison, compare
from registry.quality.metrics import PRIMARY
from registry.quality.problem import Predictions, Problem, read_predictions
from registry.quality.profile import Evaluation
from registry.records import ModelVersion
from registry.store import Registry

__all__ = ["Judgement", "judge_candidate", "predictions_of"]


@dataclass(frozen=True)
class Judgement:
    verdict: str
    """`promote`, `decline` or `undecided`."""
    reason: str
    window: Comparison
    evaluation: Comparison | None
    stale: bool
    """The serving version fell on the window: its evaluation data is out of date."""

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "window": self.window.to_json(),
            "evaluation": None if self.evaluation is None else self.evaluation.to_json(),
            "evaluation_stale": self.stale,
        }


def predictions_of(
    registry: Registry, version: ModelVersion, problem: Problem, inputs: Mapping[str, np.ndarray]
) -> Predictions:
    """The version's gate-passed ONNX artifact on `inputs`, read as `problem` predictions."""
    _, _, folder = registry.open_servable(version.ref, "onnx")
    wanted = problem.output
    if wanted not in version.signature.output_names:
        raise BadRequest(
            f"{version.ref} has no output {wanted!r} ({version.signature.output_names}); "
            "the candidate must keep the serving version's outputs to be compared"
        )
    predict = onnx_predictor(folder / "model.onnx", [wanted])
    return read_predictions(problem, np.asarray(predict(dict(inputs))[wanted]))


def judge_candidate(
    registry: Registry,
    serving: ModelVersion,
    candidate: ModelVersion,
    problem: Problem,
    *,
    window_inputs: Mapping[str, np.ndarray],
    window_labels: np.ndarray,
    evaluation: Evaluation | None,
    metric: str | None,
    margin: float,
    max_forgetting: float,
    seed: int = 0,
) -> Judgement:
    metric = metric or PRIMARY[problem.task]
    labels = problem.check_labels(window_labels, "the window's labels")
    on_window = compare(
        metric,
        labels,
        predictions_of(registry, serving, problem, window_inputs),
        predictions_of(registry, candidate, problem, window_inputs),
        classes=problem.classes,
        seed=seed,
    )
    on_evaluation, stale = None, False
    if evaluation is not None:
        truth = problem.check_labels(evaluation.labels, "the evaluation labels")
        on_evaluation = compare(
            metric,
            truth,
            predictions_of(registry, serving, problem, evaluation.inputs),
            predictions_of(registry, candidate, problem, evaluation.inputs),
            classes=problem.classes,
            seed=seed,
        )
        fall = on_evaluation.champion - on_window.champion
        stale = (fall if on_window.higher_is_better else -fall) > max_forgetting
    verdict, reason = _rule(on_window, on_evaluation, stale, margin, max_forgetting)
    return Judgement(verdict, reason, on_window, on_evaluation, stale)


def _rule(
    window: Comparison,
    evaluation: Comparison | None,
    stale: bool,
    margin: float,
    max_forgetting: float,
) -> tuple[str, str]:
    shown = (
        f"{window.metric} {window.challenger:.4f} vs {window.champion:.4f} on "
        f"{window.n} held-out window rows, gain {window.gain:+.4f} "
        f"[{window.lower:+.4f}, {window.upper:+.4f}]"
    )
    forgot = evaluation is not None and not stale and evaluation.gain < -max_forgetting
    if forgot:
        assert evaluation is not None
        return "decline", (
            f"{shown}; but it forgot: {evaluation.metric} {evaluation.challenger:.4f} vs "
            f"{evaluation.champion:.4f} on the {evaluation.n} original evaluation rows "
            f"(more than {max_forgetting} worse, and the serving version still holds there)"
        )
    if window.gain < 0:
        return "decline", f"{shown}: worse than the serving version"
    if window.gain >= margin and window.lower > 0:
        return "promote", f"{shown}: better by at least the margin {margin}, and surely"
    why = "not by the margin" if window.gain < margin else "not surely (the interval reaches 0)"
    return "undecided", f"{shown}: better, but {why}; a person decides"
