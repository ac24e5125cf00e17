"""A Triton `config.pbtxt` for one model, built and checked with Triton's own protobuf.

The config is built as a `ModelConfig` message from `tritonclient.grpc.model_config_pb2`
(the schema Triton itself parses), written with protobuf's text format, and parsed back
before anything is kept: a config that Triton's parser would refuse never reaches a
repository. `check_config` also checks what the schema cannot: a name, a backend, a
positive `max_batch_size` (we always batch on dimension 0, so the batch dimension is
never listed in `dims`), non-empty dims, and specific versions.

Names and order follow the version's signature, so the tensors Triton serves are named as
mlgate serves them (`triton_checks` checks that the model files agree).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf import text_format  # type: ignore[import-untyped]
from google.protobuf.message import Message  # type: ignore[import-untyped]
from tritonclient.grpc import model_config_pb2 as pb

from exporters.deploy_common import ServingSettings
from registry.errors import ExportFailed, MlgateError
from registry.signature import Signature, TensorSpec

__all__ = [
    "BACKENDS",
    "DIGEST_PARAMETER",
    "MODEL_FILES",
    "InstanceKind",
    "InvalidTritonConfig",
    "ModelEntry",
    "build_config",
    "check_config",
    "config_text",
    "parse_config",
    "triton_dtype",
]

DIGEST_PARAMETER = "mlgate_artifact_digest"
"""Config parameter holding the artifact digest, when the model holds one version; with
several, `mlgate_artifact_digest.<version>` holds each version's (always written)."""
BACKENDS = {"onnx": "onnxruntime", "torchscript": "pytorch"}
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
InstanceKind = Literal["cpu", "gpu"]

_TRITON_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16",
    "object": "TYPE_STRING",
    "bytes": "TYPE_STRING",
    "str": "TYPE_STRING",
}


class InvalidTritonConfig(MlgateError):
    """A config.pbtxt that Triton would refuse: a bug in the writer, never bad input."""


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """What one Triton model holds: versions of one registry model, in one format."""

    name: str
    fmt: str
    signature: Signature
    versions: Mapping[int, str]
    """{version number: artifact digest}"""
    settings: ServingSettings


def triton_dtype(spec: TensorSpec) -> str:
    try:
        return _TRITON_TYPES[spec.dtype]
    except KeyError:
        raise ExportFailed(
            f"tensor {spec.name!r} has dtype {spec.dtype}, which Triton has no type for "
            f"(it has {', '.join(sorted(set(_TRITON_TYPES)))})"
        ) from None


def build_config(entry: ModelEntry, *, instance_kind: InstanceKind, instance_count: int) -> Any:
    """The `ModelConfig` message for `entry`."""
    settings = entry.settings
    config = pb.ModelConfig(
        name=entry.name,
        backend=BACKENDS[entry.fmt],
        max_batch_size=settings.max_batch_size,
    )
    for spec in entry.signature.inputs:
        fill_tensor(config.input.add(), spec)
    for spec in entry.signature.outputs:
        fill_tensor(config.output.add(), spec)
    batching = config.dynamic_batching
    batching.max_queue_delay_microseconds = round(settings.max_queue_delay_ms * 1000)
    # Ours bounds rows and Triton's bounds requests (each at least one row), so Triton's
    # bound is never the tighter one; never below one full batch, as the gateway does.
    batching.default_queue_policy.max_queue_size = max(settings.max_queue, settings.max_batch_size)
    group = pb.ModelInstanceGroup
    kind = group.KIND_GPU if instance_kind == "gpu" else group.KIND_CPU
    config.instance_group.add(kind=kind, count=instance_count)
    config.version_policy.specific.versions.extend(sorted(entry.versions))
    if len(entry.versions) == 1:
        config.parameters[DIGEST_PARAMETER].string_value = next(iter(entry.versions.values()))
    for number, digest in sorted(entry.versions.items()):
        config.parameters[f"{DIGEST_PARAMETER}.{number}"].string_value = digest
    return config


def fill_tensor(tensor: Any, spec: TensorSpec) -> None:
    """A config `input`/`output` entry for `spec` (also the gateway's gRPC ModelConfig)."""
    tensor.name = spec.name
    tensor.data_type = pb.DataType.Value(triton_dtype(spec))
    dims = list(spec.shape[1:])  # dimension 0 is the batch: implied by max_batch_size > 0
    if dims:
        tensor.dims.extend(dims)
    else:
        # A tensor that is only the batch ([batch]): Triton needs non-empty dims, so it
        # is [1] per request, reshaped to [] (Triton's documented idiom).
        tensor.dims.append(1)
        tensor.reshape.SetInParent()


def config_text(config: Any, header: Sequence[str] = ()) -> str:
    """The text format Triton reads, with `#` comment lines first; checked by parsing."""
    body = text_format.MessageToString(config)
    text = "".join(f"# {line}\n" for line in header) + body
    parsed = parse_config(text)
    if parsed != config:
        raise InvalidTritonConfig(f"config of {config.name!r} does not survive its text format")
    return text


def parse_config(text: str) -> Any:
    """Parse config.pbtxt text with Triton's schema and check it; the `ModelConfig`."""
    config = pb.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise InvalidTritonConfig(
            f"config.pbtxt does not parse as Triton's ModelConfig: {exc}"
        ) from None
    problems = check_config(config)
    if problems:
        raise InvalidTritonConfig(f"config.pbtxt of {config.name!r}: {'; '.join(problems)}")
    return config


def check_config(config: Message) -> list[str]:
    """What Triton would refuse, or what this writer never writes, in a parsed config."""
    problems = []
    if not config.name:
        problems.append("no name")
    if config.backend not in BACKENDS.values():
        problems.append(f"backend {config.backend!r}: expected one of {sorted(BACKENDS.values())}")
    if config.max_batch_size <= 0:
        problems.append(f"max_batch_size {config.max_batch_size}: expected > 0")
    for kind, tensors in (("input", config.input), ("output", config.output)):
        if not tensors:
            problems.append(f"no {kind}s")
        names = [t.name for t in tensors]
        if len(set(names)) != len(names):
            problems.append(f"duplicate {kind} names {names}")
        for tensor in tensors:
            if tensor.data_type == pb.TYPE_INVALID:
                problems.append(f"{kind} {tensor.name!r} has no data_type")
            if not tensor.dims or any(d < -1 or d == 0 for d in tensor.dims):
                problems.append(f"{kind} {tensor.name!r} has dims {list(tensor.dims)}")
    if config.version_policy.WhichOneof("policy_choice") != "specific":
        problems.append("version_policy is not specific")
    elif not config.version_policy.specific.versions or any(
        v <= 0 for v in config.version_policy.specific.versions
    ):
        problems.append(f"versions {list(config.version_policy.specific.versions)}")
    if not config.HasField("dynamic_batching"):
        problems.append("no dynamic_batching")
    if not config.instance_group or any(g.count <= 0 for g in config.instance_group):
        problems.append("instance_group needs a positive count")
    return problems
