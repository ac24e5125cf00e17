"""Register a model that arrives as an ONNX or TorchScript file, then gate it.

An ONNX file carries its signature; a multi-file ONNX model (`x.onnx` + its external
data files, which must sit beside it) is stored as one artifact, the graph renamed to
`model.onnx`. A TorchScript file carries no signature, so its inputs are given as
`name:dtype:shape` specs (`x:float32:-1,12`; -1 marks the batch dimension).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import onnx
import torch

from exporters.export import ExportResult, export
from exporters.onnx_export import ONNX_FILE
from exporters.runners import load_torchscript, onnx_predictor, torchscript_predictor
from exporters.torchscript_export import TORCHSCRIPT_FILE
from registry.errors import InvalidModelInput
from registry.lineage import Dataset, Metric
from registry.quality.profile import QualitySpec
from registry.reference import ReferenceInput
from registry.registration import register_files
from registry.signature import Signature, TensorSpec, feature_names_for, flatten_outputs
from registry.store import Registry

__all__ = ["import_file", "onnx_signature", "parse_input_spec"]

EXAMPLE_ROWS = 8


def parse_input_spec(text: str) -> TensorSpec:
    """`x:float32:-1,12` → TensorSpec("x", "float32", (-1, 12))."""
    parts = text.split(":")
    if len(parts) != 3:
        raise InvalidModelInput(
            f"input spec {text!r}: expected NAME:DTYPE:SHAPE, e.g. x:float32:-1,12"
        )
    name, dtype, shape_text = parts
    try:
        np.dtype(dtype)
    except TypeError:
        raise InvalidModelInput(f"input spec {text!r}: unknown dtype {dtype!r}") from None
    try:
        shape = tuple(int(d) for d in shape_text.split(","))
    except ValueError:
        raise InvalidModelInput(f"input spec {text!r}: shape must be integers like -1,12") from None
    if not name or shape[0] != -1 or any(d < 1 for d in shape[1:]):
        raise InvalidModelInput(
            f"input spec {text!r}: the first dimension must be -1 (the batch) and the "
            "others positive"
        )
    return TensorSpec(name, np.dtype(dtype).name, shape)


def onnx_signature(path: Path) -> tuple[Signature, list[str]]:
    """Inputs and outputs of an ONNX graph, plus the external data files it needs."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise InvalidModelInput(f"{path} is not a readable ONNX model: {exc}") from exc
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(_spec(v) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_spec(v) for v in model.graph.output)
    for spec in (*inputs, *outputs):
        if spec.shape and spec.shape[0] != -1:
            raise InvalidModelInput(
                f"{path}: {spec.name!r} has a fixed first dimension {spec.shape[0]}; mlgate "
                "batches requests, so dimension 0 must be dynamic (export with dynamic_shapes)"
            )
    data_files = sorted(
        {
            entry.value
            for tensor in model.graph.initializer
            if tensor.data_location == onnx.TensorProto.EXTERNAL
            for entry in tensor.external_data
            if entry.key == "location"
        }
    )
    for name in data_files:
        pure = PurePosixPath(name)
        if pure.is_absolute() or len(pure.parts) != 1 or name in (ONNX_FILE, "example_inputs.npz"):
            raise InvalidModelInput(
                f"{path}: external data file {name!r} must be a plain file name beside the model"
            )
        if not (path.parent / name).is_file():
            raise InvalidModelInput(f"{path}: its external data file {name!r} is missing")
    return Signature(inputs, outputs), data_files


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    return TensorSpec(value.name, dtype, dims)


def _examples(specs: Sequence[TensorSpec], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    examples = {}
    for spec in specs:
        if any(d == -1 for d in spec.shape[1:]):
            raise InvalidModelInput(
                f"input {spec.name!r} has shape {list(spec.shape)} with a variable dimension "
                "besides the batch; give its shape with --input NAME:DTYPE:SHAPE"
            )
        shape = (EXAMPLE_ROWS, *spec.shape[1:])
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            examples[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            examples[spec.name] = rng.random(shape) < 0.5
        else:
            examples[spec.name] = rng.integers(0, 10, size=shape).astype(dtype)
    return examples


def import_file(
    registry: Registry,
    name: str,
    path: Path,
    *,
    inputs: Sequence[TensorSpec] | None = None,
    feature_names: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    reference: ReferenceInput | None = None,
    datasets: Sequence[Dataset] = (),
    trainer: str | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Metric | tuple[float, str]] | None = None,
    description: str = "",
    seed: int = 0,
    quality: QualitySpec | None = None,
    parent: str | None = None,
    candidate: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Register an `.onnx` or TorchScript (`.pt`) file as a new version and gate it.

    `quality` declares the task and carries labelled evaluation data (see
    `registry.quality.profile.QualitySpec`); without it the task is inferred where the
    file leaves no doubt, and the version still serves either way.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidModelInput(f"model file {path} does not exist")
    if path.suffix == ".onnx":
        fmt = "onnx"
        signature, data_files = onnx_signature(path)
        if inputs:
            signature = _override_inputs(signature, inputs)
        files = {ONNX_FILE: path, **{n: path.parent / n for n in data_files}}
        predict = onnx_predictor(path, signature.output_names)
        examples = _examples(signature.inputs, seed)
    else:
        fmt = "torchscript"
        if not inputs:
            raise InvalidModelInput(
                f"{path}: a TorchScript file does not record its inputs; give each with "
                "--input NAME:DTYPE:SHAPE (Python: inputs=[TensorSpec(...)])"
            )
        examples = _examples(inputs, seed)
        try:
            module = load_torchscript(path)
            outputs = flatten_outputs(module(*[torch.from_numpy(examples[s.name]) for s in inputs]))
        except (RuntimeError, ValueError) as exc:
            raise InvalidModelInput(
                f"{path} is not a TorchScript model that runs on its inputs: {exc}"
            ) from exc
        signature = Signature(
            tuple(inputs),
            tuple(TensorSpec(n, a.dtype.name, (-1, *a.shape[1:])) for n, a in outputs.items()),
        )
        files = {TORCHSCRIPT_FILE: path}
        predict = torchscript_predictor(path, signature.input_names, signature.output_names)
    signature = Signature(
        signature.inputs, signature.outputs, feature_names_for(signature.inputs, feature_names)
    )
    version = register_files(
        registry,
        name,
        files,
        source_format=fmt,
        signature=signature,
        examples=examples,
        predict=predict,
        reference=reference,
        datasets=datasets,
        trainer=trainer,
        params=params,
        metrics=metrics,
        details={"original": str(path.resolve())},
        description=description,
        quality=quality,
        parent=parent,
        candidate=candidate,
        progress=progress,
    )
    return export(registry, version.ref, fmt, seed=seed, progress=progress)


def _override_inputs(signature: Signature, inputs: Sequence[TensorSpec]) -> Signature:
    given = {s.name: s for s in inputs}
    unknown = sorted(set(given) - set(signature.input_names))
    if unknown:
        raise InvalidModelInput(
            f"--input names {unknown} are not inputs of the model ({signature.input_names})"
        )
    return Signature(tuple(given.get(s.name, s) for s in signature.inputs), signature.outputs)
