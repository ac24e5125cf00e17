"""Turning a trained model into a registered version: signature, files, lineage.

`register_module` is what `Registry.register` runs for a `torch.nn.Module`;
`register_files` is the same path for a model that arrives as an ONNX or TorchScript
file (the `exporters` package reads those and supplies the signature and a predictor).
Every file is written to the artifact store before the version row is inserted.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from registry.entrypoints import check_entrypoint, resolve_entrypoint
from registry.errors import InvalidModelInput
from registry.lineage import Dataset, Metric, environment, git_info, normalise_metrics
from registry.names import check_model_name
from registry.pytorch_source import EXAMPLE_FILE, check_factory, torch_predictor, write_source
from registry.quality.profile import (
    EvaluationInput,
    QualitySpec,
    build_profile,
    split_labelled_reference,
)
from registry.records import ModelVersion, StagedArtifact, VersionWriter
from registry.reference import ReferenceInput, build_reference, reference_arrays
from registry.signature import Predict, Signature, example_arrays, signature_from_torch

__all__ = ["register_files", "register_module"]

Progress = Callable[[str], None]


def register_module(
    registry: VersionWriter,
    model: torch.nn.Module,
    name: str,
    example_inputs: Any,
    *,
    feature_names: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    output_names: Sequence[str] | None = None,
    reference: ReferenceInput | None = None,
    datasets: Sequence[Dataset] = (),
    trainer: str | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Metric | tuple[float, str]] | None = None,
    factory: str | None = None,
    factory_kwargs: Mapping[str, Any] | None = None,
    parent: str | None = None,
    task_id: str | None = None,
    description: str = "",
    created_by: str | None = None,
    reference_max_rows: int | None = None,
    task: str | None = None,
    output_kind: str | None = None,
    evaluation: EvaluationInput | None = None,
    label: str | None = None,
    threshold: float | None = None,
    classes: int | None = None,
    quality_output: str | None = None,
    candidate: bool = False,
    progress: Progress | None = None,
) -> ModelVersion:
    """Register a trained `torch.nn.Module` with its lineage; returns the new version.

    `example_inputs` is a tensor, a tuple of tensors or a dict keyed by `forward`'s
    parameter names, with the batch in dimension 0. `reference` is the training inputs
    (a DataFrame with the feature columns, an array, or a dict of arrays); up to
    `reference_max_rows` rows of it are kept with the model's outputs on them.

    Quality (see `registry.quality.profile`): `task` (binary, multiclass, regression) and
    `output_kind` say what the model predicts (inferred where unambiguous otherwise);
    `evaluation` is labelled data it did not train on (a DataFrame with the `label`
    column, or `(inputs, labels)`), on which its baseline and calibration are computed.
    `candidate=True` keeps the version out of `@latest` until it is promoted.
    """
    quality = QualitySpec(task, output_kind, quality_output, classes, threshold, evaluation, label)
    check_model_name(name)
    if not isinstance(model, torch.nn.Module):
        raise InvalidModelInput(f"model must be a torch.nn.Module, not {type(model).__name__}")
    lineage = _common_lineage(datasets, trainer, params, metrics)
    if factory is not None:
        check_entrypoint(factory, "model factory")
    if parent is not None:
        registry.get(parent)  # fail before anything is written
    _step(progress, "signature")
    model = model.eval()
    examples = example_arrays(model, example_inputs)
    outputs = torch_predictor(model, list(examples), output_names)(examples)
    signature = signature_from_torch(examples, outputs, feature_names)
    predict = torch_predictor(model, signature.input_names, signature.output_names)
    factory_check = check_factory(model, factory, factory_kwargs, examples, outputs, signature)
    lineage["factory"] = factory_check.to_json()
    lineage["code"] = git_info(_code_location(trainer, factory_check.factory, model))
    staged = [
        _stage(registry, progress, "source", lambda folder: write_source(folder, model, examples))
    ]
    reference, quality = split_labelled_reference(reference, quality)
    staged += _stage_reference(
        registry, progress, reference, signature, predict, reference_max_rows
    )
    lineage["reference"] = staged[-1].details if len(staged) > 1 else None
    staged.append(
        _stage_quality(
            registry, progress, quality, signature, predict, reference, reference_max_rows, lineage
        )
    )
    return registry.create_version(
        name,
        status="candidate" if candidate else "registered",
        source_format="pytorch",
        signature=signature,
        lineage=lineage,
        artifacts=staged,
        datasets=datasets,
        parent=parent,
        task_id=task_id,
        description=description,
        created_by=created_by,
        progress=progress,
    )


def register_files(
    registry: VersionWriter,
    name: str,
    files: Mapping[str, Path],
    *,
    source_format: str,
    signature: Signature,
    examples: Mapping[str, np.ndarray],
    predict: Predict,
    reference: ReferenceInput | None = None,
    datasets: Sequence[Dataset] = (),
    trainer: str | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Metric | tuple[float, str]] | None = None,
    details: Mapping[str, Any] | None = None,
    parent: str | None = None,
    description: str = "",
    created_by: str | None = None,
    reference_max_rows: int | None = None,
    quality: QualitySpec | None = None,
    candidate: bool = False,
    progress: Progress | None = None,
) -> ModelVersion:
    """Register a model that arrives as files (ONNX, TorchScript) rather than a module."""
    quality = quality or QualitySpec()
    check_model_name(name)
    lineage = _common_lineage(datasets, trainer, params, metrics)
    if parent is not None:
        registry.get(parent)  # fail before anything is written
    lineage["imported"] = {**dict(details or {}), "files": {n: str(p) for n, p in files.items()}}
    lineage["code"] = git_info(_code_location(trainer, None, None))

    def write(folder: Path) -> None:
        for stored_name, path in files.items():
            shutil.copyfile(path, folder / stored_name)
        np.savez(folder / EXAMPLE_FILE, **dict(examples))  # type: ignore[arg-type]

    staged = [_stage(registry, progress, "source", write)]
    reference, quality = split_labelled_reference(reference, quality)
    staged += _stage_reference(
        registry, progress, reference, signature, predict, reference_max_rows
    )
    lineage["reference"] = staged[-1].details if len(staged) > 1 else None
    staged.append(
        _stage_quality(
            registry, progress, quality, signature, predict, reference, reference_max_rows, lineage
        )
    )
    return registry.create_version(
        name,
        status="candidate" if candidate else "registered",
        source_format=source_format,
        signature=signature,
        lineage=lineage,
        artifacts=staged,
        datasets=datasets,
        parent=parent,
        description=description,
        created_by=created_by,
        progress=progress,
    )


def _common_lineage(
    datasets: Sequence[Dataset],
    trainer: str | None,
    params: Mapping[str, Any] | None,
    metrics: Mapping[str, Metric | tuple[float, str]] | None,
) -> dict[str, Any]:
    for dataset in datasets:
        if not isinstance(dataset, Dataset):
            raise InvalidModelInput(
                f"datasets must be registry.Dataset records, not {type(dataset).__name__}; "
                "use Dataset.from_frame(df, name=..., source=...)"
            )
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise InvalidModelInput(f"dataset names must be unique, got {names}")
    if trainer is not None:
        resolve_entrypoint(trainer, "trainer entrypoint")
    try:
        params_json = json.loads(json.dumps(dict(params or {}), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidModelInput(
            f"params must be JSON values (numbers, strings, lists): {exc}"
        ) from exc
    return {
        "datasets": [d.to_json() for d in datasets],
        "trainer": trainer,
        "params": params_json,
        "metrics": normalise_metrics(metrics, set(names)),
        "environment": environment(),
    }


def _code_location(trainer: str | None, factory: str | None, model: torch.nn.Module | None) -> Path:
    """Where the training code lives, for its git commit: trainer, else factory, else class."""
    modules = [e.partition(":")[0] for e in (trainer, factory) if e]
    if model is not None:
        modules.append(type(model).__module__)
    for module in modules:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin and spec.origin not in ("built-in", "frozen"):
            return Path(spec.origin)
    return Path.cwd()


def _step(progress: Progress | None, stage: str) -> None:
    if progress is not None:
        progress(stage)


def _stage(
    registry: VersionWriter, progress: Progress | None, kind: str, write: Callable[[Path], None]
) -> StagedArtifact:
    _step(progress, kind)
    with registry.stage() as folder:
        write(folder)
        return registry.commit_artifact(folder, kind)


def _stage_quality(
    registry: VersionWriter,
    progress: Progress | None,
    spec: QualitySpec,
    signature: Signature,
    predict: Predict,
    reference: ReferenceInput | None,
    max_rows: int | None,
    lineage: dict[str, Any],
) -> StagedArtifact:
    """The quality profile as an artifact; its problem (or why none) goes into lineage."""
    _step(progress, "quality")
    limit = max_rows or registry.settings.reference_max_rows
    inputs = None if reference is None else reference_arrays(reference, signature)
    with registry.stage() as folder:
        profile = build_profile(spec, signature, predict, inputs, folder, max_rows=limit)
        staged = registry.commit_artifact(folder, "quality")
    lineage["problem"] = None if profile.problem is None else profile.problem.to_json()
    lineage["problem_reason"] = profile.problem_reason or None
    staged.details = {
        "evaluation_rows": profile.evaluation_rows,
        "evaluation_source": profile.evaluation_source,
        "baseline": None if profile.baseline is None else profile.baseline.to_json(),
    }
    return staged


def _stage_reference(
    registry: VersionWriter,
    progress: Progress | None,
    reference: ReferenceInput | None,
    signature: Signature,
    predict: Predict,
    max_rows: int | None,
) -> list[StagedArtifact]:
    if reference is None:
        return []
    _step(progress, "reference")
    limit = max_rows or registry.settings.reference_max_rows
    with registry.stage() as folder:
        layout = build_reference(reference, signature, predict, folder, max_rows=limit)
        staged = registry.commit_artifact(folder, "reference")
    staged.details = {
        "rows": layout["rows"],
        "sampled_from": layout["sampled_from"],
        "max_rows": limit,
        "digest": staged.manifest.digest,
    }
    return [staged]
