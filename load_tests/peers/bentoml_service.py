"""The peer BentoML 1.4 service: onnxruntime behind a batchable API, as its docs show.

Run by `bentoml serve load_tests.peers.bentoml_service:OnnxModel` inside the BentoML
environment (load_tests/peers/locks/bentoml.txt). BentoML reads the batching parameters from
the decorator when this file is imported, so they come from the environment:

    MLGATE_PEER_MODEL        path to the ONNX file (the same file mlgate serves)
    MLGATE_PEER_INPUT        the model's input name
    MLGATE_PEER_MAX_BATCH    max_batch_size (mlgate's MLGATE_MAX_BATCH_SIZE)
    MLGATE_PEER_LATENCY_MS   max_latency_ms (mlgate's SLO, MLGATE_SLO_MS)

One worker process and one onnxruntime thread: the benchmark gives every server the same
single core. Its per-request access log is off, as the other servers keep none.
Requests are `{"x": [[...row...]]}` at POST /predict.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class OnnxModel:
    def __init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.environ["MLGATE_PEER_MODEL"], options, providers=["CPUExecutionProvider"]
        )
        self.input = os.environ["MLGATE_PEER_INPUT"]

    @bentoml.api(  # type: ignore[untyped-decorator]
        batchable=True,
        max_batch_size=int(os.environ.get("MLGATE_PEER_MAX_BATCH", "64")),
        max_latency_ms=int(os.environ.get("MLGATE_PEER_LATENCY_MS", "250")),
    )
    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: x.astype(np.float32, copy=False)})[0]
