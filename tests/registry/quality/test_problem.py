"""A version's problem: declared and checked, inferred only where it is unambiguous."""

from __future__ import annotations

import numpy as np
import pytest

from registry.errors import InvalidModelInput
from registry.quality.problem import Problem, declare_problem, infer_problem, read_predictions
from registry.signature import Signature, TensorSpec

X = TensorSpec("x", "float32", (-1, 4))


def signature(*outputs: TensorSpec) -> Signature:
    return Signature((X,), outputs)


ONE = signature(TensorSpec("p", "float32", (-1, 1)))
THREE = signature(TensorSpec("logits", "float32", (-1, 3)))
CLASS = signature(TensorSpec("label", "int64", (-1,)))


def test_declared_problems_are_checked_against_the_signature() -> None:
    binary = declare_problem(ONE, "binary")
    assert (binary.output_kind, binary.classes, binary.threshold) == ("probabilities", 2, 0.5)
    assert declare_problem(ONE, "binary", "score").threshold == 0.0
    assert declare_problem(THREE, "multiclass", "logits").classes == 3
    assert declare_problem(ONE, "regression").output_kind == "values"
    assert declare_problem(CLASS, "multiclass", "labels", classes=4).classes == 4
    cases = [
        (ONE, "ranking", None, "task must be one of"),
        (ONE, "binary", "values", "output kind is one of probabilities, logits, score, labels"),
        (THREE, "regression", None, "one value per row"),
        (ONE, "multiclass", "probabilities", "one column per class"),
        (CLASS, "multiclass", "labels", "give classes"),
    ]
    for sig, task, kind, message in cases:
        with pytest.raises(InvalidModelInput, match=message):
            declare_problem(sig, task, kind)
    with pytest.raises(InvalidModelInput, match="probability in"):
        declare_problem(ONE, "binary", threshold=1.5)
    with pytest.raises(InvalidModelInput, match="not an output"):
        declare_problem(ONE, "binary", output="nope")


def test_only_the_unambiguous_is_inferred() -> None:
    rng = np.random.default_rng(0)
    softmax = rng.dirichlet(np.ones(3), 50).astype(np.float32)
    found, _ = infer_problem(THREE, {"logits": softmax})
    assert found == Problem("multiclass", "probabilities", "logits", 3, None, "inferred")
    logits = rng.standard_normal((50, 3))
    found, _ = infer_problem(THREE, {"logits": logits}, rng.integers(0, 3, 50))
    assert found is not None
    assert found.output_kind == "logits"
    found, why = infer_problem(THREE, {"logits": logits})
    assert found is None
    assert "declare it at registration" in why
    scores = rng.random(50)
    found, why = infer_problem(ONE, {"p": scores})  # a probability? a value? no labels say
    assert found is None
    assert "no labelled evaluation data says which" in why
    found, _ = infer_problem(ONE, {"p": scores}, rng.integers(0, 2, 50))
    assert found is not None
    assert (found.task, found.output_kind) == ("binary", "probabilities")
    found, _ = infer_problem(ONE, {"p": scores * 10}, rng.standard_normal(50))
    assert found is not None
    assert found.task == "regression"
    found, why = infer_problem(ONE, {"p": scores * 10}, rng.integers(0, 2, 50))
    assert found is None  # 0/1 labels, outputs outside [0, 1]: logits or a score?
    assert "logits or a score" in why
    found, _ = infer_problem(CLASS, {"label": rng.integers(0, 3, 50)})
    assert found is not None
    assert (found.task, found.classes) == ("multiclass", 3)


def test_outputs_are_read_the_same_way_whatever_the_model_emits() -> None:
    logits = np.array([[0.0], [2.0], [-2.0]], np.float32)
    read = read_predictions(declare_problem(ONE, "binary", "logits"), logits)
    assert read.label.tolist() == [1, 1, 0]  # sigmoid(0) = 0.5 ≥ the 0.5 threshold
    assert read.proba is not None
    assert np.allclose(read.proba.sum(axis=1), 1)
    scored = read_predictions(declare_problem(ONE, "binary", "score", threshold=1.0), logits)
    assert scored.proba is None
    assert scored.label.tolist() == [0, 1, 0]
    assert scored.score is not None
    three = read_predictions(declare_problem(THREE, "multiclass", "logits"), np.eye(3) * 5)
    assert three.label.tolist() == [0, 1, 2]
    with pytest.raises(InvalidModelInput, match="3 classes"):
        read_predictions(declare_problem(THREE, "multiclass"), np.ones((2, 4)))


def test_labels_must_fit_the_problem() -> None:
    binary = declare_problem(ONE, "binary")
    assert binary.check_labels(np.array([0, 1, 1.0])).tolist() == [0, 1, 1]
    with pytest.raises(InvalidModelInput, match=r"not class indices 0\.\.1"):
        binary.check_labels(np.array([0, 2]))
    with pytest.raises(InvalidModelInput, match="not class indices"):
        binary.check_labels(np.array([0.5]))
    with pytest.raises(InvalidModelInput, match="NaN or inf"):
        declare_problem(ONE, "regression").check_labels(np.array([1.0, np.nan]))
    with pytest.raises(InvalidModelInput, match="numbers"):
        binary.check_labels(np.array(["a"]))
