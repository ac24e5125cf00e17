"""The parity gate: an exported model must answer like the eager one, or it is never served.

Both models run on batches of 1 row, the example's size and at least 64 rows, each batch
twice: seeded random inputs shaped like the examples (per-feature mean and spread), and
rows of the version's reference data. Every output element is compared with a
dtype-aware tolerance (`tolerances.py`). The report (sizes tried, max abs and rel diff,
the worst element, each failure in words) is stored with the artifact.

A run that raises (an export that fixed the batch size, say) is a failed case, not a
crash: the report says what the runtime said.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from exporters.capture import summarise_error
from exporters.tolerances import Tolerance, for_dtype
from registry.errors import ExportFailed
from registry.signature import Predict, Signature

__all__ = ["GateCase", "batch_sizes", "compare", "gate_cases", "run_gate"]

MIN_LARGE_BATCH = 64
_MAX_FAILURES_REPORTED = 20


@dataclass(frozen=True, slots=True)
class GateCase:
    batch_size: int
    source: str  # "random" or "reference"
    inputs: dict[str, np.ndarray]


def batch_sizes(example_rows: int) -> list[int]:
    large = MIN_LARGE_BATCH if example_rows < MIN_LARGE_BATCH else 2 * example_rows
    return sorted({1, example_rows, large})


def gate_cases(
    signature: Signature,
    examples: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray] | None,
    *,
    seed: int = 0,
) -> list[GateCase]:
    rng = np.random.default_rng(seed)
    example_rows = len(next(iter(examples.values())))
    cases = []
    for size in batch_sizes(example_rows):
        cases.append(
            GateCase(
                size,
                "random",
                {s.name: _random_like(examples[s.name], size, rng) for s in signature.inputs},
            )
        )
        if reference:
            rows = len(next(iter(reference.values())))
            start = int(rng.integers(rows))
            index = (np.arange(size) + start) % rows
            cases.append(GateCase(size, "reference", {n: reference[n][index] for n in examples}))
    return cases


def _random_like(example: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    shape = (rows, *example.shape[1:])
    kind = example.dtype.kind
    if kind == "b":
        return rng.random(shape) < 0.5
    if kind in "iu":
        low, high = int(example.min()), int(example.max())
        return rng.integers(low, high + 1, size=shape).astype(example.dtype)
    values = example.astype(np.float64)
    # Per-feature statistics for tabular inputs, one mean and spread otherwise.
    axis = 0 if values.ndim == 2 else None
    mean = values.mean(axis=axis)
    spread = values.std(axis=axis)
    spread = np.where(spread > 0, spread, np.maximum(np.abs(mean), 1.0))
    return (rng.standard_normal(shape) * spread + mean).astype(example.dtype)


def compare(expected: np.ndarray, actual: np.ndarray, tolerance: Tolerance) -> dict[str, Any]:
    """Element-wise comparison of one output; JSON-ready."""
    result: dict[str, Any] = {
        "dtype": expected.dtype.name,
        "shape": list(expected.shape),
        "rtol": tolerance.rtol,
        "atol": tolerance.atol,
    }
    if actual.shape != expected.shape:
        return {
            **result,
            "passed": False,
            "error": f"shape {list(actual.shape)}, expected {list(expected.shape)}",
        }
    if actual.dtype != expected.dtype:
        return {
            **result,
            "passed": False,
            "error": f"dtype {actual.dtype.name}, expected {expected.dtype.name}",
        }
    if expected.size == 0:
        return {
            **result,
            "passed": True,
            "elements": 0,
            "mismatched": 0,
            "max_abs_diff": 0.0,
            "max_rel_diff": 0.0,
        }
    want = expected.astype(np.float64)
    got = actual.astype(np.float64)
    # Equal values (infinities included) and NaN against NaN differ by 0; NaN against a
    # number, or an infinity against anything else, differ by infinity.
    same = (want == got) | (np.isnan(want) & np.isnan(got))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(same, 0.0, np.abs(got - want))
    diff = np.where(np.isnan(diff), np.inf, diff)
    magnitude = np.where(np.isfinite(want), np.abs(want), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(diff == 0, 0.0, diff / np.maximum(magnitude, np.finfo(np.float64).tiny))
    allowed = tolerance.atol + tolerance.rtol * magnitude
    bad = diff > allowed
    # The worst element is the one furthest outside its allowance, not the largest diff.
    excess = diff / np.maximum(allowed, np.finfo(np.float64).tiny)
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
    return {
        **result,
        "passed": not bool(bad.any()),
        "elements": int(expected.size),
        "mismatched": int(bad.sum()),
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float(relative.max()),
        "worst": {
            "index": [int(i) for i in worst],
            "expected": _json_number(want[worst]),
            "actual": _json_number(got[worst]),
            "abs_diff": _json_number(diff[worst]),
        },
    }


def _json_number(value: Any) -> float | str:
    number = float(value)
    return number if np.isfinite(number) else str(number)


def run_gate(
    expected: Predict,
    actual: Predict,
    signature: Signature,
    cases: Sequence[GateCase],
    tolerances: Mapping[str, Tolerance],
    *,
    expected_label: str,
    actual_label: str,
) -> dict[str, Any]:
    """Run both models on every case; a JSON-ready report with `passed` at its top."""
    case_reports = []
    failures: list[str] = []
    worst: dict[str, Any] | None = None
    max_abs = 0.0
    max_rel = 0.0
    for case in cases:
        label = f"batch {case.batch_size} ({case.source})"
        report: dict[str, Any] = {
            "batch_size": case.batch_size,
            "inputs": case.source,
            "outputs": {},
        }
        try:
            want = expected(case.inputs)
        except Exception as exc:
            raise ExportFailed(
                f"the {expected_label} model failed on {label}: {summarise_error(exc)}"
            ) from exc
        try:
            got = actual(case.inputs)
        except Exception as exc:  # noqa: BLE001 - any runtime error is a failed case
            message = summarise_error(exc)
            report.update(passed=False, error=message)
            failures.append(f"{label}: the {actual_label} model raised: {message}")
            case_reports.append(report)
            continue
        passed = True
        for spec in signature.outputs:
            if spec.name not in got:
                outcome: dict[str, Any] = {"passed": False, "error": "output missing"}
            else:
                tolerance = for_dtype(tolerances, spec.dtype)
                outcome = compare(
                    np.asarray(want[spec.name]), np.asarray(got[spec.name]), tolerance
                )
            report["outputs"][spec.name] = outcome
            passed = passed and outcome["passed"]
            if "max_abs_diff" in outcome:
                max_abs = max(max_abs, outcome["max_abs_diff"])
                max_rel = max(max_rel, outcome["max_rel_diff"])
                if worst is None or outcome["max_abs_diff"] > worst["abs_diff"]:
                    worst = {
                        "case": label,
                        "output": spec.name,
                        **outcome["worst"],
                        "abs_diff": outcome["max_abs_diff"],
                    }
            if not outcome["passed"]:
                failures.append(_describe_failure(label, spec.name, outcome))
        report["passed"] = passed
        case_reports.append(report)
    return {
        "passed": not failures,
        "expected": expected_label,
        "actual": actual_label,
        "batch_sizes": sorted({c.batch_size for c in cases}),
        "inputs": sorted({c.source for c in cases}),
        "tolerances": {dtype: {"rtol": t.rtol, "atol": t.atol} for dtype, t in tolerances.items()},
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "worst": worst,
        "failures": failures[:_MAX_FAILURES_REPORTED],
        "failure_count": len(failures),
        "cases": case_reports,
    }


def _describe_failure(label: str, output: str, outcome: Mapping[str, Any]) -> str:
    if "error" in outcome:
        return f"{label}: output {output!r}: {outcome['error']}"
    worst = outcome["worst"]
    return (
        f"{label}: output {output!r}: {outcome['mismatched']} of {outcome['elements']} "
        f"elements outside rtol={outcome['rtol']:g}, atol={outcome['atol']:g}; worst at "
        f"{worst['index']}: expected {worst['expected']}, got {worst['actual']}"
    )
