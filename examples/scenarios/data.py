"""Twelve sensor-like features, a known ground truth, and the ways it can move.

Features `s0`..`s11`: `s0`..`s3` carry the signal (a mixture, a skewed and two normal
channels), `s4` a little, `s5`..`s11` none (noise channels, two of them counts). The
truth is one linear score `z` of the signal features; each task reads it its own way:

- binary: y ~ Bernoulli(sigmoid(z));
- multiclass (3 classes): y ~ softmax(2·[z, −z, (s2 − s3)·1.5]);
- regression: y = 2·z + N(0, 0.5).

`Shift` moves the population:
- `harmless`: drift on four channels the truth ignores: a mean shift (`s6`), a variance
  change (`s7`), a mixture-weight change (`s8`) and a Poisson rate change (`s10`). A
  model that learned the truth is as good as before;
- `concept`: the relation changes: `s0`'s effect flips sign (an important feature's
  effect reversed), while only `s5` shifts a little. Every model trained before is now
  wrong on half its signal, and as confident as before: only labels can show it;
- `boundary`: the inputs move where the model is unsure: `s0`'s two modes close in on 0,
  the decision boundary, so more rows are a coin toss. The relation holds, the model
  gets worse, and its own confidence (the estimate before labels) says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FEATURES", "LABEL", "TASKS", "Shift", "generate", "truth"]

FEATURES = [f"s{i}" for i in range(12)]
LABEL = "y"
TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True, slots=True)
class Shift:
    harmless: float = 0.0
    """0: none; 1: the full harmless drift (see the module doc)."""
    concept: bool = False
    boundary: bool = False


def generate(task: str, rows: int, seed: int = 0, shift: Shift | None = None) -> pd.DataFrame:
    """`rows` rows of the 12 features and the label `y` for `task`."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    shift = shift or Shift()
    rng = np.random.default_rng(seed)
    h = shift.harmless
    mixture = rng.random(rows) < 0.5
    columns = {
        "s0": np.where(mixture, rng.normal(-1.0, 0.6, rows), rng.normal(1.0, 0.6, rows))
        * (0.15 if shift.boundary else 1.0),
        "s1": rng.gamma(2.0, 0.6, rows) - 1.2,
        "s2": rng.normal(0.0, 1.0, rows),
        "s3": rng.normal(0.0, 1.0, rows),
        "s4": rng.normal(0.0, 1.0, rows),
        "s5": rng.normal(0.0, 1.0, rows) + (0.3 if shift.concept else 0.0),
        "s6": rng.normal(0.0, 1.0, rows) + 1.5 * h,
        "s7": rng.normal(0.0, 1.0 + 0.8 * h, rows),
        "s8": np.where(
            rng.random(rows) < 0.2 + 0.6 * h, rng.normal(3, 0.5, rows), rng.normal(-1, 0.5, rows)
        ),
        "s9": rng.normal(5.0, 2.0, rows),
        "s10": rng.poisson(2.0 + 2.0 * h, rows).astype(np.float64),
        "s11": rng.poisson(1.0, rows).astype(np.float64),
    }
    frame = pd.DataFrame(columns).astype(np.float32)
    z = truth(frame, concept=shift.concept)
    if task == "binary":
        frame[LABEL] = (rng.random(rows) < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)
    elif task == "multiclass":
        scores = 2.0 * np.stack([z, -z, 1.5 * (frame["s2"] - frame["s3"]).to_numpy()], axis=1)
        proba = np.exp(scores - scores.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        frame[LABEL] = (rng.random(rows)[:, None] > proba.cumsum(axis=1)).sum(axis=1)
    else:
        frame[LABEL] = (2.0 * z + rng.normal(0.0, 0.5, rows)).astype(np.float64)
    return frame


def truth(frame: pd.DataFrame, *, concept: bool = False) -> np.ndarray:
    """The score every task's label is drawn from."""
    s = {name: frame[name].to_numpy(np.float64) for name in FEATURES[:5]}
    sign = -1.0 if concept else 1.0
    return sign * 1.6 * s["s0"] + 1.0 * s["s1"] - 0.9 * s["s2"] + 0.6 * s["s3"] + 0.15 * s["s4"]
