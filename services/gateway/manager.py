"""The model manager: which versions are loaded, which one answers, and hot swaps.

Every `poll_interval_s` the manager reads where the served aliases point (one query) and
converges: it loads versions that are wanted, and once a new version is loaded and warm,
points its model's route at it in one assignment. Only then is the old version retired:
it waits until no request holds it, stops taking new ones, finishes its queue and frees
its runtime. A request therefore always reaches a version that is ready, so a promotion
fails no request.

Opening and closing one version is `loading.py`. A version that fails to load is recorded
with its reason and left alone for `load_retry_s`; it makes only its own model not ready
(or, during a swap, leaves the old version serving). Explicit loads and unloads (the
repository API) take precedence over the aliases: an unloaded model stays unloaded until
it is loaded again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from monitors.metrics.collectors import GatewayMetrics, ServedView
from registry.errors import MlgateError
from registry.store import Registry
from services.gateway import memory
from services.gateway.deployment import parse_overrides
from services.gateway.errors import ModelNotLoaded, ModelNotReady
from services.gateway.loading import close_version, open_version
from services.gateway.served import Served
from services.gateway.settings import GatewaySettings
from services.gateway.traffic import TrafficRules

__all__ = ["ModelManager"]

log = logging.getLogger("mlgate.gateway")
Key = tuple[str, int]


class ModelManager:
    def __init__(
        self,
        registry: Registry,
        settings: GatewaySettings,
        *,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self._aliases: dict[Key, tuple[str, ...]] = {}
        self._served: dict[Key, Served] = {}
        self._routes: dict[str, int] = {}
        self._loading: set[Key] = set()
        self._failed: dict[Key, tuple[str, float]] = {}
        self._explicit: dict[str, set[int]] = {}
        self._disabled: set[str] = set()
        self.traffic = TrafficRules()  # shadows and canaries of the served aliases
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._changed = False
        self._retired = False  # a version was retired since the last full collection
        self.synced = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self.sync()
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._lock:
            for served in list(self._served.values()):
                await self._retire(served)
            self._routes.clear()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.sync()
            except Exception:
                log.exception("model sync failed; serving what is loaded and trying again")

    # ---------------------------------------------------------------- requests

    @contextlib.contextmanager
    def acquire(self, name: str, version: int | None = None) -> Iterator[Served]:
        """The version a request should use, held until the request is done."""
        served = self._find(name, version)
        served.enter()
        try:
            yield served
        finally:
            served.leave()

    def _find(self, name: str, version: int | None) -> Served:
        if version is None:
            routed = self._routes.get(name)
            if routed is None:
                raise self._not_available(name, None)
            version = routed
        served = self._served.get((name, version))
        if served is None or served.state != "READY":
            raise self._not_available(name, version)
        return served

    def _not_available(self, name: str, version: int | None) -> MlgateError:
        label = name if version is None else f"{name}:{version}"
        keys = [
            k for k in (*self._failed, *self._loading) if k[0] == name and version in (None, k[1])
        ]
        for key in keys:
            if key in self._loading:
                return ModelNotReady(f"model {label} is loading; retry shortly")
            return ModelNotReady(f"model {label} failed to load: {self._failed[key][0]}")
        if name in self._disabled:
            return ModelNotReady(f"model {name} was unloaded; load it through the repository API")
        if version is not None and (name, version) in self._served:
            return ModelNotReady(f"model {label} is being unloaded")
        return ModelNotLoaded(
            f"model {label} is not served here (served: {', '.join(self.route_names()) or 'none'})"
        )

    def route_names(self) -> list[str]:
        return sorted(self._routes)

    def versions_of(self, name: str) -> list[int]:
        return sorted(v for (n, v), s in self._served.items() if n == name and s.state == "READY")

    def require(self, name: str, version: int | None) -> None:
        """Raise the 404/503 a request for this model would get, if any."""
        self._find(name, version)

    def is_ready(self, name: str, version: int | None = None) -> bool:
        try:
            self._find(name, version)
        except MlgateError:
            return False
        return True

    def all_served(self) -> list[Served]:
        return list(self._served.values())

    def knows(self, name: str) -> bool:
        """Whether `name` is a model this gateway serves (bounds metric labels)."""
        return name in self._routes or any(n == name for n, _ in self._served)

    def routed_version(self, name: str) -> int | None:
        return self._routes.get(name)

    def served_views(self) -> list[ServedView]:
        """What /metrics reports of each ready version, read when Prometheus scrapes."""
        return [
            ServedView(
                s.name,
                s.version,
                s.kind,
                self._aliases.get(key, ()),
                s.batcher.queued_rows,
                s.batcher.settings.max_queue,
                self.traffic.role(key, bool(self._aliases.get(key))),
            )
            for key, s in list(self._served.items())
            if s.state == "READY"
        ]

    # ---------------------------------------------------------------- converging

    async def sync(self) -> None:
        async with self._lock:
            targets = await asyncio.to_thread(
                self.registry.alias_targets, self.settings.serve_aliases
            )
            wanted: dict[str, list[int]] = {}
            aliases: dict[Key, tuple[str, ...]] = {}
            for name, by_alias in targets.items():
                for alias, version in by_alias.items():
                    aliases[(name, version)] = (*aliases.get((name, version), ()), alias)
                if name in self._disabled:
                    continue
                for alias in self.settings.serve_aliases:
                    if alias in by_alias:
                        wanted.setdefault(name, []).append(by_alias[alias])
            for name, explicit in self._explicit.items():
                wanted.setdefault(name, []).extend(sorted(explicit, reverse=True))
            rules = await asyncio.to_thread(
                TrafficRules.read, self.registry, self.settings.serve_aliases, targets
            )
            extra = [k for k in rules.versions() if k[0] not in self._disabled]
            for key in extra:
                if key not in self._served and not self._recently_failed(key):
                    await self._load(key)
            for name, versions in wanted.items():
                for version in dict.fromkeys(versions):
                    if (name, version) not in self._served and not self._recently_failed(
                        (name, version)
                    ):
                        await self._load((name, version))
                self._route(name, versions)
            stamps = await asyncio.to_thread(self.registry.serving_config_stamps, list(wanted))
            for key, served in list(self._served.items()):
                name, version = key
                # A routed version stays until its replacement is ready (a failed swap
                # leaves it serving); it goes only when its model is no longer wanted.
                routed = name in wanted and self._routes.get(name) == version
                shadow = (name, version) in extra
                if version not in wanted.get(name, []) and not routed and not shadow:
                    await self._retire(served)
                elif served.state == "READY" and stamps.get(key) != served.config_stamp:
                    await self._reload(served)
            for name in list(self._routes):
                if name not in wanted:
                    del self._routes[name]
            self._aliases = aliases
            self.traffic = rules.ready(self._served)
            if self._changed:
                self._changed = memory.settle_new()
            batchers = [s.batcher for s in self._served.values()]
            if self._retired and memory.settle_all_if_quiet(batchers):
                self._retired = False  # a retired version's cycles, collected once quiet
            self.synced = True

    def _recently_failed(self, key: Key) -> bool:
        failure = self._failed.get(key)
        return failure is not None and time.monotonic() - failure[1] < self.settings.load_retry_s

    def _route(self, name: str, versions: list[int]) -> None:
        """Point the model at its first wanted version that is ready; else keep the old one."""
        for version in versions:
            served = self._served.get((name, version))
            if served is not None and served.state == "READY":
                if self._routes.get(name) != version:
                    log.info("model %s now answers with version %s", name, version)
                self._routes[name] = version
                return

    async def _load(self, key: Key, overrides: Mapping[str, Any] | None = None) -> Served | None:
        name, version = key
        self._loading.add(key)
        try:
            served = await open_version(
                self.registry, self.settings, self.metrics, name, version, overrides
            )
        except Exception as exc:  # noqa: BLE001 - any load failure is recorded, never fatal
            reason = str(exc) if isinstance(exc, MlgateError) else f"{type(exc).__name__}: {exc}"
            log.error("could not load %s:%s: %s", name, version, reason)
            self._failed[key] = (reason, time.monotonic())
            return None
        finally:
            self._loading.discard(key)
        self._failed.pop(key, None)
        self._served[key] = served  # replaces an older copy of the same version in one step
        self._changed = True
        log.info(
            "loaded %s:%s (%s, %s)", name, version, served.kind, served.runtime.info().get("device")
        )
        return served

    async def _retire(self, served: Served) -> None:
        """Unload a version once no request holds it. A replaced copy (same version, new
        settings) is retired the same way, but its successor keeps the key and the route."""
        key = (served.name, served.version)
        current = self._served.get(key) is served
        if current and self._routes.get(served.name) == served.version:
            del self._routes[served.name]
        await close_version(served, self.settings.drain_timeout_s)
        if current:
            self._served.pop(key, None)
        self._changed = self._retired = True
        log.info("unloaded %s:%s", *key)

    # ---------------------------------------------------------------- repository API

    async def load(self, name: str, version: int | None, overrides: Mapping[str, Any]) -> Served:
        """Load (or reload with new serving settings) a version and keep it loaded."""
        overrides = parse_overrides(overrides)
        if version is None:
            version = await asyncio.to_thread(self._default_version, name)
        else:
            await asyncio.to_thread(self.registry.get, f"{name}:{version}")
        async with self._lock:
            key = (name, version)
            self._disabled.discard(name)
            self._explicit.setdefault(name, set()).add(version)
            self._failed.pop(key, None)
            old = self._served.get(key)
            if old is not None and not overrides:
                self._route(name, [self._routes.get(name, version)])
                return old
            if old is not None:
                fresh = await self._reload(old, overrides)
            else:
                fresh = await self._load(key, overrides)
            if fresh is None:
                raise ModelNotReady(
                    f"model {name}:{version} failed to load: {self._failed[key][0]}"
                )
            if name not in self._routes or self._routes[name] == version:
                self._routes[name] = version
            self._changed = memory.settle_new()
            return fresh

    async def _reload(
        self, old: Served, overrides: Mapping[str, Any] | None = None
    ) -> Served | None:
        """Load a fresh copy of a served version (new settings); the old one serves meanwhile."""
        fresh = await self._load((old.name, old.version), overrides)
        if fresh is not None:
            await self._retire(old)
        return fresh

    def _default_version(self, name: str) -> int:
        targets = self.registry.alias_targets(self.settings.serve_aliases).get(name, {})
        for alias in self.settings.serve_aliases:
            if alias in targets:
                return targets[alias]
        return self.registry.get(f"{name}@latest").version

    async def unload(self, name: str) -> None:
        """Unload every version of a model and keep it unloaded until it is loaded again."""
        await asyncio.to_thread(self.registry.get, name)  # 404 for unknown models
        async with self._lock:
            self._disabled.add(name)
            self._explicit.pop(name, None)
            for key, served in list(self._served.items()):
                if key[0] == name:
                    await self._retire(served)
            self._routes.pop(name, None)
            self._changed = memory.settle_new()

    async def index(self, ready_only: bool) -> list[dict[str, Any]]:
        summaries = await asyncio.to_thread(self.registry.models)
        entries: list[dict[str, Any]] = []
        for summary in summaries:
            name = summary.name
            rows = [
                {"name": name, "version": str(v), "state": s.state, "reason": ""}
                for (n, v), s in sorted(self._served.items())
                if n == name
            ]
            rows += [
                {"name": name, "version": str(v), "state": "LOADING", "reason": ""}
                for (n, v) in sorted(self._loading)
                if n == name
            ]
            rows += [
                {"name": name, "version": str(v), "state": "UNAVAILABLE", "reason": reason}
                for (n, v), (reason, _) in sorted(self._failed.items())
                if n == name and (n, v) not in self._served
            ]
            if not rows:
                why = "unloaded" if name in self._disabled else "not loaded"
                rows = [{"name": name, "state": "UNAVAILABLE", "reason": why}]
            entries += rows
        return [e for e in entries if e["state"] == "READY"] if ready_only else entries
