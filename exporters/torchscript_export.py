"""torch → TorchScript by `torch.jit.script`, or `torch.jit.trace`, saved as `model.pt`.

`method="auto"` scripts first, because scripting keeps data-dependent control flow, and
traces only when scripting fails (the record says why). A trace records the ops one
example took: TracerWarnings raised while tracing are kept in the record, and the parity
gate runs the trace on other inputs to catch a lost branch.

TorchScript is deprecated since torch 2.5 (every `torch.jit.*` call warns). mlgate still
writes it because Triton's pytorch backend serves it; the warnings are expected and are
counted in the record rather than shown (see capture.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from exporters.capture import captured, summarise_error
from registry.errors import ExportFailed

__all__ = ["TORCHSCRIPT_FILE", "TorchScriptMethod", "export_torchscript"]

TORCHSCRIPT_FILE = "model.pt"
TorchScriptMethod = Literal["auto", "script", "trace"]


def export_torchscript(
    model: torch.nn.Module,
    examples: Mapping[str, np.ndarray],
    folder: Path,
    method: TorchScriptMethod = "auto",
) -> dict[str, Any]:
    if method not in ("auto", "script", "trace"):
        raise ExportFailed(f"TorchScript method {method!r}: expected auto, script or trace")
    args = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in examples.values())
    started = time.perf_counter()
    details: dict[str, Any] = {"torch": torch.__version__}
    with captured() as log:
        module, details["method"] = _convert(model, args, method, details)
        details["exporter"] = f"torch.jit.{details['method']}"
        torch.jit.save(module, str(folder / TORCHSCRIPT_FILE))
    details["log"] = log.to_json()
    details["tracer_warnings"] = [
        w["message"] for w in log.warnings if w["category"] == "TracerWarning"
    ]
    details["export_seconds"] = round(time.perf_counter() - started, 3)
    return details


def _convert(
    model: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    method: TorchScriptMethod,
    details: dict[str, Any],
) -> tuple[torch.jit.ScriptModule, str]:
    if method in ("auto", "script"):
        try:
            return torch.jit.script(model), "script"
        except Exception as exc:
            if method == "script":
                raise ExportFailed(f"torch.jit.script failed: {summarise_error(exc)}") from exc
            details["script_error"] = summarise_error(exc)
    try:
        with torch.inference_mode(False), torch.no_grad():
            traced = torch.jit.trace(model, args, check_trace=False)
    except Exception as exc:
        raise ExportFailed(f"torch.jit.trace failed: {summarise_error(exc)}") from exc
    return traced, "trace"
