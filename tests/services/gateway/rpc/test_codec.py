"""Triton's protobuf messages ⇄ the data plane's requests and answers, and every refusal."""

from __future__ import annotations

from typing import Any

import grpc  # type: ignore[import-untyped]
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb2

from registry.errors import BadRequest
from services.gateway.codec import DATATYPES
from services.gateway.dataplane import InferResult
from services.gateway.errors import GRPC_STATUS, InvalidTensor
from services.gateway.rpc.codec import CONTENTS, decode_infer, encode_infer, load_parameters
from services.gateway.rpc.service import grpc_code


def request_with(*tensors: tuple[str, str, list[int]], raw: list[bytes] | None = None) -> Any:
    request = pb2.ModelInferRequest(model_name="m")
    for name, datatype, shape in tensors:
        request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.extend(raw or [])
    return request


@pytest.mark.parametrize("datatype", [d for d, field in CONTENTS.items() if field is not None])
def test_typed_and_raw_contents_decode_to_the_same_array(datatype: str) -> None:
    dtype = DATATYPES[datatype]
    values = np.arange(6).reshape(2, 3) % (2 if dtype.kind == "b" else 6)
    array = values.astype(dtype)
    typed = request_with(("t", datatype, [2, 3]))
    getattr(typed.inputs[0].contents, str(CONTENTS[datatype])).extend(array.ravel().tolist())
    raw = request_with(("t", datatype, [2, 3]), raw=[array.tobytes()])
    for request in (typed, raw):
        decoded = decode_infer(request).inputs["t"]
        assert decoded.dtype == dtype
        np.testing.assert_array_equal(decoded, array)


def test_ids_parameters_and_requested_outputs() -> None:
    request = request_with(("x", "FP16", [1, 2]), raw=[np.ones((1, 2), np.float16).tobytes()])
    request.id = "r-1"
    request.parameters["timeout"].int64_param = 5
    request.parameters["priority"].uint64_param = 2
    request.parameters["flag"].bool_param = True
    request.parameters["ratio"].double_param = 0.5
    request.parameters["note"].string_param = "hi"
    request.parameters["unset"].CopyFrom(pb2.InferParameter())
    request.outputs.add(name="y")
    decoded = decode_infer(request)
    assert decoded.id == "r-1"
    assert decoded.parameters == {
        "timeout": 5,
        "priority": 2,
        "flag": True,
        "ratio": 0.5,
        "note": "hi",
        "unset": None,
    }
    assert decoded.outputs == {"y": True}
    assert decode_infer(request_with(("x", "FP32", [1]), raw=[b"\0" * 4])).id is None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: request_with(), "at least one input"),
        (
            lambda: request_with(("x", "FP32", [1]), ("y", "FP32", [1]), raw=[b"\0" * 4]),
            "raw_input_contents has 1 entries but the request has 2 inputs",
        ),
        (lambda: request_with(("", "FP32", [1]), raw=[b"\0" * 4]), "inputs[0] has no name"),
        (
            lambda: request_with(("x", "FP32", [1]), ("x", "FP32", [1]), raw=[b"\0" * 4] * 2),
            "input 'x' is given twice",
        ),
        (lambda: request_with(("x", "FP32", [-1, 2])), "shape must be a non-empty list"),
        (lambda: request_with(("x", "FP32", []), raw=[b""]), "shape must be a non-empty list"),
        (lambda: request_with(("x", "FP8", [1])), "datatype 'FP8' is not supported"),
        (lambda: request_with(("x", "BYTES", [1])), "datatype BYTES is not supported"),
        (
            lambda: request_with(("x", "INT32", [2]), raw=[b"\0" * 4]),
            "holds 4 bytes but shape [2] × INT32 needs 8",
        ),
        (lambda: request_with(("x", "FP16", [1])), "FP16 has no typed contents field"),
    ],
)
def test_inconsistent_requests_are_invalid_tensors(build: Any, message: str) -> None:
    with pytest.raises(InvalidTensor) as caught:
        decode_infer(build())
    assert message in str(caught.value)


def test_typed_contents_must_be_the_right_field_count_and_range() -> None:
    mixed = request_with(("x", "FP32", [1]), ("y", "FP32", [1]), raw=[b"\0" * 4, b"\0" * 4])
    mixed.inputs[1].contents.fp32_contents.append(1.0)
    with pytest.raises(InvalidTensor, match="input 'y' has typed contents while the request"):
        decode_infer(mixed)
    wrong = request_with(("x", "FP32", [1]))
    wrong.inputs[0].contents.int_contents.append(1)
    with pytest.raises(
        InvalidTensor, match=r"FP32 data goes in contents.fp32_contents, got \['int_"
    ):
        decode_infer(wrong)
    short = request_with(("x", "INT64", [3]))
    short.inputs[0].contents.int64_contents.extend([1, 2])
    with pytest.raises(InvalidTensor, match=r"holds 2 values but shape \[3\] needs 3"):
        decode_infer(short)
    wide = request_with(("x", "INT8", [1]))
    wide.inputs[0].contents.int_contents.append(300)
    with pytest.raises(InvalidTensor, match="values outside the INT8 range"):
        decode_infer(wide)


def test_classification_outputs_are_refused() -> None:
    request = request_with(("x", "FP32", [1]), raw=[b"\0" * 4])
    request.outputs.add(name="y").parameters["classification"].int64_param = 3
    with pytest.raises(InvalidTensor, match="classification"):
        decode_infer(request)


def test_outputs_go_back_raw_with_their_datatypes() -> None:
    outputs: dict[str, np.ndarray] = {
        "score": np.arange(4, dtype=np.float32).reshape(2, 2)[:, :1],
        "label": np.ones(2),
    }
    result = InferResult("m", 3, outputs, {}, "r-9")
    response = encode_infer(result)
    assert (response.model_name, response.model_version, response.id) == ("m", "3", "r-9")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("score", "FP32", [2, 1]),
        ("label", "FP64", [2]),
    ]
    assert (
        response.raw_output_contents[0] == np.array([0, 2], np.float32).tobytes()
    )  # made contiguous
    assert response.raw_output_contents[1] == np.ones(2).tobytes()
    assert encode_infer(InferResult("m", 3, outputs, {}, None)).id == ""


def test_load_parameters_and_the_status_table() -> None:
    parameters = pb2.RepositoryModelLoadRequest().parameters
    parameters["max_batch_size"].int64_param = 8
    parameters["version"].string_param = "2"
    parameters["allow_non_finite"].bool_param = True
    assert load_parameters(parameters) == {
        "max_batch_size": 8,
        "version": "2",
        "allow_non_finite": True,
    }
    parameters["file:1/model.onnx"].bytes_param = b"graph"
    with pytest.raises(BadRequest, match="file contents are not supported"):
        load_parameters(parameters)
    for status, name in GRPC_STATUS.items():
        assert grpc_code(status) == getattr(grpc.StatusCode, name)
    assert grpc_code(418) == grpc.StatusCode.UNKNOWN
