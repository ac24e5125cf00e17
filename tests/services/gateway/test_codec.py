from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from services.gateway.codec import decode_request, encode_response, oip_datatype, oip_datatype_of
from services.gateway.errors import InvalidTensor


def body(*inputs: dict[str, object], **extra: object) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def test_json_inputs_flat_or_nested() -> None:
    flat = decode_request(
        body({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}), None
    )
    nested = decode_request(
        body({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}), None
    )
    for request in (flat, nested):
        assert request.inputs["x"].dtype == np.float32
        assert request.inputs["x"].tolist() == [[1, 2], [3, 4]]
    assert flat.outputs is None
    assert not flat.binary_by_default


def test_binary_inputs_follow_the_json_header() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([[1], [2]], dtype=np.int64)
    header = body(
        {
            "name": "a",
            "shape": [2, 3],
            "datatype": "FP32",
            "parameters": {"binary_data_size": a.nbytes},
        },
        {
            "name": "b",
            "shape": [2, 1],
            "datatype": "INT64",
            "parameters": {"binary_data_size": b.nbytes},
        },
        id="req-1",
        outputs=[{"name": "y", "parameters": {"binary_data": True}}],
    )
    request = decode_request(header + a.tobytes() + b.tobytes(), str(len(header)))
    np.testing.assert_array_equal(request.inputs["a"], a)
    np.testing.assert_array_equal(request.inputs["b"], b)
    assert request.id == "req-1"
    assert request.outputs == {"y": True}


@pytest.mark.parametrize(
    ("raw", "header", "fragment"),
    [
        (b"{nope", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (body(), None, "non-empty 'inputs'"),
        (body({"shape": [1], "datatype": "FP32", "data": [1]}), None, "has no 'name'"),
        (
            body({"name": "x", "shape": [1], "datatype": "STRING", "data": [1]}),
            None,
            "not supported",
        ),
        (
            body({"name": "x", "shape": [1, -2], "datatype": "FP32", "data": [1]}),
            None,
            "non-negative integers",
        ),
        (
            body({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]}),
            None,
            "holds 3 values but shape [2, 2] needs 4",
        ),
        (
            body({"name": "x", "shape": [2], "datatype": "FP32", "data": ["a", "b"]}),
            None,
            "must be numbers",
        ),
        (
            body({"name": "x", "shape": [2], "datatype": "INT32", "data": [1.5, 2]}),
            None,
            "whole numbers",
        ),
        (
            body({"name": "x", "shape": [1], "datatype": "UINT8", "data": [300]}),
            None,
            "outside the UINT8 range",
        ),
        (
            body({"name": "x", "shape": [2], "datatype": "FP32", "data": [1e39, 1]}),
            None,
            "outside the FP32 range",
        ),
        (
            body({"name": "x", "shape": [1], "datatype": "FP16", "data": [70000]}),
            None,
            "outside the FP16 range",
        ),
        (body({"name": "x", "shape": [1], "datatype": "BOOL", "data": [1]}), None, "true/false"),
        (
            body({"name": "x", "shape": [2], "datatype": "FP32", "data": [[1], [2, 3]]}),
            None,
            "ragged",
        ),
        (
            body({"name": "x", "shape": [1], "datatype": "FP32"}),
            None,
            "neither 'data' nor binary_data_size",
        ),
        (
            body(
                {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},
                {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},
            ),
            None,
            "given twice",
        ),
        (
            body({"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}, id=7),
            None,
            "'id' must be a string",
        ),
        (
            body({"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}),
            "abc",
            "not an integer",
        ),
        (
            body({"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}),
            "99999",
            "does not fit",
        ),
        (
            body({"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}, outputs={"y": 1}),
            None,
            "'outputs' must be a list",
        ),
    ],
)
def test_malformed_requests_are_explained(raw: bytes, header: str | None, fragment: str) -> None:
    with pytest.raises(InvalidTensor) as caught:
        decode_request(raw, header)
    assert fragment in str(caught.value)
    assert caught.value.status_code == 400


def test_binary_sizes_must_add_up() -> None:
    x = np.zeros(4, np.float32)
    wrong = body(
        {"name": "x", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 8}}
    )
    with pytest.raises(InvalidTensor, match="does not match shape"):
        decode_request(wrong + x.tobytes(), str(len(wrong)))
    right = body(
        {"name": "x", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}
    )
    with pytest.raises(InvalidTensor, match="runs past the end"):
        decode_request(right + x.tobytes()[:8], str(len(right)))
    with pytest.raises(InvalidTensor, match="4 bytes of binary data no input claims"):
        decode_request(right + x.tobytes() + b"tail", str(len(right)))


def test_responses_in_json_and_binary() -> None:
    y = np.array([[0.5], [0.25]], dtype=np.float32)
    label = np.array([1, 0], dtype=np.int64)
    content, headers = encode_response("m", 3, {"y": y, "label": label}, {}, "abc")
    document = orjson.loads(content)
    assert headers["content-type"] == "application/json"
    assert document == {
        "model_name": "m",
        "model_version": "3",
        "id": "abc",
        "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [2, 1], "data": [0.5, 0.25]},
            {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 0]},
        ],
    }
    content, headers = encode_response("m", 3, {"y": y, "label": label}, {"y": True}, None)
    split = int(headers["inference-header-content-length"])
    header = orjson.loads(content[:split])
    assert "id" not in header
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert np.frombuffer(content[split:], np.float32).tolist() == [0.5, 0.25]


def test_fp16_outputs_are_written_as_json_numbers() -> None:
    content, _ = encode_response("m", 1, {"y": np.array([0.5], np.float16)}, {}, None)
    assert orjson.loads(content)["outputs"][0] == {
        "name": "y",
        "datatype": "FP16",
        "shape": [1],
        "data": [0.5],
    }


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [
        (np.dtype(np.float32), "FP32"),
        (np.dtype(">f4"), "FP32"),  # another byte order: found by name, then remembered
        (np.dtype(np.bool_), "BOOL"),
        (np.dtype(np.int64), "INT64"),
        (np.dtype("U3"), "STR96"),  # no OIP name: numpy's, upper-cased, as before
    ],
)
def test_a_dtypes_oip_datatype_matches_its_names(dtype: np.dtype[Any], datatype: str) -> None:
    assert oip_datatype_of(dtype) == datatype == oip_datatype(dtype.name)
    assert oip_datatype_of(dtype) == datatype  # the second lookup, from what was remembered
