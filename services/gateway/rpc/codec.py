"""Triton's gRPC messages (`inference.*`) ⇄ what the data plane takes and returns.

The gRPC transport speaks the protobuf messages that ship in `tritonclient.grpc`, so the
real Triton clients work unchanged; this module is the only place that knows their
fields. A request's tensors come either typed (`InferInputTensor.contents`, one repeated
field per datatype) or, as `tritonclient.grpc` sends them, as raw little-endian bytes in
`raw_input_contents` (one entry per input, in input order; all inputs or none). Outputs go
back in `raw_output_contents`, as Triton does. BYTES tensors are refused: every model
mlgate serves takes numbers.

Like `codec.py` for JSON, decoding checks only the message's own consistency (shape ×
datatype = data); whether the tensors suit the model is `validation.py`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from tritonclient.grpc import model_config_pb2 as config_pb2
from tritonclient.grpc import service_pb2 as pb2

from exporters.triton_config import fill_tensor
from registry.errors import BadRequest
from services.gateway.calls import InferRequest, InferResult
from services.gateway.codec import DATATYPES, oip_datatype_of
from services.gateway.errors import InvalidTensor
from services.gateway.served import PLATFORMS, Served

__all__ = [
    "CONTENTS",
    "config_response",
    "decode_infer",
    "encode_infer",
    "index_response",
    "load_parameters",
    "metadata_response",
    "server_metadata_response",
    "stats_response",
]

# The typed field each datatype travels in (Triton's rules: narrow integers widen to 32
# bits; FP16 has no typed field and must be sent raw).
CONTENTS: dict[str, str | None] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP16": None,
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


# ---------------------------------------------------------------- inference


def decode_infer(request: Any) -> InferRequest:
    """A `ModelInferRequest` → the data plane's `InferRequest`; InvalidTensor (400) if the
    message contradicts itself."""
    if not request.inputs:
        raise InvalidTensor("the request needs at least one input tensor")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidTensor(
            f"raw_input_contents has {len(raw)} entries but the request has "
            f"{len(request.inputs)} inputs; give every input's bytes, in input order"
        )
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for index, tensor in enumerate(request.inputs):
        name = tensor.name
        if not name:
            raise InvalidTensor(f"inputs[{index}] has no name")
        if name in inputs:
            raise InvalidTensor(f"input {name!r} is given twice")
        shape = _shape(name, tensor.shape)
        dtype = _dtype(name, tensor.datatype)
        if raw:
            if tensor.HasField("contents"):
                raise InvalidTensor(
                    f"input {name!r} has typed contents while the request uses "
                    "raw_input_contents; use one or the other for all inputs"
                )
            array = _from_raw(name, tensor.datatype, dtype, raw[index], shape)
        else:
            array = _from_contents(name, tensor.datatype, dtype, tensor.contents, shape)
        inputs[name], datatypes[name] = array, tensor.datatype
    return InferRequest(
        inputs=inputs,
        datatypes=datatypes,
        id=request.id or None,
        parameters=_parameters(request.parameters),
        outputs=_requested_outputs(request.outputs),
        binary_by_default=True,
    )


def _shape(name: str, dims: Iterable[int]) -> list[int]:
    shape = list(dims)
    if not shape or any(d < 0 for d in shape):
        raise InvalidTensor(
            f"input {name!r}: shape must be a non-empty list of non-negative integers, got {shape}"
        )
    return shape


def _dtype(name: str, datatype: str) -> np.dtype[Any]:
    dtype = DATATYPES.get(datatype)
    if dtype is not None:
        return dtype
    supported = ", ".join(DATATYPES)
    if datatype == "BYTES":
        raise InvalidTensor(
            f"input {name!r}: datatype BYTES is not supported (mlgate serves numeric "
            f"tensors); expected one of {supported}"
        )
    raise InvalidTensor(
        f"input {name!r}: datatype {datatype!r} is not supported; expected one of {supported}"
    )


def _from_raw(
    name: str, datatype: str, dtype: np.dtype[Any], blob: bytes, shape: list[int]
) -> np.ndarray:
    need = math.prod(shape) * dtype.itemsize
    if len(blob) != need:
        raise InvalidTensor(
            f"input {name!r}: raw_input_contents holds {len(blob)} bytes but shape {shape} × "
            f"{datatype} needs {need}"
        )
    return np.frombuffer(blob, dtype=dtype).reshape(shape)


def _from_contents(
    name: str, datatype: str, dtype: np.dtype[Any], contents: Any, shape: list[int]
) -> np.ndarray:
    field = CONTENTS[datatype]
    if field is None:
        raise InvalidTensor(
            f"input {name!r}: {datatype} has no typed contents field; send it in raw_input_contents"
        )
    others = sorted(f.name for f, _ in contents.ListFields() if f.name != field)
    if others:
        raise InvalidTensor(
            f"input {name!r}: {datatype} data goes in contents.{field}, got {others}"
        )
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise InvalidTensor(
            f"input {name!r}: contents.{field} holds {len(values)} values but shape {shape} "
            f"needs {count}"
        )
    wide = np.array(values, dtype=np.float64 if dtype.kind == "f" else None)
    if count and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if wide.min() < info.min or wide.max() > info.max:
            raise InvalidTensor(f"input {name!r}: values outside the {datatype} range")
    return wide.astype(dtype).reshape(shape)


def _parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters (a oneof each) → plain values, as a JSON body would carry them."""
    values = {}
    for key, parameter in parameters.items():
        kind = parameter.WhichOneof("parameter_choice")
        if kind == "bytes_param":  # only in a load request: Triton's model files
            raise BadRequest(f"load parameter {key!r}: file contents are not supported")
        values[key] = None if kind is None else getattr(parameter, kind)
    return values


def _requested_outputs(outputs: Any) -> dict[str, bool] | None:
    if not outputs:
        return None
    requested: dict[str, bool] = {}
    for output in outputs:
        if "classification" in output.parameters:
            raise InvalidTensor(
                f"output {output.name!r}: classification (class_count) is not supported; "
                "request the output itself"
            )
        requested[output.name] = True
    return requested


def encode_infer(result: InferResult) -> Any:
    """The data plane's answer → a `ModelInferResponse`, its outputs as raw bytes."""
    response = pb2.ModelInferResponse(
        model_name=result.model, model_version=str(result.version), id=result.request_id or ""
    )
    for name, array in result.outputs.items():
        response.outputs.add(
            name=name, datatype=oip_datatype_of(array.dtype), shape=list(array.shape)
        )
        response.raw_output_contents.append(np.ascontiguousarray(array).tobytes())
    return response


# ---------------------------------------------------------------- metadata, config, stats


def server_metadata_response(metadata: Mapping[str, Any]) -> Any:
    return pb2.ServerMetadataResponse(
        name=metadata["name"], version=metadata["version"], extensions=metadata["extensions"]
    )


def metadata_response(metadata: Mapping[str, Any]) -> Any:
    """The REST metadata document → `ModelMetadataResponse` (which has no parameters)."""
    tensor = pb2.ModelMetadataResponse.TensorMetadata
    return pb2.ModelMetadataResponse(
        name=metadata["name"],
        versions=metadata["versions"],
        platform=metadata["platform"],
        inputs=[tensor(**t) for t in metadata["inputs"]],
        outputs=[tensor(**t) for t in metadata["outputs"]],
    )


def config_response(served: Served) -> Any:
    """A Triton model config for a served version, from its signature and deployment.

    The batch dimension is implied (`max_batch_size` > 0), so `dims` leave it out; -1 is a
    dimension of any size. A tensor that is only a batch (shape [-1]) is written as Triton
    requires: `dims: [1]` reshaped to `[]`. Dynamic batching is on, with the version's
    queue delay.
    """
    deployment = served.deployment
    config = config_pb2.ModelConfig(
        name=served.name,
        platform=PLATFORMS[served.kind],
        max_batch_size=deployment.max_batch_size,
        version_policy=config_pb2.ModelVersionPolicy(
            specific=config_pb2.ModelVersionPolicy.Specific(versions=[served.version])
        ),
        dynamic_batching=config_pb2.ModelDynamicBatching(
            max_queue_delay_microseconds=round(deployment.max_queue_delay_ms * 1000)
        ),
    )
    for spec in served.signature.inputs:
        fill_tensor(config.input.add(), spec)
    for spec in served.signature.outputs:
        fill_tensor(config.output.add(), spec)
    for key, value in {
        "artifact": served.kind,
        "artifact_digest": served.artifact_digest,
        "slo_ms": deployment.slo_ms,
        "max_queue": deployment.max_queue,
        "max_inflight": deployment.max_inflight,
    }.items():
        config.parameters[key].string_value = str(value)
    return pb2.ModelConfigResponse(config=config)


def stats_response(document: Mapping[str, Any]) -> Any:
    """`{"model_stats": [...]}` (the data plane's) → `ModelStatisticsResponse`.

    Triton's fields as far as the batcher measures them: success counts the requests it
    answered (queue + compute time; the gateway's own time is in the request histogram),
    fail the ones it refused, queue and compute_infer the time spent in each.
    """
    response = pb2.ModelStatisticsResponse()
    for stats in document["model_stats"]:
        queue_ns = round(stats["queue_ms_total"] * 1e6)
        compute_ns = round(stats["compute_ms_total"] * 1e6)
        answered = stats["request_count"] - stats["cancelled"]
        entry = response.model_stats.add(
            name=stats["name"],
            version=stats["version"],
            inference_count=stats["inference_count"],
            execution_count=stats["execution_count"],
        )
        infer = entry.inference_stats
        infer.success.count, infer.success.ns = answered, queue_ns + compute_ns
        infer.fail.count = sum(stats["rejected"].values())
        infer.queue.count, infer.queue.ns = stats["request_count"], queue_ns
        infer.compute_infer.count, infer.compute_infer.ns = stats["execution_count"], compute_ns
    return response


def index_response(entries: Iterable[Mapping[str, Any]]) -> Any:
    index = pb2.RepositoryIndexResponse.ModelIndex
    return pb2.RepositoryIndexResponse(
        models=[
            index(
                name=e["name"], version=e.get("version", ""), state=e["state"], reason=e["reason"]
            )
            for e in entries
        ]
    )


def load_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """`ModelRepositoryParameter`s → the serving settings a REST load body would carry
    (Triton's `config` is refused by the data plane as an unknown setting, naming the
    known ones)."""
    return _parameters(parameters)
