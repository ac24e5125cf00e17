"""Open Inference Protocol v2 bodies ⇄ named numpy arrays, including Triton's binary extension.

A request body is a JSON object, or — when the `Inference-Header-Content-Length` header is
present — that many bytes of JSON followed by the raw tensors of every input whose
`parameters.binary_data_size` is set, in input order. A response puts an output in binary
when the request asks (`outputs[i].parameters.binary_data`, or `binary_data_output` for
all) and then sets the same header. This is what `tritonclient.http` sends and reads.

Parsing only checks the body's own consistency (shape × datatype = data); whether the
tensors suit the model is `validation.py`'s job.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from services.gateway.calls import InferRequest
from services.gateway.errors import InvalidTensor

__all__ = [
    "DATATYPES",
    "HEADER_LENGTH",
    "InferRequest",
    "decode_request",
    "encode_response",
    "holds_boolean",
    "may_hold_booleans",
    "oip_datatype",
    "oip_datatype_of",
]

HEADER_LENGTH = "inference-header-content-length"

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_BY_NUMPY = {dtype.name: name for name, dtype in DATATYPES.items()}
_FLOAT_LIMITS = {size: float(np.finfo(f"f{size}").max) for size in (2, 4, 8)}


# NOTE: `dtype.name` is a Python-level property in numpy (1.6 µs): answers look the
# datatype up by the dtype itself.
_BY_DTYPE: dict[np.dtype[Any], str] = {dtype: name for name, dtype in DATATYPES.items()}


def oip_datatype(numpy_name: str) -> str:
    """`float32` → `FP32`."""
    return _BY_NUMPY.get(numpy_name, numpy_name.upper())


def oip_datatype_of(dtype: np.dtype[Any]) -> str:
    """`np.dtype("float32")` → `FP32`."""
    found = _BY_DTYPE.get(dtype)
    if found is None:  # another byte order, or no OIP name: rare, remembered
        found = _BY_DTYPE[dtype] = oip_datatype(dtype.name)
    return found


def decode_request(body: bytes, header_length: str | None) -> InferRequest:
    if header_length is not None:
        try:
            split = int(header_length)
        except ValueError:
            raise InvalidTensor(
                f"Inference-Header-Content-Length {header_length!r} is not an integer"
            ) from None
        if not 0 < split <= len(body):
            raise InvalidTensor(
                f"Inference-Header-Content-Length {split} does not fit a body of {len(body)} bytes"
            )
        header, binary = body[:split], memoryview(body)[split:]
    else:
        header, binary = body, memoryview(b"")
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise InvalidTensor(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidTensor("the request body must be a JSON object with an 'inputs' list")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidTensor("the request needs a non-empty 'inputs' list")
    parameters = _object(document.get("parameters"), "request 'parameters'")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidTensor(f"request 'id' must be a string, got {type(request_id).__name__}")
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    booleans = may_hold_booleans(header)
    for index, raw in enumerate(raw_inputs):
        name, datatype, array, used = _decode_input(index, raw, binary, offset, booleans)
        if name in inputs:
            raise InvalidTensor(f"input {name!r} is given twice")
        inputs[name], datatypes[name] = array, datatype
        offset += used
    if offset != len(binary):
        raise InvalidTensor(
            f"the body has {len(binary) - offset} bytes of binary data no input claims "
            "(check each input's binary_data_size)"
        )
    return InferRequest(
        inputs=inputs,
        datatypes=datatypes,
        id=request_id,
        parameters=parameters,
        outputs=_requested_outputs(document.get("outputs")),
        binary_by_default=bool(parameters.get("binary_data_output", False)),
    )


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidTensor(f"{what} must be a JSON object")
    return value


def _decode_input(
    index: int, raw: Any, binary: memoryview, offset: int, booleans: bool = True
) -> tuple[str, str, np.ndarray, int]:
    if not isinstance(raw, dict):
        raise InvalidTensor(f"inputs[{index}] must be an object with name, shape, datatype, data")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidTensor(f"inputs[{index}] has no 'name'")
    datatype = raw.get("datatype")
    if datatype not in DATATYPES:
        raise InvalidTensor(
            f"input {name!r}: datatype {datatype!r} is not supported; expected one of "
            f"{', '.join(DATATYPES)}"
        )
    shape = raw.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise InvalidTensor(
            f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}"
        )
    dtype = DATATYPES[datatype]
    count = math.prod(shape)
    parameters = _object(raw.get("parameters"), f"input {name!r} parameters")
    size = parameters.get("binary_data_size")
    if size is not None:
        if "data" in raw:
            raise InvalidTensor(f"input {name!r} has both 'data' and binary_data_size")
        if not isinstance(size, int) or size != count * dtype.itemsize:
            raise InvalidTensor(
                f"input {name!r}: binary_data_size {size!r} does not match shape {shape} × "
                f"{datatype} ({count * dtype.itemsize} bytes)"
            )
        if offset + size > len(binary):
            raise InvalidTensor(
                f"input {name!r}: binary_data_size {size} runs past the end of the body"
            )
        array = np.frombuffer(binary[offset : offset + size], dtype=dtype).reshape(shape)
        return name, datatype, array, size
    if "data" not in raw:
        raise InvalidTensor(f"input {name!r} has neither 'data' nor binary_data_size")
    array = _from_json(name, datatype, dtype, raw["data"], shape, count, booleans)
    return name, datatype, array, 0


def _from_json(
    name: str,
    datatype: str,
    dtype: np.dtype[Any],
    data: Any,
    shape: list[int],
    count: int,
    booleans: bool = True,
) -> np.ndarray:
    try:
        loose = np.asarray(data)
    except ValueError:
        raise InvalidTensor(f"input {name!r}: 'data' is ragged; expected {shape} values") from None
    if loose.size != count:
        raise InvalidTensor(
            f"input {name!r}: 'data' holds {loose.size} values but shape {shape} needs {count}"
        )
    kind = loose.dtype.kind
    if count and datatype == "BOOL" and kind != "b":
        raise InvalidTensor(f"input {name!r}: BOOL data must be true/false values")
    if count and datatype != "BOOL" and kind not in "iuf":
        got = "true/false" if kind == "b" else f"{loose.dtype.name}"
        raise InvalidTensor(f"input {name!r}: {datatype} data must be numbers, got {got} values")
    if count and datatype != "BOOL" and booleans and holds_boolean(data):
        raise InvalidTensor(f"input {name!r}: {datatype} data must be numbers, not true/false")
    if count and dtype.kind in "iu":
        whole = kind != "f" or (
            np.all(np.isfinite(loose)) and np.array_equal(loose, np.round(loose))
        )
        if not whole:
            raise InvalidTensor(f"input {name!r}: {datatype} data must be whole numbers")
        info = np.iinfo(dtype)
        if loose.min() < info.min or loose.max() > info.max:
            raise InvalidTensor(f"input {name!r}: values outside the {datatype} range")
    if count and dtype.kind == "f" and kind in "iuf":
        # A finite number too large for the type (1e39 as FP32) would become inf in the cast.
        limit = _FLOAT_LIMITS[dtype.itemsize]
        # NOTE: one reduction for the common case (every value finite and in range); only a
        # NaN, an infinity or a value out of range takes the exact check below.
        if not np.abs(loose).max() <= limit:
            finite = loose[np.isfinite(loose)] if kind == "f" else loose
            if finite.size and np.abs(finite).max() > limit:
                raise InvalidTensor(
                    f"input {name!r}: values outside the {datatype} range (±{limit:.4g})"
                )
    return loose.astype(dtype).reshape(shape)


def may_hold_booleans(body: bytes) -> bool:
    """Whether a JSON body has a true or false anywhere: numpy reads [true, 0.5] as
    [1.0, 0.5], so the data of such a body is searched (`holds_boolean`); every other body
    pays one byte search."""
    return b"true" in body or b"false" in body


def holds_boolean(data: Any) -> bool:
    """Whether JSON `data` (a number, or lists of them nested) holds a true or false."""
    pending = [data]
    while pending:
        item = pending.pop()
        if type(item) is bool:
            return True
        if type(item) is list:
            pending.extend(v for v in item if type(v) is list or type(v) is bool)
    return False


def _requested_outputs(raw: Any) -> dict[str, bool] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidTensor("'outputs' must be a list of {name, parameters}")
    requested: dict[str, bool] = {}
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InvalidTensor(f"outputs[{index}] must be an object with a 'name'")
        parameters = _object(entry.get("parameters"), f"output {entry['name']!r} parameters")
        requested[entry["name"]] = bool(parameters.get("binary_data", False))
    return requested


def encode_response(
    model_name: str,
    model_version: int,
    outputs: dict[str, np.ndarray],
    binary: dict[str, bool],
    request_id: str | None,
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers (Inference-Header-Content-Length when binary)."""
    entries = []
    blobs = []
    for name, array in outputs.items():
        entry: dict[str, Any] = {
            "name": name,
            "datatype": oip_datatype_of(array.dtype),
            "shape": list(array.shape),
        }
        if binary.get(name):
            blob = np.ascontiguousarray(array).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            flat = array.reshape(-1)
            # orjson writes numpy arrays natively, but not float16; NaN becomes null.
            entry["data"] = flat.astype(np.float32) if flat.dtype == np.float16 else flat
        entries.append(entry)
    document: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if request_id is not None:
        document["id"] = request_id
    document["outputs"] = entries
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {"content-type": "application/json"}
    return b"".join([header, *blobs]), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(header)),
    }
