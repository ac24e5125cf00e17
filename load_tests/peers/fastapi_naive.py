"""The naive peer: a FastAPI endpoint that calls onnxruntime once per request.

What a user writes on a first day: a pydantic model for the Open Inference Protocol body,
a plain `def` route (FastAPI runs it in its thread pool), no batching. One onnxruntime
thread, like every peer in the benchmark. Run with

    uvicorn --factory load_tests.peers.fastapi_naive:create_app

with MLGATE_PEER_MODEL (the ONNX file) in the environment.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel


class InferInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferRequest(BaseModel):
    inputs: list[InferInput]


def create_app() -> FastAPI:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        os.environ["MLGATE_PEER_MODEL"], options, providers=["CPUExecutionProvider"]
    )
    output = session.get_outputs()[0].name
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v2/models/{model}/infer")
    def infer(model: str, request: InferRequest) -> dict[str, Any]:
        tensor = request.inputs[0]
        x = np.asarray(tensor.data, dtype=np.float32).reshape(tensor.shape)
        y = session.run(None, {tensor.name: x})[0]
        return {
            "model_name": model,
            "outputs": [
                {
                    "name": output,
                    "shape": list(y.shape),
                    "datatype": "FP32",
                    "data": y.ravel().tolist(),
                }
            ],
        }

    return app
