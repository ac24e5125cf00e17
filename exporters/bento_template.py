"""The text of the `service.py` that `mlgate bento` writes (a string: package data would
need pyproject changes, and a string keeps the generated file in one place to read).

`exporters/bento.py` fills the `$names` (string.Template) with Python literals. BentoML
reads `@bentoml.api`'s batching arguments when it imports the file, so they are literals
here, not settings read at run time. Inputs are checked by a pydantic validator per
request, before BentoML's batcher joins requests, so one bad request never fails a batch.
"""

from __future__ import annotations

from string import Template

__all__ = ["BATCHABLE_API", "PLAIN_API", "SERVICE"]

SERVICE = Template('''"""BentoML service for $ref, written by `mlgate bento`.

It runs the version's ONNX artifact, the one that passed mlgate's parity gate, with
onnxruntime (artifact digest $digest).
POST /predict with a JSON body such as:

    $example

Each input is checked against the registry's signature (name, dtype, shape) before it is
batched; a bad one gets HTTP 400 naming the input, what was expected and what arrived.
$batching_note
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
from pydantic import AfterValidator

MODEL = Path(__file__).parent / "model" / "model.onnx"
# API parameter -> (ONNX input name, dtype, shape); -1 varies, dimension 0 is the batch.
INPUTS: dict[str, tuple[str, str, list[int]]] = $inputs
OUTPUTS: list[str] = $outputs
INTRA_OP_THREADS = $threads


def _checked(parameter: str) -> AfterValidator:
    """A validator: the value as an array of the signature's dtype and shape, or 400."""
    _, dtype, shape = INPUTS[parameter]
    want = np.dtype(dtype)
    expected = "[" + ", ".join(
        "batch" if i == 0 else ("any" if d == -1 else str(d)) for i, d in enumerate(shape)
    ) + "]"

    def check(value: Any) -> np.ndarray:
        array = np.asarray(value)
        fixed = zip(shape[1:], array.shape[1:])
        if array.ndim != len(shape) or any(d not in (-1, n) for d, n in fixed):
            raise ValueError(
                f"input {parameter!r}: expected shape {expected}, got {list(array.shape)}"
            )
        if array.shape[0] == 0:
            raise ValueError(f"input {parameter!r}: no rows")
        return _cast(parameter, array, want)

    return AfterValidator(check)


def _cast(parameter: str, array: np.ndarray, want: np.dtype[Any]) -> np.ndarray:
    kind = array.dtype.kind
    if want.kind == "f":
        fits = kind in "iuf"
    elif want.kind in "iu":
        fits = kind in "iu" or (kind == "f" and bool(np.all(np.mod(array, 1) == 0)))
    elif want.kind == "b":
        fits = kind == "b" or (kind in "iu" and bool(np.isin(array, (0, 1)).all()))
    else:
        fits = array.dtype == want
    if not fits:
        got = "text" if kind in "OSU" else array.dtype.name
        raise ValueError(f"input {parameter!r}: expected {want.name} values, got {got}")
    if kind == "f" and not bool(np.isfinite(array).all()):
        raise ValueError(f"input {parameter!r}: holds NaN or infinity")
    if want.kind in "iu" and kind in "iuf":
        info = np.iinfo(want)
        if array.min() < info.min or array.max() > info.max:
            raise ValueError(f"input {parameter!r}: values outside the range of {want.name}")
    return np.ascontiguousarray(array, dtype=want)


@bentoml.service(name=$service_name)
class $class_name:
    def __init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = INTRA_OP_THREADS
        available = ort.get_available_providers()
        providers = [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
        ]
        self.session = ort.InferenceSession(str(MODEL), options, providers=providers)

$api''')

BATCHABLE_API = Template('''    @bentoml.api(
        batchable=True, batch_dim=0, max_batch_size=$max_batch_size, max_latency_ms=$latency
    )
    def predict(
        self, $parameter: Annotated[np.ndarray, _checked($parameter_literal)]
    ) -> np.ndarray:
        """Rows in, rows out: BentoML joins concurrent requests into one batch."""
        return self.session.run(OUTPUTS, {$graph_input: $parameter})[0]
''')

PLAIN_API = Template('''    @bentoml.api
    def predict(
        self,
$parameters
    ) -> $returns:
        """One request, one run (BentoML batches only one-argument, one-result APIs)."""
        results = self.session.run(OUTPUTS, {$feed})
        return $result
''')
