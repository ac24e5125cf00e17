"""`mlgate register`: turn command-line options into one registry or import call."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exporters.imports import import_file, parse_input_spec
from registry.errors import InvalidModelInput
from registry.lineage import Dataset, Metric, read_table
from registry.pytorch_source import load_state_dict, rebuild_model
from registry.quality.profile import QualitySpec
from registry.records import ModelVersion
from registry.signature import TensorSpec
from registry.store import Registry
from services.cli.common import key_values

__all__ = ["register"]

EXAMPLE_ROWS = 8


def register(
    registry: Registry,
    name: str,
    progress: Callable[[str], None],
    *,
    factory: str | None,
    weights: Path | None,
    kwargs: str,
    onnx: Path | None,
    torchscript: Path | None,
    input_specs: Sequence[str],
    outputs: Sequence[str] | None,
    features: str | None,
    reference: Path | None,
    datasets: Sequence[str],
    eval_datasets: Sequence[str],
    trainer: str | None,
    params: Sequence[str],
    metrics: Sequence[str],
    description: str,
    quality: Mapping[str, Any],
    label: str | None,
    parent: str | None,
    candidate: bool,
) -> ModelVersion:
    """`quality`: task, output_kind, threshold, classes (None where not given)."""
    sources = [s for s in (factory or weights, onnx, torchscript) if s]
    if len(sources) != 1:
        raise InvalidModelInput(
            "say what to register: --factory MODULE:FUNCTION with --weights FILE, or --onnx "
            "FILE, or --torchscript FILE (exactly one)"
        )
    specs = [parse_input_spec(text) for text in input_specs]
    reference_frame = read_table(reference) if reference else None
    if label is not None and reference_frame is not None and label in reference_frame.columns:
        features = features or ",".join(str(c) for c in reference_frame.columns if c != label)
    feature_names = _feature_names(features, reference_frame, specs)
    evaluation = _evaluation(eval_datasets, label)
    spec = QualitySpec(
        task=quality.get("task"),
        output_kind=quality.get("output_kind"),
        classes=quality.get("classes"),
        threshold=quality.get("threshold"),
        evaluation=evaluation,
        label=label,
    )
    common: dict[str, Any] = {
        "feature_names": feature_names,
        "reference": _reference(reference_frame, feature_names, label),
        "datasets": _datasets(datasets, "training") + _datasets(eval_datasets, "evaluation"),
        "trainer": trainer,
        "params": _params(params),
        "metrics": _metrics(metrics),
        "description": description,
        "progress": progress,
    }
    if onnx or torchscript:
        path = onnx or torchscript
        assert path is not None
        return import_file(
            registry,
            name,
            path,
            inputs=specs or None,
            quality=spec,
            parent=parent,
            candidate=candidate,
            **common,
        ).version
    if not (factory and weights):
        raise InvalidModelInput("--factory and --weights go together")
    if not specs:
        raise InvalidModelInput("give the model's inputs with --input NAME:DTYPE:SHAPE")
    try:
        factory_kwargs = json.loads(kwargs)
    except json.JSONDecodeError as exc:
        raise InvalidModelInput(f"--kwargs is not valid JSON: {exc}") from exc
    if not isinstance(factory_kwargs, dict):
        raise InvalidModelInput("--kwargs must be a JSON object")
    model = rebuild_model(factory, factory_kwargs, load_state_dict(weights))
    examples = _examples(specs, common["reference"], feature_names)
    return registry.register(
        model,
        name,
        examples,
        output_names=outputs or None,
        factory=factory,
        factory_kwargs=factory_kwargs,
        task=spec.task,
        output_kind=spec.output_kind,
        threshold=spec.threshold,
        classes=spec.classes,
        evaluation=spec.evaluation,
        label=label,
        parent=parent,
        candidate=candidate,
        **common,
    )


def _feature_names(
    features: str | None, frame: Any, specs: Sequence[TensorSpec]
) -> list[str] | None:
    if features:
        return [f.strip() for f in features.split(",") if f.strip()]
    tabular = [s for s in specs if len(s.shape) == 2]
    if frame is not None and len(tabular) == 1 and len(frame.columns) == tabular[0].shape[1]:
        return [str(c) for c in frame.columns]
    return None


def _reference(frame: Any, feature_names: list[str] | None, label: str | None) -> Any:
    if frame is None:
        return None
    if feature_names is None:
        raise InvalidModelInput(
            "--reference needs --features (the reference file's columns that feed the model)"
        )
    if label is not None and label in frame.columns:
        return frame[[*feature_names, label]]  # labelled: a holdout becomes the evaluation data
    return frame


def _evaluation(items: Sequence[str], label: str | None) -> Any:
    """With --label, the (first) --eval-dataset file is the labelled evaluation data."""
    if label is None or not items:
        return None
    if len(items) > 1:
        raise InvalidModelInput(
            "--label takes its evaluation data from one --eval-dataset; give only one"
        )
    _, _, path = items[0].partition("=")
    frame = read_table(Path(path))
    if label not in frame.columns:
        raise InvalidModelInput(
            f"--label {label!r} is not a column of {path} (columns: {list(frame.columns)[:20]})"
        )
    return frame


def _examples(
    specs: Sequence[TensorSpec], reference: Any, feature_names: list[str] | None
) -> dict[str, torch.Tensor]:
    """Example inputs: the first rows of the reference data, else seeded random rows."""
    rng = np.random.default_rng(0)
    examples = {}
    for spec in specs:
        shape = (EXAMPLE_ROWS, *spec.shape[1:])
        if reference is not None and feature_names and len(specs) == 1 and len(spec.shape) == 2:
            array = reference[feature_names].iloc[:EXAMPLE_ROWS].to_numpy().astype(spec.dtype)
        elif np.dtype(spec.dtype).kind == "f":
            array = rng.standard_normal(shape).astype(spec.dtype)
        else:
            array = rng.integers(0, 10, size=shape).astype(spec.dtype)
        examples[spec.name] = torch.from_numpy(np.ascontiguousarray(array))
    return examples


def _datasets(items: Sequence[str], role: str) -> list[Dataset]:
    result = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InvalidModelInput(f"dataset {item!r}: expected NAME=FILE")
        result.append(Dataset.from_file(Path(path), name=name, role=role))
    return result


def _params(items: Sequence[str]) -> dict[str, Any]:
    return key_values(list(items), "--param")


def _metrics(items: Sequence[str]) -> dict[str, Metric]:
    metrics = {}
    for item in items:
        key, sep, rest = item.partition("=")
        value, at, dataset = rest.partition("@")
        if not sep or not at or not key or not dataset:
            raise InvalidModelInput(
                f"metric {item!r}: expected NAME=VALUE@DATASET, e.g. auc=0.91@valid"
            )
        try:
            metrics[key] = Metric(float(value), dataset)
        except ValueError:
            raise InvalidModelInput(f"metric {item!r}: {value!r} is not a number") from None
    return metrics
