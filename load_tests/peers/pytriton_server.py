"""The peer Triton server: PyTriton 0.7 (Triton 2.51), onnxruntime in its Python backend.

Run with the PyTriton environment's interpreter (load_tests/peers/pytriton.txt):

    python pytriton_server.py MODEL.onnx INPUT HTTP_PORT GRPC_PORT METRICS_PORT WORKSPACE

The wheel's tritonserver has only the Python backend, so the ONNX model runs in
onnxruntime inside the bound callable (one thread, like every peer in the benchmark).
Dynamic batching up to MLGATE_PEER_MAX_BATCH rows with Triton's default queue delay of 0:
when the model instance frees, it takes whatever is queued. All three addresses are
loopback; the workspace folder is the caller's to delete.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def main(model: str, input_name: str, http: int, grpc: int, metrics: int, workspace: str) -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    width = session.get_inputs()[0].shape[1]
    output = session.get_outputs()[0].name

    @batch  # type: ignore[untyped-decorator]
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {output: session.run(None, {input_name: inputs[input_name]})[0]}

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
        triton.bind(
            model_name="model",
            infer_func=infer,
            inputs=[Tensor(name=input_name, dtype=np.float32, shape=(width,))],
            outputs=[Tensor(name=output, dtype=np.float32, shape=(-1,))],
            config=ModelConfig(
                max_batch_size=int(os.environ.get("MLGATE_PEER_MAX_BATCH", "64")),
                batcher=DynamicBatcher(max_queue_delay_microseconds=0),
            ),
            strict=True,
        )
        triton.serve()


if __name__ == "__main__":
    model, input_name, http, grpc, metrics, workspace = sys.argv[1:7]
    main(model, input_name, int(http), int(grpc), int(metrics), workspace)
