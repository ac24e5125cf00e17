"""The peer Triton server: PyTriton 0.7 (Triton 2.51), onnxruntime in its Python backend.

Run with the PyTriton environment's interpreter (load_tests/peers/locks/pytriton.txt):

    python pytriton_server.py HTTP GRPC METRICS WORKSPACE MODEL.onnx[=NAME[:VERSION]]...

The wheel's tritonserver has only the Python backend, so the ONNX model runs in
onnxruntime inside the bound callable (one thread, like every peer in the benchmark).
Dynamic batching up to MLGATE_PEER_MAX_BATCH rows with Triton's default queue delay of 0:
when the model instance frees, it takes whatever is queued. All three addresses are
loopback; the workspace folder is the caller's to delete. Each model is bound as NAME
(default "model") version VERSION (default 1), with every input and output of its ONNX
graph; the gateway's Triton runtime tests use it as their Triton server.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64}


def _tensors(args: list[ort.NodeArg]) -> list[Tensor]:
    """Per-row shapes (the batch dimension is Triton's, from max_batch_size)."""
    return [
        Tensor(
            name=a.name,
            dtype=_DTYPES[a.type],
            shape=tuple(d if isinstance(d, int) else -1 for d in a.shape[1:]),
        )
        for a in args
    ]


def _bind(triton: Triton, path: str, name: str, version: int) -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]

    @batch  # type: ignore[untyped-decorator]
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(outputs, session.run(outputs, inputs), strict=True))

    triton.bind(
        model_name=name,
        model_version=version,
        infer_func=infer,
        inputs=_tensors(session.get_inputs()),
        outputs=_tensors(session.get_outputs()),
        config=ModelConfig(
            max_batch_size=int(os.environ.get("MLGATE_PEER_MAX_BATCH", "64")),
            batcher=DynamicBatcher(max_queue_delay_microseconds=0),
        ),
        strict=True,
    )


def main(http: int, grpc: int, metrics: int, workspace: str, models: list[str]) -> None:
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=http,
        grpc_address="127.0.0.1",
        grpc_port=grpc,
        metrics_address="127.0.0.1",
        metrics_port=metrics,
        allow_gpu_metrics=False,
    )
    with Triton(config=config, workspace=workspace) as triton:
        for spec in models:
            path, _, named = spec.partition("=")
            name, _, version = named.partition(":")
            _bind(triton, path, name or "model", int(version or 1))
        triton.serve()


if __name__ == "__main__":
    http, grpc, metrics, workspace = sys.argv[1:5]
    main(int(http), int(grpc), int(metrics), workspace, sys.argv[5:])
