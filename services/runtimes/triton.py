"""A remote runtime: NVIDIA Triton Inference Server, reached over gRPC with tritonclient.

The gateway keeps everything that is its job (validation, the adaptive batcher, the
inference log, drift, metrics, the error envelope) and forwards each batch to a model on a
Triton server, the engine that owns the GPU. The Triton model is normally one written by
`mlgate triton-repo`: same name, the registry's version number as Triton's version.

Loading checks that Triton serves what the registry says this version is: the model must
be ready, every input of our signature must be there with the same datatype and a
compatible shape, and every output must exist. When the model's config carries the
artifact digest that `mlgate triton-repo` writes (`mlgate_artifact_digest.<version>`), it
must be one of this version's gate-passed artifacts, so the gateway cannot serve one
version's traffic with another version's weights.

Failures map to the gateway's errors: an unreachable or unready Triton is 503
(`EngineUnavailable`, retry), Triton refusing one request's input is the batcher's usual
per-request isolation (422), and anything else Triton answers is 502 (`EngineFailed`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from exporters.triton_config import DIGEST_PARAMETER
from registry.errors import NotServable
from registry.signature import Signature
from services.gateway.errors import EngineFailed, EngineUnavailable
from services.runtimes.base import Prediction, Runtime, RuntimeSettings, Tensors

__all__ = ["TritonRuntime"]

log = logging.getLogger("mlgate.gateway")

# Triton's status codes (tritonclient reports them as "StatusCode.<NAME>").
_UNAVAILABLE = {"UNAVAILABLE", "NOT_FOUND", "DEADLINE_EXCEEDED", "CANCELLED"}
_INPUT_FAULT = {"INVALID_ARGUMENT"}


class TritonRuntime(Runtime):
    kind = "triton"
    supports_inline = False

    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        url: str,
        model: str,
        version: str,
        signature: Signature,
        artifact_digests: frozenset[str],
        timeout_s: float,
    ) -> None:
        super().__init__(settings)
        self.url, self.model, self.version = url, model, version
        self.signature = signature
        self.artifact_digests = artifact_digests
        self.timeout_s = timeout_s
        self._client: triton_aio.InferenceServerClient | None = None
        self._server_version = ""
        self._datatypes: dict[str, str] = {}

    @property
    def _target(self) -> str:
        version = f" version {self.version}" if self.version else ""
        return f"Triton model {self.model!r}{version} at {self.url}"

    async def load(self) -> None:
        client = triton_aio.InferenceServerClient(self.url)
        self._client = client
        try:
            if not await client.is_server_live(client_timeout=self.timeout_s):
                raise EngineUnavailable(f"the Triton server at {self.url} is not live")
            if not await client.is_model_ready(
                self.model, self.version, client_timeout=self.timeout_s
            ):
                raise EngineUnavailable(f"{self._target} is not ready")
            metadata = await client.get_model_metadata(
                self.model, self.version, as_json=True, client_timeout=self.timeout_s
            )
            config = await client.get_model_config(
                self.model, self.version, as_json=True, client_timeout=self.timeout_s
            )
            server = await client.get_server_metadata(as_json=True, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            await self.unload()
            raise _engine_error(exc, f"could not reach {self._target}") from None
        except EngineUnavailable:
            await self.unload()
            raise
        self._server_version = str(server.get("version", ""))
        try:
            self._check(metadata, config.get("config", config))
        except NotServable:
            await self.unload()
            raise

    def _check(self, metadata: dict[str, Any], config: dict[str, Any]) -> None:
        """Refuse a Triton model that is not this registry version."""
        theirs = {t["name"]: t for t in metadata.get("inputs", [])}
        problems = []
        for spec in self.signature.inputs:
            tensor = theirs.get(spec.name)
            expected = triton_grpc.np_to_triton_dtype(np.dtype(spec.dtype))
            if tensor is None:
                problems.append(f"it has no input {spec.name!r} (it has {sorted(theirs)})")
            elif tensor["datatype"] != expected:
                problems.append(
                    f"input {spec.name!r} is {tensor['datatype']}, the registry says {expected}"
                )
            elif not _compatible(spec.shape, [int(d) for d in tensor["shape"]]):
                problems.append(
                    f"input {spec.name!r} has shape {tensor['shape']}, "
                    f"the registry says {list(spec.shape)}"
                )
            else:
                self._datatypes[spec.name] = expected
        outputs = {t["name"] for t in metadata.get("outputs", [])}
        missing = [name for name in self.signature.output_names if name not in outputs]
        if missing:
            problems.append(f"it has no outputs {missing} (it has {sorted(outputs)})")
        parameters = config.get("parameters", {})
        digest = parameters.get(f"{DIGEST_PARAMETER}.{self.version}", {}).get(
            "string_value"
        ) or parameters.get(DIGEST_PARAMETER, {}).get("string_value")
        if digest and digest not in self.artifact_digests:
            problems.append(
                f"it serves artifact {digest[:12]}…, which is not one of this version's "
                f"({', '.join(sorted(d[:12] + '…' for d in self.artifact_digests))})"
            )
        if problems:
            raise NotServable(f"{self._target} does not match the registry: {'; '.join(problems)}")

    async def predict(self, inputs: Tensors) -> Prediction:
        if self._client is None:
            raise RuntimeError("the Triton client is not open")
        request = []
        for name, array in inputs.items():
            tensor = triton_grpc.InferInput(name, list(array.shape), self._datatypes[name])
            tensor.set_data_from_numpy(np.ascontiguousarray(array))
            request.append(tensor)
        wanted = [triton_grpc.InferRequestedOutput(n) for n in self.signature.output_names]
        started = time.perf_counter()
        try:
            result = await self._client.infer(
                self.model,
                request,
                model_version=self.version,
                outputs=wanted,
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as exc:
            raise _engine_error(exc, f"{self._target} failed the batch") from None
        elapsed = time.perf_counter() - started
        outputs = {name: result.as_numpy(name) for name in self.signature.output_names}
        return Prediction(outputs, elapsed)

    def run_inline(self, inputs: Tensors) -> Prediction:
        raise RuntimeError("a remote runtime cannot run a batch on the event loop")

    async def unload(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def info(self) -> dict[str, Any]:
        return {
            "runtime": "triton",
            "runtime_version": self._server_version,
            "device": "remote",
            "url": self.url,
            "triton_model": self.model,
            "triton_version": self.version,
            "max_inflight": self.settings.max_inflight,
        }


def _compatible(ours: tuple[int, ...], theirs: list[int]) -> bool:
    """Shapes (batch dimension included, as Triton reports them) agree where both are
    fixed; -1 is variable. A batch-only tensor, (-1,), is written for Triton as dims [1]
    with an empty reshape, which Triton reports as [-1, 1]."""
    if len(theirs) == len(ours) + 1 and theirs[-1] == 1:
        theirs = theirs[:-1]
    if len(ours) != len(theirs):
        return False
    return all(a == -1 or b == -1 or a == b for a, b in zip(ours, theirs, strict=True))


def _engine_error(exc: InferenceServerException, what: str) -> Exception:
    status = (exc.status() or "").removeprefix("StatusCode.")
    message = f"{what}: {exc.message() or exc}"
    if status in _UNAVAILABLE or not status:
        return EngineUnavailable(message)
    if status in _INPUT_FAULT:
        return ValueError(message)  # the batcher runs each request alone to find whose
    log.warning("%s (%s)", message, status)
    return EngineFailed(message)
