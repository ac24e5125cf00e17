"""What Triton would refuse, checked before a repository is kept.

- A model file against the config written for it. ONNX: the graph's inputs are the
  signature's. TorchScript: Triton's pytorch backend binds config inputs to `forward`'s
  arguments by name, else by a `<name>__<index>` suffix, else by config order, and outputs
  by the suffix, else by config order (pytorch_backend `GetNamingConvention`), and takes a
  Tensor or a tuple of Tensors as the result; `libtorch_binding_problem` replays that rule.
- A whole repository: each config parsed with Triton's schema, named as its folder, and
  each listed version's model file or folder present.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch

from exporters.triton_config import BACKENDS, MODEL_FILES, InvalidTritonConfig, parse_config
from registry.errors import ExportFailed
from registry.records import ModelVersion

__all__ = ["check_model_file", "check_repository", "libtorch_binding_problem"]


def check_model_file(version: ModelVersion, kind: str, path: Path) -> None:
    """The file must take and give what the config will say: Triton binds by these names."""
    signature = version.signature
    if kind == "onnx":
        graph_path = path / "model.onnx" if path.is_dir() else path
        graph = onnx.load(str(graph_path), load_external_data=False).graph
        initializers = {i.name for i in graph.initializer}
        names = [i.name for i in graph.input if i.name not in initializers]
        outputs = [o.name for o in graph.output]
        missing = set(signature.output_names) - set(outputs)
        if sorted(names) != sorted(signature.input_names) or missing:
            raise ExportFailed(
                f"{version.ref}'s ONNX graph has inputs {names} and outputs {outputs}, its "
                f"signature {signature.input_names} → {signature.output_names}"
            )
        return
    with warnings.catch_warnings():
        # torch.jit.* is deprecated since torch 2.5; Triton's pytorch backend still serves
        # it, so the warning is expected here (as in exporters/runners.py).
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"`torch\.jit\.")
        module = torch.jit.load(str(path), map_location="cpu")
    schema = module.forward.schema
    arguments = [a.name for a in schema.arguments[1:]]
    returned = schema.returns[0].type if len(schema.returns) == 1 else None
    if isinstance(returned, torch.TupleType):
        count = len(returned.elements())
        plain = all(isinstance(e, torch.TensorType) for e in returned.elements())
    else:
        count, plain = 1, isinstance(returned, torch.TensorType)
    if not plain:
        raise ExportFailed(
            f"{version.ref}'s TorchScript forward returns {returned}; Triton's pytorch backend "
            "takes a Tensor or a tuple of Tensors (serve the ONNX artifact instead)"
        )
    problem = libtorch_binding_problem(
        signature.input_names, signature.output_names, arguments, count
    )
    if problem:
        raise ExportFailed(f"{version.ref} cannot be served by Triton's pytorch backend: {problem}")


def libtorch_binding_problem(
    inputs: Sequence[str], outputs: Sequence[str], forward_args: Sequence[str], returned: int
) -> str | None:
    """Would Triton's pytorch backend bind config tensors to the wrong arguments/outputs?

    `inputs`/`outputs` are the config's names in order (our signature's), `forward_args`
    the TorchScript forward's parameters (without self), `returned` its output count.
    """
    if len(inputs) != len(forward_args):
        return f"forward takes {list(forward_args)} but the signature has inputs {list(inputs)}"
    if len(outputs) != returned:
        return f"forward returns {returned} tensors but the signature has outputs {list(outputs)}"
    if not set(inputs) <= set(forward_args):
        bound = _named_index(inputs)
        if bound is not None and bound != list(range(len(inputs))):
            return (
                f"inputs {list(inputs)} are not forward's parameters {list(forward_args)} and "
                f"their '__<index>' suffixes bind them to positions {bound}"
            )
    bound = _named_index(outputs)
    if bound is not None and bound != list(range(len(outputs))):
        return (
            f"outputs {list(outputs)} have '__<index>' suffixes that bind them to positions {bound}"
        )
    return None


def _named_index(names: Sequence[str]) -> list[int] | None:
    """Positions under the `<name>__<index>` rule, or None when Triton uses config order."""
    positions = []
    for name in names:
        start = name.find("__")
        index = name[start + 2 :]
        if start == -1 or not (index.isascii() and (index.isdigit() or not index)):
            return None
        positions.append(int(index) if index else 0)  # C's atoi("") is 0
    return positions


def check_repository(root: Path, models: Sequence[str] | None = None) -> list[str]:
    """What Triton would refuse in a repository: configs (parsed with Triton's schema), names,
    and each listed version's model file or folder."""
    problems = []
    names = models if models is not None else sorted(p.name for p in root.iterdir() if p.is_dir())
    for name in names:
        config_path = root / name / "config.pbtxt"
        if not config_path.is_file():
            problems.append(f"{name}: no config.pbtxt")
            continue
        try:
            config = parse_config(config_path.read_text())
        except (InvalidTritonConfig, OSError, UnicodeDecodeError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        if config.name != name:
            problems.append(f"{name}: config names the model {config.name!r}")
        kind = {v: k for k, v in BACKENDS.items()}.get(config.backend)
        for number in config.version_policy.specific.versions:
            path = root / name / str(number) / MODEL_FILES.get(kind or "", "?")
            if kind == "onnx" and path.is_dir():
                path = path / "model.onnx"
            if not path.is_file():
                problems.append(f"{name}: version {number} has no {path.relative_to(root)}")
    return problems
