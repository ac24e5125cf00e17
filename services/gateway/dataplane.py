"""The data plane: what every transport calls. REST and gRPC only translate.

It knows nothing of HTTP: it takes names, versions and decoded tensors, and returns
tensors and plain data. Errors are `MlgateError`s carrying their status.

It is also where a request meets the version that serves it, so it is where the inference
log hears of every answered request (`InferenceLog.record`, which counts its rows before
sampling) and of every request refused at validation (`InferenceLog.refused`, by the
error's `reason`): the data-quality checks' refused share. Both are O(1) dict updates.
"""

from __future__ import annotations

import random
import time
from importlib.metadata import version as package_version
from typing import Any

import numpy as np

from monitors.log.inference_log import InferenceLog
from registry.errors import InvalidModelInput
from registry.names import ID_RULE, positive_id
from services.gateway.admission import Admission
from services.gateway.calls import Call, InferRequest, InferResult
from services.gateway.codec import holds_boolean
from services.gateway.errors import DeadlineExceeded, InvalidTensor, Overloaded, PayloadTooLarge
from services.gateway.manager import ModelManager
from services.gateway.served import Served
from services.gateway.shadowing import Shadowing
from services.gateway.traffic import route_key
from services.gateway.validation import refused_rows, validate_inputs

__all__ = ["DataPlane", "InferResult"]  # InferResult: re-exported from `calls`

EXTENSIONS = ["binary_tensor_data", "model_repository", "statistics", "v1_predict"]


class DataPlane:
    def __init__(
        self,
        manager: ModelManager,
        *,
        max_rows: int,
        log: InferenceLog | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.manager = manager
        self.max_rows = max_rows
        self.log = log
        self.admission = admission
        self.shadowing = Shadowing(manager, log, manager.metrics)
        self.draw = random.random  # a canary split's draw for requests without a route key

    def begin(self, call: Call, version: int | None) -> None:
        """What every transport does before it reads a request's tensors: label the call
        with the version it is routed to, require that version (404 unknown, 503 not
        ready), and admit it (503 with Retry-After when the process cannot meet the SLO).
        The transport then calls `end(call, ...)` once, whatever the answer."""
        routed = version if version is not None else self.manager.routed_version(call.name)
        call.version = "" if routed is None else str(routed)
        self.manager.require(call.name, version)
        call.admitted = self.admit(call.name, call.version)

    def end(self, call: Call, protocol: str, status: int) -> None:
        """The call was answered with `status`: it leaves admission, and is counted and
        timed. Only a model this gateway serves becomes a label value (clients naming
        models cannot invent series); the version is the one that answered, else the one
        routed to."""
        if call.admitted:
            call.admitted = False
            self.leave()
        metrics = self.manager.metrics
        if metrics is None:
            return
        model = call.name if self.manager.knows(call.name) else ""
        version = call.version if model else ""
        metrics.observe_request(
            model, version, protocol, status, time.perf_counter() - call.started
        )

    def admit(self, name: str, version: str) -> bool:
        """Refuse (503 with Retry-After) before any work if the process cannot meet the SLO
        now (`Admission.refusal`); `name`/`version` are the metric labels. True when the
        request was counted in flight: the transport calls `leave` once it is answered."""
        if self.admission is None:
            return False
        message = self.admission.refusal()
        if message is not None:
            if self.manager.metrics is not None:
                self.manager.metrics.rejected.labels(name, version, "overload").inc()
            raise Overloaded(message, retry_after_s=self.admission.drain_s())
        self.admission.enter()
        return True

    def leave(self) -> None:
        """An admitted request was answered (with anything)."""
        if self.admission is not None:
            self.admission.leave()

    def _spent_s(self, arrived: float) -> float:
        """Of the SLO, what a request arrived at `arrived` (perf_counter) has spent before
        the batcher, plus the loop's wait it will have once its answer is ready."""
        hop = self.admission.return_hop_s() if self.admission is not None else 0.0
        return time.perf_counter() - arrived + hop

    # ---------------------------------------------------------------- health, metadata

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "mlgate", "version": package_version("mlgate"), "extensions": EXTENSIONS}

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.manager.synced

    def model_ready(self, name: str, version: int | None) -> bool:
        return self.manager.is_ready(name, version)

    def model_metadata(self, name: str, version: int | None) -> dict[str, Any]:
        with self.manager.acquire(name, version) as served:
            return served.metadata(self.manager.versions_of(name))

    def model_stats(self, name: str, version: int | None) -> dict[str, Any]:
        if version is None:
            self.manager.require(name, None)
            found = [s for s in self.manager.all_served() if s.name == name]
        else:
            with self.manager.acquire(name, version) as served:
                found = [served]
        return {"model_stats": [s.stats() for s in found]}

    # ---------------------------------------------------------------- inference

    async def infer(
        self,
        name: str,
        version: int | None,
        request: InferRequest,
        *,
        deadline: float | None = None,
        arrived: float | None = None,
        call: Call | None = None,
    ) -> InferResult:
        """Validate, queue, wait; `deadline` is on the time.monotonic() clock, `arrived`
        (when the transport got the request) on time.perf_counter()'s. `call` (from
        `begin`) is labelled with the version that answers."""
        started = time.perf_counter() if arrived is None else arrived
        key = route_key(request.parameters.get("route_key", call and call.route_key))
        split = self.manager.traffic.split
        answering = version if version is not None else split(name, key, self.draw)
        with self.manager.acquire(name, answering) as served:
            if call is not None:
                call.version = str(served.version)
            inputs = self._validated(name, served, request.inputs)
            deadline = _earliest(deadline, _timeout_deadline(request.parameters))
            priority = _priority(request.parameters)
            outputs = await served.batcher.submit(
                inputs, deadline=deadline, priority=priority, spent_s=self._spent_s(started)
            )
            seconds = time.perf_counter() - started
            self.shadowing.log_answer(
                name, served, version is not None, request.id, inputs, outputs, seconds
            )
            selected, binary = _select_outputs(outputs, request)
            return InferResult(name, served.version, selected, binary, request.id)

    async def predict_v1(
        self,
        name: str,
        body: Any,
        *,
        deadline: float | None = None,
        arrived: float | None = None,
        booleans: bool = True,
        call: Call | None = None,
    ) -> dict[str, Any]:
        """`{"instances": [...]}` → `{"predictions": [...]}` (the KServe v1 shape).

        `booleans`: whether the body may hold a true or false (false only when the raw
        body has neither word), which the instances are then searched for."""
        started = time.perf_counter() if arrived is None else arrived
        key = route_key(call and call.route_key)
        answering = self.manager.traffic.split(name, key, self.draw)
        with self.manager.acquire(name, answering) as served:
            if call is not None:
                call.version = str(served.version)
            try:
                inputs = _instances(body, served.signature, booleans)
            except InvalidTensor as exc:
                self._count_refusal(name, served.version, exc, _instance_count(body))
                raise
            inputs = self._validated(name, served, inputs)
            deadline = _earliest(deadline)
            outputs = await served.batcher.submit(
                inputs, deadline=deadline, spent_s=self._spent_s(started)
            )
            seconds = time.perf_counter() - started
            self.shadowing.log_answer(name, served, False, None, inputs, outputs, seconds)
        names = list(outputs)
        rows = len(next(iter(outputs.values())))
        if len(names) == 1:
            predictions = _rows(outputs[names[0]])
        else:
            columns = {n: _rows(outputs[n]) for n in names}
            predictions = [{n: columns[n][i] for n in names} for i in range(rows)]
        return {"predictions": predictions, "model_version": str(served.version)}

    def _validated(
        self, name: str, served: Served, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        try:
            return validate_inputs(
                inputs,
                served.signature,
                max_rows=self.max_rows,
                allow_non_finite=served.deployment.allow_non_finite,
            )
        except (InvalidTensor, PayloadTooLarge) as exc:
            self._count_refusal(name, served.version, exc, refused_rows(inputs))
            raise

    def _count_refusal(
        self, name: str, version: int, exc: InvalidTensor | PayloadTooLarge, rows: int
    ) -> None:
        if self.log is not None and exc.reason is not None:
            self.log.refused(name, version, exc.reason, rows)

    # ---------------------------------------------------------------- repository

    async def repository_index(self, ready_only: bool) -> list[dict[str, Any]]:
        return await self.manager.index(ready_only)

    async def load(self, name: str, parameters: dict[str, Any]) -> None:
        parameters = dict(parameters)
        version = parameters.pop("version", None)
        if version is not None:
            number = positive_id(version)
            if number is None:
                raise InvalidModelInput(
                    f"load parameter 'version' must be {ID_RULE}, got {str(version)[:40]!r}"
                )
            version = number
        await self.manager.load(name, version, parameters)

    async def unload(self, name: str) -> None:
        await self.manager.unload(name)


def _timeout_deadline(parameters: dict[str, Any]) -> float | None:
    """OIP/Triton `timeout`: microseconds from now; 0 or absent means none."""
    timeout = parameters.get("timeout")
    if timeout is None or timeout == 0:
        return None
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout < 0:
        raise InvalidTensor(
            f"parameter 'timeout' must be a non-negative number of microseconds, got {timeout!r}"
        )
    return time.monotonic() + timeout / 1e6


def _earliest(*deadlines: float | None) -> float | None:
    present = [d for d in deadlines if d is not None]
    if present and min(present) <= time.monotonic():
        raise DeadlineExceeded("the request's deadline had already passed when it arrived")
    return min(present) if present else None


def _priority(parameters: dict[str, Any]) -> int:
    priority = parameters.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
        raise InvalidTensor(
            f"parameter 'priority' must be a non-negative integer, got {priority!r}"
        )
    return priority


def _select_outputs(
    outputs: dict[str, np.ndarray], request: InferRequest
) -> tuple[dict[str, np.ndarray], dict[str, bool]]:
    if request.outputs is None:
        return outputs, {name: request.binary_by_default for name in outputs}
    unknown = sorted(set(request.outputs) - set(outputs))
    if unknown:
        raise InvalidTensor(f"unknown outputs {unknown}; the model returns {list(outputs)}")
    return (
        {name: outputs[name] for name in request.outputs},
        {name: flag or request.binary_by_default for name, flag in request.outputs.items()},
    )


def _instance_count(body: Any) -> int:
    """A refused v1 request's rows: its instances (no tensor was decoded), at least 1."""
    instances = body.get("instances") if isinstance(body, dict) else None
    return max(1, len(instances)) if isinstance(instances, list) else 1


def _instances(body: Any, signature: Any, booleans: bool = True) -> dict[str, np.ndarray]:
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        raise InvalidTensor('the body must be {"instances": [...]} with at least one instance')
    if not body["instances"]:
        raise InvalidTensor(
            'the body must be {"instances": [...]} with at least one instance', "no_rows"
        )
    instances = body["instances"]
    specs = signature.inputs
    if len(specs) == 1:
        spec = specs[0]
        features = signature.feature_names.get(spec.name)
        if features and all(isinstance(i, dict) for i in instances):
            missing = sorted({f for i in instances for f in features if f not in i})
            if missing:
                raise InvalidTensor(
                    f"instances lack features {missing}; expected {features}", "missing_input"
                )
            _refuse_unknown(instances, features, "features")
            rows = [[i[f] for f in features] for i in instances]
        else:
            rows = instances
        return {spec.name: _typed(spec, rows, booleans)}
    if not all(isinstance(i, dict) for i in instances):
        raise InvalidTensor(
            f"this model takes {len(specs)} inputs; each instance must be an object keyed by "
            f"{[s.name for s in specs]}",
            "shape",
        )
    _refuse_unknown(instances, [s.name for s in specs], "inputs")
    return {s.name: _typed(s, [i.get(s.name) for i in instances], booleans) for s in specs}


def _refuse_unknown(instances: list[dict[str, Any]], expected: list[str], what: str) -> None:
    """400 naming the keys of v1 objects that the model does not take (never dropped)."""
    known = set(expected)
    unknown = sorted({key for instance in instances for key in instance if key not in known})
    if unknown:
        raise InvalidTensor(
            f"instances name {what} the model does not take: {unknown[:20]}; expected {expected}",
            "unknown_input",
        )


def _typed(spec: Any, rows: list[Any], booleans: bool = True) -> np.ndarray:
    try:
        loose = np.asarray(rows)
    except ValueError:
        raise InvalidTensor(f"input {spec.name!r}: instances are ragged", "shape") from None
    target = np.dtype(spec.dtype)
    numbers = "biuf" if target.kind == "b" else "iuf"
    if loose.dtype.kind not in numbers or (target.kind != "b" and booleans and holds_boolean(rows)):
        got = "true/false" if loose.dtype.kind in "biuf" else loose.dtype.name
        raise InvalidTensor(
            f"input {spec.name!r}: instances must be numbers, got {got} values", "dtype"
        )
    if (
        target.kind in "iu"
        and loose.dtype.kind == "f"
        and not (np.all(np.isfinite(loose)) and np.array_equal(loose, np.round(loose)))
    ):
        raise InvalidTensor(
            f"input {spec.name!r}: {spec.dtype} instances must be whole numbers", "dtype"
        )
    if loose.size and target.kind in "iuf" and loose.dtype.kind in "iuf":
        # 1e300 as FP32 (or 300 as INT8) would wrap or become inf in the cast.
        top = np.iinfo(target).max if target.kind in "iu" else np.finfo(target).max
        low = np.iinfo(target).min if target.kind in "iu" else -top
        finite = loose[np.isfinite(loose)] if loose.dtype.kind == "f" else loose
        if finite.size and (finite.max() > top or finite.min() < low):
            raise InvalidTensor(
                f"input {spec.name!r}: instances hold values outside the {spec.dtype} range",
                "dtype",
            )
    return loose.astype(target)


def _rows(array: np.ndarray) -> list[Any]:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    return list(array.tolist())
