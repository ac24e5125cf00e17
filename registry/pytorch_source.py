"""A PyTorch version's source artifact: a state dict, example inputs and how to rebuild.

The registry never pickles a module. It stores `state_dict.pt` (loaded back with
`weights_only=True`), `example_inputs.npz` (loaded with `allow_pickle=False`) and the
factory entrypoint (`"module:function"` plus keyword arguments) that rebuilds the eager
model for export. When no factory is given, the model's own class is tried with no
arguments; if that does not rebuild the same model, the version is still registered,
and exporting it needs the live model (`export(..., model=...)`).
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from registry.entrypoints import resolve_entrypoint
from registry.errors import InvalidModelInput, InvalidWeights
from registry.signature import Predict, Signature, flatten_outputs

if TYPE_CHECKING:  # torch is imported by the functions that use it: serving an exported
    import torch  # artifact needs only `load_examples`, and torch takes a second to import

__all__ = [
    "EXAMPLE_FILE",
    "WEIGHTS_FILE",
    "FactoryCheck",
    "check_factory",
    "load_examples",
    "load_state_dict",
    "rebuild_model",
    "torch_predictor",
    "write_source",
]

WEIGHTS_FILE = "state_dict.pt"
EXAMPLE_FILE = "example_inputs.npz"


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A weights file that must hold a plain `{name: tensor}` state dict; nothing else loads."""
    import torch

    try:
        with warnings.catch_warnings():
            # A plain pickle (not torch.save) makes torch warn about its protocol before it
            # refuses the file; the refusal below says more than the warning.
            warnings.filterwarnings(
                "ignore", message="Detected pickle protocol", category=UserWarning
            )
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InvalidWeights(f"weights file {path} does not exist") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise InvalidWeights(
            f"weights file {path} is not a state dict that loads with weights_only=True "
            f"({_unpickling_reason(exc)}); mlgate never unpickles arbitrary objects: save the "
            "weights with torch.save(model.state_dict(), path)"
        ) from None
    if not isinstance(loaded, Mapping):
        raise InvalidWeights(
            f"weights file {path} holds a {type(loaded).__name__}, not a state dict; save it "
            "with torch.save(model.state_dict(), path)"
        )
    bad = [str(k) for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise InvalidWeights(
            f"weights file {path} is not a plain state dict: entries {bad[:5]} are not tensors "
            "(a training checkpoint? save model.state_dict() alone)"
        )
    return {str(k): v for k, v in loaded.items()}


def _unpickling_reason(exc: BaseException) -> str:
    """The useful part of torch's long weights_only message: which global, or what failed."""
    text = " ".join(str(exc).split())
    match = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if match:
        return f"it pickles a {match.group(1)} object, not only tensors"
    match = re.search(r"WeightsUnpickler error: (.+?)(?: Check the documentation|$)", text)
    if match:
        return f"unreadable: {match.group(1).strip()}"
    return f"{type(exc).__name__}: {text[:200]}"


def rebuild_model(
    factory: str, factory_kwargs: Mapping[str, Any], state: Mapping[str, torch.Tensor]
) -> torch.nn.Module:
    import torch

    build = resolve_entrypoint(factory, "model factory")
    try:
        model = build(**factory_kwargs)
    except Exception as exc:
        raise InvalidModelInput(
            f"model factory {factory!r} failed with {factory_kwargs}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, torch.nn.Module):
        raise InvalidModelInput(
            f"model factory {factory!r} returned a {type(model).__name__}, not a torch.nn.Module"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InvalidWeights(
            f"the weights do not fit the model built by {factory!r}: {_first_lines(exc)}"
        ) from None
    return model.eval()


def _first_lines(exc: BaseException, count: int = 3) -> str:
    return " ".join(str(exc).strip().splitlines()[:count])


def torch_predictor(
    model: torch.nn.Module, input_names: Sequence[str], output_names: Sequence[str] | None
) -> Predict:
    """A function {input name: array} → {output name: array} running the eager model."""
    import torch

    def predict(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = {n: torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in input_names}
        with torch.inference_mode():
            return flatten_outputs(model(**tensors), output_names)

    return predict


class FactoryCheck:
    """Whether `factory(**kwargs)` plus the weights rebuilds a model that answers the same."""

    def __init__(self, factory: str | None, kwargs: Mapping[str, Any], error: str | None) -> None:
        self.factory = factory
        self.kwargs = dict(kwargs)
        self.error = error

    def to_json(self) -> dict[str, Any]:
        return {"entrypoint": self.factory, "kwargs": self.kwargs, "error": self.error}


def check_factory(
    model: torch.nn.Module,
    factory: str | None,
    factory_kwargs: Mapping[str, Any] | None,
    examples: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    signature: Signature,
) -> FactoryCheck:
    explicit = factory is not None
    kwargs = dict(factory_kwargs or {})
    if factory is None:
        cls = type(model)
        factory = f"{cls.__module__}:{cls.__qualname__}"
    if factory.startswith("__main__:"):
        error = f"{factory}: a class or function in __main__ cannot be imported later"
        if explicit:
            raise InvalidModelInput(f"model factory {error}; move it into a module")
        return FactoryCheck(None, kwargs, error)
    try:
        rebuilt = rebuild_model(factory, kwargs, model.state_dict())
        again = torch_predictor(rebuilt, signature.input_names, signature.output_names)(examples)
        for name, value in expected.items():
            if not np.allclose(again[name], value, rtol=1e-5, atol=1e-6, equal_nan=True):
                raise InvalidModelInput(
                    f"model factory {factory!r} rebuilds a model whose output {name!r} differs "
                    "from the registered model's on the example inputs"
                )
    except (InvalidModelInput, InvalidWeights) as exc:
        if explicit:
            raise
        return FactoryCheck(None, kwargs, f"{factory}: {exc}")
    return FactoryCheck(factory, kwargs, None)


def write_source(folder: Path, model: torch.nn.Module, examples: Mapping[str, np.ndarray]) -> None:
    import torch

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, folder / WEIGHTS_FILE)
    np.savez(folder / EXAMPLE_FILE, **dict(examples))  # type: ignore[arg-type]


def load_examples(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / EXAMPLE_FILE, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}
