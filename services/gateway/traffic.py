"""The traffic rules of the aliases a gateway serves: each model's shadow (a copy of its
routed requests, registry/shadows.py) and canary (a share of them, registry/canaries.py),
read in one go at every poll of the model manager. For each model, the first served alias
that has a rule gives it, and only while that alias points to a version."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from registry.canaries import Canary
from registry.errors import BadRequest
from registry.store import Registry
from services.gateway.served import Served

__all__ = ["ROUTE_HEADER", "TrafficRules", "route_key"]

Key = tuple[str, int]
ROUTE_HEADER = "x-route-key"
"""A request's key for a canary split (or the OIP parameter `route_key`): the same key always
reaches the same version while one canary runs."""
_MAX_KEY = 256


def route_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_KEY:
        raise BadRequest(
            f"the route key (parameter 'route_key' or {ROUTE_HEADER}) must be a string of 1 "
            f"to {_MAX_KEY} characters, got {str(value)[:40]!r}"
        )
    return value


@dataclass(frozen=True)
class TrafficRules:
    shadows: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    """model → (the version its alias answers with, the shadow, the rate)."""
    canaries: dict[str, Canary] = field(default_factory=dict)
    ready_canaries: frozenset[str] = frozenset()
    """Models whose canary is loaded and ready: only those are split."""

    @classmethod
    def read(
        cls, registry: Registry, aliases: Sequence[str], targets: Mapping[str, Mapping[str, int]]
    ) -> TrafficRules:
        shadows: dict[str, tuple[int, int, float]] = {}
        for name, by_alias in registry.shadows.targets(aliases).items():
            alias = _first(aliases, targets.get(name, {}), by_alias)
            if alias is not None:
                shadow, rate = by_alias[alias]
                shadows[name] = (targets[name][alias], shadow, rate)
        canaries: dict[str, Canary] = {}
        for name, running in registry.canaries.running(aliases).items():
            routed = next((a for a in aliases if a in targets.get(name, {})), None)
            if routed is not None and routed in running:
                canaries[name] = running[routed]
        return cls(shadows, canaries)

    def versions(self) -> list[Key]:
        """The versions the rules need loaded, besides the aliases' own."""
        found = [(name, rule[1]) for name, rule in self.shadows.items()]
        return found + [(name, canary.version) for name, canary in self.canaries.items()]

    def ready(self, served: Mapping[Key, Served]) -> TrafficRules:
        """The same rules, knowing which canaries are loaded and ready to answer."""
        ready = frozenset(
            name
            for name, canary in self.canaries.items()
            if (found := served.get((name, canary.version))) is not None and found.state == "READY"
        )
        return TrafficRules(self.shadows, self.canaries, ready)

    def canary_for(self, name: str) -> Canary | None:
        return self.canaries.get(name) if name in self.ready_canaries else None

    def split(self, name: str, key: str | None, draw: Callable[[], float]) -> int | None:
        """The canary's version for a request routed by `name`'s alias, or None (the alias's
        own): by the key's hash when there is one, else by `draw()`."""
        canary = self.canary_for(name)
        if canary is None:
            return None
        if key is None:
            share = draw()
        else:  # the canary's id too: a new canary draws its keys afresh
            digest = hashlib.sha256(f"{canary.id}:{key}".encode()).digest()
            share = int.from_bytes(digest[:8], "big") / 2**64
        return canary.version if share < canary.weight else None

    def shadow_for(self, name: str, version: int) -> tuple[int, float] | None:
        """(shadow version, rate) when requests `version` answers for `name` are mirrored."""
        found = self.shadows.get(name)
        return None if found is None or found[0] != version else found[1:]

    def role(self, key: Key, aliased: bool) -> str:
        name, version = key
        shadow = self.shadows.get(name)
        if shadow is not None and shadow[1] == version:
            return "shadow"
        canary = self.canaries.get(name)
        if canary is not None and canary.version == version:
            return "canary"
        return "serving" if aliased else "loaded"


def _first(
    aliases: Sequence[str], routed: Mapping[str, int], ruled: Mapping[str, object]
) -> str | None:
    return next((a for a in aliases if a in ruled and a in routed), None)
