"""TorchScript: `torch.jit.load`, on CUDA when one is present (device "auto")."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exporters.runners import load_torchscript
from registry.signature import flatten_outputs
from services.runtimes.base import Prediction, Runtime, RuntimeSettings, Tensors

__all__ = ["TorchScriptRuntime"]

MODEL_FILE = "model.pt"


class TorchScriptRuntime(Runtime):
    kind = "torchscript"

    def __init__(
        self,
        folder: Path,
        settings: RuntimeSettings,
        *,
        input_names: list[str],
        output_names: list[str],
    ) -> None:
        super().__init__(settings)
        self.folder = folder
        self._input_names = input_names
        self._output_names = output_names
        self._module: torch.jit.ScriptModule | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._device = torch.device("cpu")

    async def load(self) -> None:
        device = self.settings.device
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device {device!r}: expected auto, cpu or cuda")
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but torch sees no GPU")
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        self._device = torch.device("cuda:0" if use_cuda else "cpu")
        module = await asyncio.to_thread(load_torchscript, self.folder / MODEL_FILE)
        self._module = module.to(self._device)
        self._pool = ThreadPoolExecutor(self.settings.max_inflight, thread_name_prefix="mlgate-ts")

    async def predict(self, inputs: Tensors) -> Prediction:
        if self._module is None or self._pool is None:
            raise RuntimeError("the TorchScript module is not loaded")
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, inputs)

    def run_inline(self, inputs: Tensors) -> Prediction:
        if self._module is None:
            raise RuntimeError("the TorchScript module is not loaded")
        return self._run(inputs)

    def _run(self, inputs: Tensors) -> Prediction:
        assert self._module is not None
        started = time.perf_counter()
        args = [
            torch.from_numpy(np.ascontiguousarray(inputs[n])).to(self._device)
            for n in self._input_names
        ]
        with torch.inference_mode():
            outputs = self._module(*args)
        if isinstance(outputs, torch.Tensor):
            outputs = outputs.cpu()
        elif isinstance(outputs, tuple | list):
            outputs = type(outputs)(o.cpu() for o in outputs)
        elif isinstance(outputs, dict):
            outputs = {k: v.cpu() for k, v in outputs.items()}
        named = flatten_outputs(outputs, self._output_names)
        return Prediction(named, time.perf_counter() - started)

    async def unload(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pool = None
        self._module = None
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    def info(self) -> dict[str, Any]:
        return {
            "runtime": "torchscript",
            "runtime_version": torch.__version__,
            "device": str(self._device),
            "intra_op_threads": torch.get_num_threads(),
            "max_inflight": self.settings.max_inflight,
        }
