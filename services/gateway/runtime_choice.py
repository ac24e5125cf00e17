"""Which runtime serves a version, built from its deployment: a local artifact run by
onnxruntime or TorchScript, or a model on a Triton server (`runtime: triton`).

Every choice requires an artifact that passed the parity gate: a Triton deployment
forwards to a model written from such an artifact (`mlgate triton-repo`), and the Triton
runtime checks at load that Triton serves one of this version's artifacts.

Each runtime's module is imported when a version needs it: serving ONNX never imports
torch (TorchScript's) or tritonclient, which would add seconds to `mlgate serve`'s start.
"""

from __future__ import annotations

import asyncio

from registry.errors import NotServable
from registry.records import ModelVersion
from registry.store import Registry
from services.gateway.deployment import Deployment
from services.runtimes.base import Runtime

__all__ = ["build_runtime", "choose_format"]


def choose_format(preference: str, servable: list[str], ref: str) -> str:
    if not servable:
        raise NotServable(f"{ref} has no artifact that passed the parity gate")
    if preference in ("auto", "triton"):
        return "onnx" if "onnx" in servable else servable[0]
    if preference not in servable:
        raise NotServable(f"{ref} has no {preference} artifact that passed the parity gate")
    return preference


async def build_runtime(
    registry: Registry, record: ModelVersion, deployment: Deployment
) -> tuple[Runtime, str, str]:
    """(runtime, kind, artifact digest), not loaded yet."""
    ref = record.ref
    fmt = choose_format(deployment.runtime, record.servable_formats, ref)
    if deployment.runtime == "triton":
        from services.runtimes.triton import TritonRuntime

        if not deployment.triton_url:
            raise NotServable(
                f"{ref} is deployed with runtime triton but no Triton URL is set "
                "(MLGATE_TRITON_URL, or triton_url in its serving config)"
            )
        artifact = record.servable_artifact(fmt)
        assert artifact is not None  # choose_format picked a servable format
        digests = frozenset(
            a.digest for kind in record.servable_formats if (a := record.servable_artifact(kind))
        )
        runtime: Runtime = TritonRuntime(
            deployment.runtime_settings(),
            url=deployment.triton_url,
            model=deployment.triton_model or record.name,
            version=str(record.version)
            if deployment.triton_version is None
            else deployment.triton_version,
            signature=record.signature,
            artifact_digests=digests,
            timeout_s=deployment.triton_timeout_ms / 1000,
        )
        return runtime, "triton", artifact.digest
    _, local, folder = await asyncio.to_thread(registry.open_servable, ref, fmt)
    if fmt == "onnx":
        from services.runtimes.onnx import OnnxRuntime

        runtime = OnnxRuntime(folder, deployment.runtime_settings())
    else:
        from services.runtimes.torchscript import TorchScriptRuntime

        runtime = TorchScriptRuntime(
            folder,
            deployment.runtime_settings(),
            input_names=record.signature.input_names,
            output_names=record.signature.output_names,
        )
    return runtime, fmt, local.digest
