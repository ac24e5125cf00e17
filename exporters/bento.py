"""Write a BentoML 1.4 service for one registered version, from its gate-passed ONNX artifact.

    write_bento(registry, "credit-risk@production", Path("bento"))
    cd bento && bentoml build && bentoml serve credit-risk:latest

OUT gets `service.py` (a `@bentoml.service` running the artifact with onnxruntime, its
API's batching taken from the version's serving settings, inputs checked against the
registry signature), `model/` (the artifact's files, re-hashed as they are copied),
`bentofile.yaml` (what `bentoml build` packs: the service, `model/`, the onnxruntime and
numpy versions the parity gate ran with, labels naming the version and digest) and
`README.txt`. The model files are packed with the service rather than put in BentoML's
model store: `bentoml.onnx` is deprecated in 1.4 and would rewrite a multi-file model.

BentoML batches only APIs with one argument and one result; a model with several inputs or
outputs gets an API without batching (the README and the result say so).
"""

from __future__ import annotations

import ast
import json
import keyword
import math
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from exporters.bento_template import BATCHABLE_API, PLAIN_API, SERVICE
from exporters.deploy_common import (
    ServingSettings,
    copy_verified,
    prepare_output,
    publish,
    staging_folder,
    stored_settings,
)
from registry.errors import ExportFailed
from registry.records import ArtifactInfo, ModelVersion
from registry.store import Registry

__all__ = ["BentoService", "write_bento"]

ENTRIES = ("service.py", "model", "bentofile.yaml", "README.txt")
_RESERVED = {"self", "ctx", "context"}


@dataclass(frozen=True, slots=True)
class BentoService:
    out: Path
    ref: str
    digest: str
    service: str
    """`service:<Class>`, as bentofile.yaml names it."""
    bento_name: str
    parameters: dict[str, str]
    """{API parameter: ONNX input name}"""
    batchable: bool
    batching: str
    """In words: how BentoML batches this API, or why it does not."""
    max_batch_size: int
    max_latency_ms: int
    packages: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "ref": self.ref,
            "digest": self.digest,
            "service": self.service,
            "bento_name": self.bento_name,
            "api": "POST /predict",
            "parameters": self.parameters,
            "batchable": self.batchable,
            "batching": self.batching,
            "max_batch_size": self.max_batch_size,
            "max_latency_ms": self.max_latency_ms,
            "packages": self.packages,
        }


def write_bento(
    registry: Registry,
    ref: str,
    out: Path,
    *,
    settings: ServingSettings | None = None,
    force: bool = False,
) -> BentoService:
    """Write the service for `ref` into `out` (new or empty; with `force`, only the entries
    this writes are replaced). `settings` default: the version's stored serving config."""
    out = Path(out)
    prepare_output(out, force=force, replacing=ENTRIES)
    version, artifact, source = registry.open_servable(ref, "onnx")
    settings = settings or stored_settings(registry)(version)
    parameters = _parameters(version.signature.input_names)
    batchable = (
        len(parameters) == 1
        and len(version.signature.outputs) == 1
        and settings.max_batch_size > 1  # BentoML requires max_batch_size > 1
    )
    class_name = _class_name(version.name)
    latency = _latency(settings)
    packages = _packages(version, artifact)
    inputs = _inputs(version, parameters)
    example = _example(inputs)
    source_text = _service_source(
        version, artifact, inputs, class_name, settings, batchable, example
    )
    try:
        ast.parse(source_text)
    except SyntaxError as exc:  # a bug here, never the user's input
        raise ExportFailed(f"the generated service.py does not parse: {exc}") from exc
    with staging_folder(out) as staging:
        (staging / "service.py").write_text(source_text)
        copy_verified(source, artifact.manifest, staging / "model")
        (staging / "bentofile.yaml").write_text(_bentofile(version, artifact, class_name, packages))
        (staging / "README.txt").write_text(_readme(version, out, example, batchable))
        prepare_output(out, force=force, replacing=ENTRIES)
        publish(staging, out, list(ENTRIES))
    return BentoService(
        out=out,
        ref=version.ref,
        digest=artifact.digest,
        service=f"service:{class_name}",
        bento_name=version.name,
        parameters=parameters,
        batchable=batchable,
        batching=_batching_note(settings, batchable),
        max_batch_size=settings.max_batch_size,
        max_latency_ms=latency,
        packages=packages,
    )


def _parameters(input_names: list[str]) -> dict[str, str]:
    """{API parameter: ONNX input}: input names as Python identifiers (the JSON keys)."""
    result: dict[str, str] = {}
    for name in input_names:
        candidate = re.sub(r"\W", "_", name)
        if not candidate or candidate[0].isdigit():
            candidate = f"input_{candidate}"
        if keyword.iskeyword(candidate) or candidate in _RESERVED:
            candidate = f"{candidate}_"
        base, n = candidate, 2
        while candidate in result:
            candidate, n = f"{base}_{n}", n + 1
        result[candidate] = name
    return result


def _class_name(model: str) -> str:
    name = "".join(part[:1].upper() + part[1:] for part in re.split(r"[-._]", model) if part)
    return f"Model{name}" if name[:1].isdigit() else name


def _packages(version: ModelVersion, artifact: ArtifactInfo) -> list[str]:
    """onnxruntime as the gate ran it, numpy as the version was registered with."""
    actual = str((artifact.parity or {}).get("actual", ""))
    found = re.search(r"onnxruntime (\S+)", actual)
    environment = version.lineage.get("environment") or {}
    onnxruntime = found.group(1) if found else environment.get("onnxruntime")
    numpy = environment.get("numpy")
    return [
        f"onnxruntime=={onnxruntime or metadata.version('onnxruntime')}",
        f"numpy=={numpy or metadata.version('numpy')}",
    ]


Inputs = dict[str, tuple[str, str, list[int]]]
"""{API parameter: (ONNX input name, dtype, shape)}"""


def _inputs(version: ModelVersion, parameters: dict[str, str]) -> Inputs:
    specs = {s.name: s for s in version.signature.inputs}
    return {p: (name, specs[name].dtype, list(specs[name].shape)) for p, name in parameters.items()}


def _service_source(
    version: ModelVersion,
    artifact: ArtifactInfo,
    inputs: Inputs,
    class_name: str,
    settings: ServingSettings,
    batchable: bool,
    example: str,
) -> str:
    parameters = {p: spec[0] for p, spec in inputs.items()}
    outputs = version.signature.output_names
    latency = _latency(settings)
    if batchable:
        ((parameter, graph_input),) = parameters.items()
        api = BATCHABLE_API.substitute(
            max_batch_size=settings.max_batch_size,
            latency=latency,
            parameter=parameter,
            parameter_literal=repr(parameter),
            graph_input=repr(graph_input),
        )
    else:
        single = len(outputs) == 1
        api = PLAIN_API.substitute(
            parameters="\n".join(
                f"        {p}: Annotated[np.ndarray, _checked({p!r})]," for p in parameters
            ),
            returns="np.ndarray" if single else "dict[str, np.ndarray]",
            feed=", ".join(f"{name!r}: {p}" for p, name in parameters.items()),
            result="results[0]" if single else "dict(zip(OUTPUTS, results, strict=True))",
        )
    return SERVICE.substitute(
        ref=version.ref,
        digest=artifact.digest,
        example=example,
        batching_note=_batching_note(settings, batchable).replace(
            ", max_latency", ",\nmax_latency"
        ),
        inputs=_literal(inputs),
        outputs=repr(outputs),
        threads=settings.intra_op_threads,
        service_name=repr(version.name),
        class_name=class_name,
        api=api,
    )


def _latency(settings: ServingSettings) -> int:
    """BentoML's max_latency_ms: the version's SLO (whole ms; its CORK sheds past it)."""
    return max(1, math.ceil(settings.slo_ms))


def _batching_note(settings: ServingSettings, batchable: bool) -> str:
    if batchable:
        return (
            f"Batching: BentoML's adaptive batcher, up to {settings.max_batch_size} rows, "
            f"max_latency_ms={_latency(settings)} (mlgate's SLO for this version)."
        )
    if settings.max_batch_size <= 1:
        return "Batching: none (max_batch_size is 1)."
    return "Batching: none (BentoML batches only APIs with one input and one output)."


def _example(inputs: Inputs) -> str:
    """A one-row request body: zeros in the signature's shape (1 where a dim varies)."""
    body = {}
    for parameter, (_, _, shape) in inputs.items():
        row: Any = 0
        for dim in reversed(shape[1:]):
            row = [row] * (dim if dim > 0 else 1)
        body[parameter] = [row]
    return json.dumps(body)


def _literal(inputs: Inputs) -> str:
    lines = [
        f"    {p!r}: ({name!r}, {dtype!r}, {shape!r}),"
        for p, (name, dtype, shape) in inputs.items()
    ]
    return "{\n" + "\n".join(lines) + "\n}"


def _bentofile(
    version: ModelVersion, artifact: ArtifactInfo, class_name: str, packages: list[str]
) -> str:
    """YAML written as JSON scalars (valid YAML), so no YAML library is needed to write it."""
    q = json.dumps
    signature = ", ".join(s.describe() for s in version.signature.inputs)
    description = (
        f"{version.ref} from the mlgate registry ({signature} → "
        f"{', '.join(version.signature.output_names)}). {version.description}".strip()
    )
    labels = {
        "mlgate_model": version.name,
        "mlgate_version": str(version.version),
        "mlgate_ref": version.ref,
        "mlgate_artifact_digest": artifact.digest,
    }
    python = ".".join(
        str((version.lineage.get("environment") or {}).get("python", "")).split(".")[:2]
    )
    lines = [
        f"# Written by `mlgate bento` for {version.ref}. Build it from this folder: bentoml build",
        f"service: {q(f'service:{class_name}')}",
        f"name: {q(version.name)}",
        f"description: {q(description)}",
        "labels:",
        *(f"  {key}: {q(value)}" for key, value in labels.items()),
        "include:",
        f"  - {q('service.py')}",
        f"  - {q('model/**')}",
        "python:",
        "  packages:",
        *(f"    - {q(p)}" for p in packages),
        "  # Locking runs pip-compile against PyPI during `bentoml build` (network, slow) only",
        "  # to re-resolve these exact pins; BentoML adds bentoml itself to the image.",
        "  lock_packages: false",
    ]
    if python:
        lines += ["docker:", f"  python_version: {q(python)}"]
    return "\n".join(lines) + "\n"


def _readme(version: ModelVersion, out: Path, example: str, batchable: bool) -> str:
    batching = "batched by BentoML" if batchable else "not batched (several inputs or outputs)"
    return f"""A BentoML service for {version.ref}, written by `mlgate bento`.

Files: service.py (the service), model/ (the ONNX artifact that passed mlgate's parity
gate), bentofile.yaml (what `bentoml build` packs). Needs bentoml 1.4.

Serve it from this folder, without building:
    cd {out} && bentoml serve service:{_class_name(version.name)} --port 3000

Build a Bento (from this folder: BentoML refuses a bentofile outside its working
folder) and serve it, or containerize it:
    cd {out} && bentoml build
    bentoml serve {version.name}:latest --port 3000
    bentoml containerize {version.name}:latest
    docker run --rm -p 3000:3000 {version.name}:<tag printed by containerize>

Call it (POST /predict, a JSON object keyed by input; rows in, rows out; {batching}):
    curl -s -X POST localhost:3000/predict -H 'content-type: application/json' \\
        -d '{example}'
"""
