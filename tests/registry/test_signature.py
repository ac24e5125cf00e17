from __future__ import annotations

import numpy as np
import pytest
import torch

from registry.errors import InvalidModelInput
from registry.signature import (
    Signature,
    example_arrays,
    feature_names_for,
    flatten_outputs,
    signature_from_torch,
)
from tests.fixtures import SmallCNN, TabularMLP, TwoInputs


def test_inputs_are_named_after_forward_and_the_batch_is_marked() -> None:
    examples = example_arrays(TabularMLP(), torch.zeros(5, 6))
    outputs = {"score": np.zeros((5, 1), np.float32)}
    signature = signature_from_torch(examples, outputs, [f"f{i}" for i in range(6)])
    assert signature.inputs[0].name == "x"
    assert signature.inputs[0].shape == (-1, 6)
    assert signature.outputs[0].describe() == "score: float32[batch, 1]"
    assert signature.feature_names == {"x": [f"f{i}" for i in range(6)]}
    assert Signature.from_json(signature.to_json()) == signature


def test_dict_examples_follow_forward_order() -> None:
    examples = example_arrays(
        TwoInputs(), {"counts": torch.zeros(3, 3, dtype=torch.int64), "numeric": torch.zeros(3, 4)}
    )
    assert list(examples) == ["numeric", "counts"]
    assert examples["counts"].dtype == np.int64


@pytest.mark.parametrize(
    ("examples", "fragment"),
    [
        ({"nope": torch.zeros(2, 4)}, "not parameters"),
        ((torch.zeros(2, 4), torch.zeros(3, 3), torch.zeros(1)), "takes 2"),
        ((torch.zeros(2, 4), torch.zeros(3, 3)), "disagree on the batch size"),
        ((torch.tensor(1.0),), "scalar"),
        (([1, 2],), "expected a torch.Tensor"),
        ((), "no example inputs"),
    ],
)
def test_bad_examples_are_explained(examples: object, fragment: str) -> None:
    with pytest.raises(InvalidModelInput, match=fragment):
        example_arrays(TwoInputs(), examples)  # type: ignore[arg-type]


def test_feature_names_belong_to_2d_inputs_only() -> None:
    image = example_arrays(SmallCNN(), torch.zeros(2, 1, 16, 16))
    out = {"output": np.zeros((2, 10), np.float32)}
    with pytest.raises(InvalidModelInput, match="exactly one 2-D input"):
        signature_from_torch(image, out, ["a"])
    tabular = signature_from_torch(example_arrays(TabularMLP(), torch.zeros(2, 6)), out, None)
    with pytest.raises(InvalidModelInput, match="has 6 features but 2"):
        feature_names_for(tabular.inputs, ["a", "b"])
    with pytest.raises(InvalidModelInput, match="unique"):
        feature_names_for(tabular.inputs, ["a"] * 6)
    with pytest.raises(InvalidModelInput, match="not one string"):
        feature_names_for(tabular.inputs, "abcdef")
    with pytest.raises(InvalidModelInput, match="not an input"):
        feature_names_for(tabular.inputs, {"y": list("abcdef")})


def test_outputs_flatten_from_tuples_and_dicts() -> None:
    pair = (torch.zeros(2, 1), torch.zeros(2, dtype=torch.int64))
    assert list(flatten_outputs(pair)) == ["output_0", "output_1"]
    assert list(flatten_outputs(pair, ["score", "label"])) == ["score", "label"]
    assert list(flatten_outputs({"p": torch.zeros(2)})) == ["p"]
    with pytest.raises(InvalidModelInput, match="2 outputs"):
        flatten_outputs(pair, ["only"])
    with pytest.raises(InvalidModelInput, match="returned a str"):
        flatten_outputs("nope")


def test_an_output_without_the_batch_dimension_is_refused() -> None:
    examples = example_arrays(TabularMLP(), torch.zeros(3, 6))
    with pytest.raises(InvalidModelInput, match="batch"):
        signature_from_torch(examples, {"mean": np.zeros((), np.float32)}, None)
