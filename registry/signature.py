"""A version's signature: input and output names, dtypes and shapes, and feature names.

Shapes use -1 for a dimension that varies; the batch dimension is always dimension 0 and
is marked in `batch_dim`. Feature names belong to 2-D inputs (rows × features).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from registry.errors import InvalidModelInput

if TYPE_CHECKING:  # torch is imported where a function needs it: the CLI starts faster
    import torch

__all__ = [
    "Predict",
    "Signature",
    "TensorSpec",
    "example_arrays",
    "feature_names_for",
    "flatten_outputs",
    "forward_input_names",
    "signature_from_torch",
]

Predict = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
"""{input name: rows} → {output name: rows}: the eager model, or an exported one."""
ExampleInputs: TypeAlias = "torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["dtype"]), tuple(int(d) for d in data["shape"]))

    def describe(self) -> str:
        dims = ", ".join(
            "batch" if i == 0 and d == -1 else str(d) for i, d in enumerate(self.shape)
        )
        return f"{self.name}: {self.dtype}[{dims}]"


@dataclass(frozen=True, slots=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    feature_names: dict[str, list[str]] = field(default_factory=dict)
    batch_dim: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "feature_names": self.feature_names,
            "batch_dim": self.batch_dim,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Signature:
        return cls(
            inputs=tuple(TensorSpec.from_json(s) for s in data["inputs"]),
            outputs=tuple(TensorSpec.from_json(s) for s in data["outputs"]),
            feature_names={k: list(v) for k, v in data.get("feature_names", {}).items()},
            batch_dim=int(data.get("batch_dim", 0)),
        )

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]


def forward_input_names(model: torch.nn.Module) -> list[str]:
    parameters = inspect.signature(model.forward).parameters.values()
    return [
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def example_arrays(model: torch.nn.Module, example_inputs: ExampleInputs) -> dict[str, np.ndarray]:
    """Name the example tensors after `forward`'s parameters; check they share a batch size."""
    import torch

    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    names = forward_input_names(model)
    if isinstance(example_inputs, Mapping):
        unknown = sorted(set(example_inputs) - set(names))
        if unknown:
            raise InvalidModelInput(
                f"example inputs {unknown} are not parameters of {type(model).__name__}.forward "
                f"({names})"
            )
        pairs = [(n, example_inputs[n]) for n in names if n in example_inputs]
    else:
        tensors = list(example_inputs)
        if len(tensors) > len(names):
            raise InvalidModelInput(
                f"{len(tensors)} example inputs given, but {type(model).__name__}.forward takes "
                f"{len(names)} ({names})"
            )
        pairs = list(zip(names, tensors, strict=False))
    if not pairs:
        raise InvalidModelInput("no example inputs given; pass at least one tensor")
    arrays: dict[str, np.ndarray] = {}
    for name, tensor in pairs:
        if not isinstance(tensor, torch.Tensor):
            raise InvalidModelInput(
                f"example input {name!r} is a {type(tensor).__name__}; expected a torch.Tensor"
            )
        if tensor.dim() < 1:
            raise InvalidModelInput(
                f"example input {name!r} is a scalar; expected a batch (dimension 0 = rows)"
            )
        arrays[name] = tensor.detach().cpu().numpy()
    sizes = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise InvalidModelInput(f"example inputs disagree on the batch size: {sizes}")
    return arrays


def flatten_outputs(
    result: Any, output_names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """A model's return value (tensor, tuple, list or dict of tensors) as named arrays."""
    import torch

    if isinstance(result, torch.Tensor):
        tensors: list[tuple[str | None, Any]] = [(None, result)]
    elif isinstance(result, Mapping):
        tensors = [(str(k), v) for k, v in result.items()]
    elif isinstance(result, list | tuple):
        tensors = [(None, v) for v in result]
    else:
        raise InvalidModelInput(
            f"the model returned a {type(result).__name__}; expected a tensor, or a tuple, "
            "list or dict of tensors"
        )
    if output_names is not None and len(output_names) != len(tensors):
        raise InvalidModelInput(
            f"{len(output_names)} output names given ({list(output_names)}), but the model "
            f"returned {len(tensors)} outputs"
        )
    named: dict[str, np.ndarray] = {}
    for index, (key, value) in enumerate(tensors):
        if not isinstance(value, torch.Tensor):
            raise InvalidModelInput(
                f"output {index} is a {type(value).__name__}; expected a torch.Tensor"
            )
        if output_names is not None:
            name = output_names[index]
        elif key is not None:
            name = key
        else:
            name = "output" if len(tensors) == 1 else f"output_{index}"
        named[name] = value.detach().cpu().numpy()
    return named


def _spec(name: str, array: np.ndarray, batch: int) -> TensorSpec:
    if array.ndim == 0 or array.shape[0] != batch:
        raise InvalidModelInput(
            f"output {name!r} has shape {list(array.shape)}; expected the batch ({batch} rows) "
            "in dimension 0"
        )
    return TensorSpec(name, array.dtype.name, (-1, *array.shape[1:]))


def signature_from_torch(
    inputs: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
    feature_names: Sequence[str] | Mapping[str, Sequence[str]] | None,
) -> Signature:
    batch = next(iter(inputs.values())).shape[0]
    input_specs = tuple(_spec(name, array, batch) for name, array in inputs.items())
    output_specs = tuple(_spec(name, array, batch) for name, array in outputs.items())
    return Signature(input_specs, output_specs, feature_names_for(input_specs, feature_names))


def feature_names_for(
    inputs: Sequence[TensorSpec],
    feature_names: Sequence[str] | Mapping[str, Sequence[str]] | None,
) -> dict[str, list[str]]:
    if feature_names is None:
        return {}
    if isinstance(feature_names, str):
        raise InvalidModelInput("feature_names must be a list of names, not one string")
    if not isinstance(feature_names, Mapping):
        tabular = [s for s in inputs if len(s.shape) == 2]
        if len(tabular) != 1:
            raise InvalidModelInput(
                "a list of feature names needs exactly one 2-D input; this model has "
                f"{len(tabular)}: pass a dict {{input name: [feature names]}} instead"
            )
        feature_names = {tabular[0].name: list(feature_names)}
    by_name = {s.name: s for s in inputs}
    result: dict[str, list[str]] = {}
    for input_name, names in feature_names.items():
        spec = by_name.get(input_name)
        if spec is None:
            raise InvalidModelInput(
                f"feature names given for {input_name!r}, which is not an input ({list(by_name)})"
            )
        if len(spec.shape) != 2:
            raise InvalidModelInput(
                f"feature names given for input {input_name!r} of shape {list(spec.shape)}; "
                "only 2-D inputs (rows × features) have feature names"
            )
        names = [str(n) for n in names]
        if len(names) != spec.shape[1]:
            raise InvalidModelInput(
                f"input {input_name!r} has {spec.shape[1]} features but {len(names)} feature "
                "names were given"
            )
        if len(set(names)) != len(names) or any(not n for n in names):
            raise InvalidModelInput(f"feature names of {input_name!r} must be unique and non-empty")
        result[input_name] = names
    return result
