"""Export a registered version to ONNX or TorchScript, through the parity gate.

    from exporters import export
    result = export(registry, "credit-risk:3", "onnx")
    result.passed, result.report["max_abs_diff"]

The artifact is stored either way, with its status ("passed" or "failed") and the gate's
report; only a passed artifact can ever be served or promoted. A version that was
imported as an ONNX or TorchScript file has no eager model: its own format is gated by
batch consistency instead (each row alone must give what it gives inside a batch).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
import torch

from exporters.onnx_export import ONNX_FILE, check_onnx, export_onnx
from exporters.parity import gate_cases, run_gate
from exporters.runners import onnx_predictor, torchscript_predictor
from exporters.tolerances import Tolerance, tolerances
from exporters.torchscript_export import TORCHSCRIPT_FILE, TorchScriptMethod, export_torchscript
from registry.errors import ExportFailed, InvalidModelInput
from registry.names import ModelRef
from registry.pytorch_source import (
    EXAMPLE_FILE,
    WEIGHTS_FILE,
    load_examples,
    load_state_dict,
    rebuild_model,
    torch_predictor,
)
from registry.records import ArtifactInfo, ModelVersion
from registry.reference import read_reference
from registry.signature import Predict, Signature
from registry.store import Registry

__all__ = ["FORMATS", "ExportResult", "export"]

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[Format, ...] = ("onnx", "torchscript")
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ExportResult:
    version: ModelVersion
    artifact: ArtifactInfo

    @property
    def passed(self) -> bool:
        return self.artifact.status == "passed"

    @property
    def report(self) -> dict[str, Any]:
        return self.artifact.parity or {}


def export(
    registry: Registry,
    ref: str | ModelRef,
    fmt: str,
    *,
    model: torch.nn.Module | None = None,
    tolerance: Mapping[str, Tolerance] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    method: TorchScriptMethod = "auto",
    seed: int = 0,
    progress: Progress | None = None,
) -> ExportResult:
    """Export `ref` to `fmt` ("onnx" or "torchscript"), gate it, and store the artifact.

    `model` is the live eager model, for versions whose factory cannot rebuild it; its
    weights must equal the registered ones. `tolerance` overrides per dtype, `rtol` and
    `atol` override every float dtype.
    """
    if fmt not in FORMATS:
        raise InvalidModelInput(f"export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    step = progress or (lambda _stage: None)
    version = registry.get(ref)
    table = tolerances(tolerance, rtol=rtol, atol=atol)
    step("load")
    source = version.artifact("source")
    if source is None:
        raise ExportFailed(f"{version.ref} has no source artifact to export from")
    source_folder = registry.open_artifact(source)
    examples = load_examples(source_folder)
    reference = _reference_inputs(registry, version)
    cases = gate_cases(version.signature, examples, reference, seed=seed)

    with registry.stage() as folder:
        if version.source_format == "pytorch":
            eager = _eager_model(version, source_folder / WEIGHTS_FILE, model)
            expected = torch_predictor(
                eager, version.signature.input_names, version.signature.output_names
            )
            step("export")
            if fmt == "onnx":
                details = export_onnx(eager, examples, version.signature, folder)
            else:
                details = export_torchscript(eager, examples, folder, method)
            expected_label = f"eager torch {torch.__version__}"
        elif version.source_format == fmt:
            step("export")
            details = _copy_imported(source_folder, folder, fmt)
            expected = None
            expected_label = "the same artifact, one row at a time"
        else:
            raise ExportFailed(
                f"{version.ref} was imported as a {version.source_format} file and has no eager "
                f"PyTorch model to export to {fmt} from; register the PyTorch model instead"
            )
        step("parity")
        report = _gate(
            folder, fmt, version.signature, details, expected, cases, table, expected_label
        )
        step("store")
        status = "passed" if report["passed"] else "failed"
        staged = registry.commit_artifact(
            folder, fmt, status=status, details=details, parity=report
        )
    artifact = registry.add_artifact(version.ref, staged)
    return ExportResult(registry.get(version.ref), artifact)


def _gate(
    folder: Any,
    fmt: str,
    signature: Signature,
    details: Mapping[str, Any],
    expected: Predict | None,
    cases: Any,
    table: Mapping[str, Tolerance],
    expected_label: str,
) -> dict[str, Any]:
    if details.get("checker") == "failed":
        return {
            "passed": False,
            "failures": [f"onnx.checker: {details.get('checker_error')}"],
            "failure_count": 1,
            "cases": [],
            "batch_sizes": [],
            "max_abs_diff": None,
            "max_rel_diff": None,
            "worst": None,
        }
    if fmt == "onnx":
        actual = onnx_predictor(folder / ONNX_FILE, signature.output_names)
        actual_label = f"onnxruntime {ort.__version__} (CPUExecutionProvider)"
    else:
        actual = torchscript_predictor(
            folder / TORCHSCRIPT_FILE, signature.input_names, signature.output_names
        )
        actual_label = f"torch.jit {torch.__version__} (cpu)"
    if expected is None:
        expected = _row_by_row(actual)
    return run_gate(
        expected,
        actual,
        signature,
        cases,
        table,
        expected_label=expected_label,
        actual_label=actual_label,
    )


def _row_by_row(predict: Predict) -> Predict:
    def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = len(next(iter(inputs.values())))
        parts = [predict({n: a[i : i + 1] for n, a in inputs.items()}) for i in range(rows)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    return run


def _eager_model(
    version: ModelVersion, weights: Any, live: torch.nn.Module | None
) -> torch.nn.Module:
    state = load_state_dict(weights)
    if live is not None:
        live_state = live.state_dict()
        if set(live_state) != set(state) or any(
            not torch.equal(live_state[k].detach().cpu(), v) for k, v in state.items()
        ):
            raise InvalidModelInput(
                f"the model passed to export does not hold {version.ref}'s registered weights"
            )
        return live.eval()
    factory = version.lineage.get("factory") or {}
    if not factory.get("entrypoint"):
        raise ExportFailed(
            f"{version.ref} cannot be rebuilt for export: {factory.get('error') or 'no factory'}; "
            "export it from Python with export(..., model=the_trained_model), or register it "
            "with factory='module:function'"
        )
    return rebuild_model(factory["entrypoint"], factory.get("kwargs") or {}, state)


def _reference_inputs(registry: Registry, version: ModelVersion) -> dict[str, np.ndarray] | None:
    artifact = version.artifact("reference")
    if artifact is None:
        return None
    folder = registry.open_artifact(artifact)
    return read_reference(folder / "reference.parquet").inputs


def _copy_imported(source: Any, folder: Any, fmt: str) -> dict[str, Any]:
    for path in source.iterdir():
        if path.name != EXAMPLE_FILE:
            shutil.copyfile(path, folder / path.name)
    details: dict[str, Any] = {"exporter": f"imported {fmt} file", "torch": torch.__version__}
    if fmt == "onnx":
        details.update(check_onnx(folder / ONNX_FILE))
    return details
