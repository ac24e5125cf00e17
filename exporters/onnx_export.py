"""torch → ONNX with the torch.export-based exporter and a dynamic batch dimension.

`torch.onnx.export(..., dynamo=True)` (the default since torch 2.9) with
`dynamic_shapes={input: {0: Dim("batch")}}` writes `model.onnx` plus `model.onnx.data`
(external weights); both are one artifact. If that exporter cannot capture the model
(data-dependent control flow, say), the legacy TorchScript-based exporter is tried and
the record says so and why: its graph is a trace, and the parity gate decides whether the
trace is faithful. The file then passes `onnx.checker.check_model(full_check=True)`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from exporters.capture import captured, summarise_error
from registry.errors import ExportFailed
from registry.signature import Signature

__all__ = ["ONNX_FILE", "check_onnx", "export_onnx"]

ONNX_FILE = "model.onnx"
LEGACY_OPSET = 18


def export_onnx(
    model: torch.nn.Module,
    examples: Mapping[str, np.ndarray],
    signature: Signature,
    folder: Path,
) -> dict[str, Any]:
    """Write the ONNX artifact into `folder`; returns what to record about the export."""
    kwargs = _export_inputs(examples)
    path = folder / ONNX_FILE
    started = time.perf_counter()
    details: dict[str, Any] = {"exporter": "torch.export", "torch": torch.__version__}
    with captured() as log:
        try:
            torch.onnx.export(
                model,
                args=(),
                kwargs=kwargs,
                f=str(path),
                input_names=signature.input_names,
                output_names=signature.output_names,
                dynamic_shapes={name: {0: torch.export.Dim("batch")} for name in kwargs},
                dynamo=True,
                external_data=True,
                verbose=False,
            )
        except Exception as exc:  # noqa: BLE001 - any capture failure sends us to the fallback
            details["fallback_reason"] = summarise_error(exc)
            _clear(folder)
    if "fallback_reason" in details:
        details["exporter"] = (
            "legacy (torch.jit trace), after the torch.export-based exporter failed"
        )
        with captured() as legacy_log:
            try:
                torch.onnx.export(
                    model,
                    args=tuple(kwargs.values()),
                    f=str(path),
                    input_names=signature.input_names,
                    output_names=signature.output_names,
                    dynamic_axes={
                        name: {0: "batch"} for name in [*kwargs, *signature.output_names]
                    },
                    opset_version=LEGACY_OPSET,
                    dynamo=False,
                )
            except Exception as exc:
                raise ExportFailed(
                    f"ONNX export failed with both exporters. torch.export: "
                    f"{details['fallback_reason']} | legacy: {summarise_error(exc)}"
                ) from exc
        details["legacy_log"] = legacy_log.to_json()
    details["log"] = log.to_json()
    details["export_seconds"] = round(time.perf_counter() - started, 3)
    details.update(check_onnx(path))
    return details


def check_onnx(path: Path) -> dict[str, Any]:
    """Run the full ONNX checker (with shape inference); returns opset and IR version."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        return {"checker": "failed", "checker_error": summarise_error(exc)}
    model = onnx.load(str(path), load_external_data=False)
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    return {
        "checker": "passed (full_check)",
        "opset": opsets.get("ai.onnx"),
        "opsets": opsets,
        "ir_version": model.ir_version,
    }


def _export_inputs(examples: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Example tensors; a single-row example is doubled so export does not fix batch = 1."""
    tensors = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in examples.items()}
    if next(iter(tensors.values())).shape[0] == 1:
        tensors = {name: torch.cat([t, t]) for name, t in tensors.items()}
    return tensors


def _clear(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            path.unlink()
