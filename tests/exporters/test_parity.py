from __future__ import annotations

import numpy as np
import pytest
import torch

from exporters import Tolerance, export
from exporters.parity import batch_sizes, compare, gate_cases
from exporters.tolerances import tolerances
from registry import Registry
from registry.errors import InvalidModelInput, NotServable
from registry.signature import Signature, TensorSpec
from tests.exporters.conftest import register_mlp
from tests.fixtures import DataDependentBranch


def _register_branchy(registry: Registry) -> str:
    # Non-negative examples: a trace records the "no negative value" path only.
    version = registry.register(
        DataDependentBranch(),
        "branchy",
        torch.rand(8, 4),
        factory="tests.fixtures:DataDependentBranch",
    )
    return version.ref


def test_the_gate_refuses_a_trace_that_lost_a_branch(sqlite_registry: Registry) -> None:
    ref = _register_branchy(sqlite_registry)
    result = export(sqlite_registry, ref, "torchscript", method="trace")
    assert not result.passed
    assert result.artifact.status == "failed"
    assert result.artifact.details["tracer_warnings"], "the trace warning is kept as evidence"
    failures = result.report["failures"]
    assert any("batch 64" in f and "elements outside rtol=0.0001" in f for f in failures)
    worst = result.report["worst"]
    assert worst["abs_diff"] == pytest.approx(result.report["max_abs_diff"])
    assert result.report["max_abs_diff"] > 0.01
    with pytest.raises(NotServable, match="failed the parity gate"):
        sqlite_registry.open_servable(ref, "torchscript")
    with pytest.raises(NotServable, match="torchscript: failed"):
        sqlite_registry.set_alias("branchy", "production", 1, reason="try")
    # Scripting keeps the branch, so the same model passes when scripted.
    assert export(sqlite_registry, ref, "torchscript", method="script").passed
    assert sqlite_registry.get(ref).servable_formats == ["torchscript"]


def test_onnx_falls_back_to_the_legacy_exporter_and_the_gate_catches_it(
    sqlite_registry: Registry,
) -> None:
    ref = _register_branchy(sqlite_registry)
    result = export(sqlite_registry, ref, "onnx")
    details = result.artifact.details
    assert details["exporter"].startswith("legacy")
    assert "GuardOnDataDependentSymNode" in details["fallback_reason"]
    assert "x.min() < 0" in details["fallback_reason"]
    assert not result.passed
    assert sqlite_registry.get(ref).status == "registered"


def test_tolerances_are_configurable_and_recorded(sqlite_registry: Registry) -> None:
    version = register_mlp(sqlite_registry)
    result = export(sqlite_registry, version.ref, "onnx", rtol=1e-3, atol=1e-4)
    assert result.report["tolerances"]["float32"] == {"rtol": 1e-3, "atol": 1e-4}
    per_dtype = export(
        sqlite_registry, version.ref, "onnx", tolerance={"float32": Tolerance(rtol=0.0, atol=0.0)}
    )
    # Exact equality is too strict for a graph optimiser that reorders float sums: refused.
    assert per_dtype.report["tolerances"]["float32"] == {"rtol": 0.0, "atol": 0.0}
    assert per_dtype.passed == (per_dtype.report["max_abs_diff"] == 0.0)


def test_compare_follows_the_allclose_rule() -> None:
    tolerance = Tolerance(rtol=1e-4, atol=1e-5)
    expected = np.array([1.0, 100.0, 0.0], dtype=np.float32)
    inside = expected + np.array([1e-5, 1e-2 * 0.9, 1e-5], dtype=np.float32)
    assert compare(expected, inside, tolerance)["passed"]
    outside = expected.copy()
    outside[1] = 100.05
    report = compare(expected, outside, tolerance)
    assert not report["passed"]
    assert report["mismatched"] == 1
    assert report["worst"]["index"] == [1]
    assert report["worst"]["expected"] == 100.0
    assert report["max_rel_diff"] == pytest.approx(5e-4, rel=1e-2)


def test_compare_handles_nan_shape_and_dtype() -> None:
    exact = Tolerance(0.0, 0.0)
    nan = np.array([np.nan, 1.0])
    assert compare(nan, nan.copy(), exact)["passed"]
    assert not compare(nan, np.array([0.0, 1.0]), exact)["passed"]
    assert not compare(np.array([1.0, 2.0]), np.array([np.nan, 2.0]), exact)["passed"]
    assert "shape [3]" in compare(np.zeros(2), np.zeros(3), exact)["error"]
    assert "dtype float64" in compare(np.zeros(2, np.float32), np.zeros(2), exact)["error"]


def test_tolerance_table() -> None:
    table = tolerances()
    assert table["float32"] == Tolerance(1e-4, 1e-5)
    assert table["float16"].rtol == 1e-3
    assert tolerances(rtol=0.1)["float64"] == Tolerance(0.1, 1e-7)
    with pytest.raises(InvalidModelInput, match=">= 0"):
        Tolerance(-1.0, 0.0)


def test_batch_sizes_include_one_the_example_and_a_large_batch() -> None:
    assert batch_sizes(8) == [1, 8, 64]
    assert batch_sizes(1) == [1, 64]
    assert batch_sizes(100) == [1, 100, 200]


def test_gate_inputs_are_seeded_and_mix_random_and_reference() -> None:
    signature = Signature(
        (TensorSpec("x", "float32", (-1, 2)), TensorSpec("n", "int64", (-1, 1))), ()
    )
    examples = {"x": np.array([[0.0, 10.0], [1.0, 12.0]], np.float32), "n": np.array([[2], [5]])}
    reference = {"x": np.ones((3, 2), np.float32), "n": np.full((3, 1), 3)}
    first = gate_cases(signature, examples, reference, seed=1)
    again = gate_cases(signature, examples, reference, seed=1)
    assert [(c.batch_size, c.source) for c in first] == [
        (1, "random"),
        (1, "reference"),
        (2, "random"),
        (2, "reference"),
        (64, "random"),
        (64, "reference"),
    ]
    for one, two in zip(first, again, strict=True):
        np.testing.assert_array_equal(one.inputs["x"], two.inputs["x"])
    big = first[4].inputs
    assert big["x"].dtype == np.float32
    assert big["n"].min() >= 2
    assert big["n"].max() <= 5
    # Per-feature spread: the second feature is centred near 11, the first near 0.5.
    assert abs(big["x"][:, 1].mean() - 11) < 1.0
    np.testing.assert_array_equal(first[5].inputs["x"], np.ones((64, 2), np.float32))


def test_compare_handles_infinities() -> None:
    exact = Tolerance(1e-4, 1e-5)
    values = np.array([np.inf, -np.inf, 1.0])
    assert compare(values, values.copy(), exact)["passed"]
    flipped = np.array([-np.inf, -np.inf, 1.0])
    report = compare(values, flipped, exact)
    assert not report["passed"]
    assert report["worst"]["index"] == [0]
    assert report["worst"]["actual"] == "-inf"
