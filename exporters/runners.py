"""Run an exported artifact on named numpy inputs: onnxruntime, or torch.jit for TorchScript.

These are the gate's runners (CPU, one intra-op thread, so results are deterministic and
exports do not fight over the cores). The serving runtimes live in `services/runtimes/`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from registry.signature import Predict, flatten_outputs

__all__ = ["load_torchscript", "onnx_predictor", "torchscript_predictor"]


def onnx_predictor(path: Path, output_names: Sequence[str] | None = None) -> Predict:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: the gate reports failures itself
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = list(output_names) if output_names else [o.name for o in session.get_outputs()]
    input_names = [i.name for i in session.get_inputs()]

    def predict(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(inputs[name]) for name in input_names}
        return dict(zip(names, session.run(names, feed), strict=True))

    return predict


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """`torch.jit.load`, with its deprecation warning silenced on purpose (see capture.py)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"`torch\.jit\.")
        module = torch.jit.load(str(path), map_location="cpu")
    return module.eval()


def torchscript_predictor(
    path: Path, input_names: Sequence[str], output_names: Sequence[str]
) -> Predict:
    module = load_torchscript(path)

    def predict(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(inputs[name])) for name in input_names]
        with torch.inference_mode():
            return flatten_outputs(module(*args), output_names)

    return predict
