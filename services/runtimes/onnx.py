"""onnxruntime: CPU by default; the CUDA execution provider with IOBinding on a GPU.

`device="auto"` uses CUDA only when this onnxruntime build has the CUDA provider (the
`onnxruntime-gpu` package) and a GPU answers; the chosen providers are reported in the
model's metadata. With IOBinding, inputs are copied to the device once and outputs are
allocated there, instead of onnxruntime copying both ways on every run.

One session serves every in-flight batch: `InferenceSession.run` is thread-safe, and each
batch runs on a worker thread of this runtime's own pool (onnxruntime releases the GIL).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from services.runtimes.base import Prediction, Runtime, RuntimeSettings, Tensors

__all__ = ["OnnxRuntime", "cuda_available"]

MODEL_FILE = "model.onnx"
_OPTIMIZATION = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def cuda_available() -> bool:
    """True when this build has the CUDA provider and a CUDA device is present."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a dependency
        return False


class OnnxRuntime(Runtime):
    kind = "onnx"

    def __init__(self, folder: Path, settings: RuntimeSettings) -> None:
        super().__init__(settings)
        self.folder = folder
        self._session: ort.InferenceSession | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._use_cuda = False
        self._output_names: list[str] = []

    async def load(self) -> None:
        settings = self.settings
        if settings.graph_optimization not in _OPTIMIZATION:
            raise ValueError(
                f"graph_optimization {settings.graph_optimization!r}: expected one of "
                f"{', '.join(_OPTIMIZATION)}"
            )
        if settings.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device {settings.device!r}: expected auto, cpu or cuda")
        self._use_cuda = settings.device == "cuda" or (
            settings.device == "auto" and cuda_available()
        )
        if settings.device == "cuda" and not cuda_available():
            raise RuntimeError("device 'cuda' requested but no CUDA provider or GPU is available")
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = settings.inter_op_threads
        options.graph_optimization_level = _OPTIMIZATION[settings.graph_optimization]
        # Spinning threads burn the cores the event loop and the other batches need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        providers: list[Any] = ["CPUExecutionProvider"]
        if self._use_cuda:
            providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
        path = str(self.folder / MODEL_FILE)
        session = await asyncio.to_thread(ort.InferenceSession, path, options, providers=providers)
        self._output_names = [o.name for o in session.get_outputs()]
        self._session = session
        self._pool = ThreadPoolExecutor(settings.max_inflight, thread_name_prefix="mlgate-ort")

    async def predict(self, inputs: Tensors) -> Prediction:
        if self._session is None or self._pool is None:
            raise RuntimeError("the onnxruntime session is not loaded")
        loop = asyncio.get_running_loop()
        run = self._run_bound if self._use_cuda else self._run
        return await loop.run_in_executor(self._pool, run, inputs)

    def run_inline(self, inputs: Tensors) -> Prediction:
        if self._session is None:
            raise RuntimeError("the onnxruntime session is not loaded")
        return self._run_bound(inputs) if self._use_cuda else self._run(inputs)

    def _run(self, inputs: Tensors) -> Prediction:
        assert self._session is not None
        started = time.perf_counter()
        results = self._session.run(self._output_names, inputs)
        elapsed = time.perf_counter() - started
        return Prediction(dict(zip(self._output_names, results, strict=True)), elapsed)

    def _run_bound(self, inputs: Tensors) -> Prediction:
        assert self._session is not None
        started = time.perf_counter()
        binding = self._session.io_binding()
        for name, array in inputs.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        for name in self._output_names:
            binding.bind_output(name, "cuda", 0)
        self._session.run_with_iobinding(binding)
        outputs = dict(zip(self._output_names, binding.copy_outputs_to_cpu(), strict=True))
        return Prediction(outputs, time.perf_counter() - started)

    async def unload(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pool = None
        self._session = None

    def info(self) -> dict[str, Any]:
        providers = self._session.get_providers() if self._session is not None else []
        return {
            "runtime": "onnxruntime",
            "runtime_version": ort.__version__,
            "device": "cuda:0" if self._use_cuda else "cpu",
            "providers": providers,
            "io_binding": self._use_cuda,
            "intra_op_threads": self.settings.intra_op_threads,
            "graph_optimization": self.settings.graph_optimization,
            "max_inflight": self.settings.max_inflight,
        }
