"""`/metrics` that adds up across worker processes.

Each worker keeps its own in-process collectors (custom scrape-time collectors included,
which prometheus-client's multiprocess mode cannot carry) and answers, on a Unix socket in
the gateway's worker folder, with its own exposition. The worker that gets a scrape asks
every live sibling for theirs and merges them:

- counters, histograms and summaries are summed per label set (`_created`: the earliest);
- gauges that are per-process amounts (`SUMMED_GAUGES`: rows queued) are summed;
- every other gauge is the same published figure in every worker (drift, quality, tasks,
  model info, queue bound) or a per-process reading whose worst value matters (event-loop
  lag): the maximum.

A worker that is restarting is skipped for that scrape. NOTE: a crashed worker's counts
leave the sum with it, which Prometheus reads as a counter reset, as it would a restarted
single-process gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

__all__ = ["SUMMED_GAUGES", "MetricsExchange", "merge_expositions", "merged_registry"]

SUMMED_GAUGES = frozenset({"mlgate_queue_depth"})
_ADDITIVE_TYPES = frozenset({"counter", "histogram", "summary", "gaugehistogram"})
_SIBLING_TIMEOUT_S = 5.0


class MetricsExchange:
    """This worker's exposition served on `<folder>/metrics-<slot>.sock`; `collect()` merges
    every live worker's."""

    def __init__(self, folder: Path, slot: int, registry: CollectorRegistry) -> None:
        self.folder = folder
        self.path = folder / f"metrics-{slot}.sock"
        self.registry = registry
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)  # left by this slot's previous, crashed worker
        self._server = await asyncio.start_unix_server(self._answer, path=str(self.path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _answer(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(generate_latest(self.registry))
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def collect(self) -> bytes:
        """Every live worker's metrics, merged, as Prometheus text."""
        return generate_latest(await self.merged())

    async def merged(self) -> CollectorRegistry:
        """Every live worker's metrics, merged, as a registry (what /dashboard samples)."""
        texts = [generate_latest(self.registry)]
        siblings = [p for p in sorted(self.folder.glob("metrics-*.sock")) if p != self.path]
        answers = await asyncio.gather(*(_ask(p) for p in siblings))
        texts += [a for a in answers if a is not None]
        return merged_registry(texts)


async def _ask(path: Path) -> bytes | None:
    try:
        async with asyncio.timeout(_SIBLING_TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                return await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None  # a worker restarting: it is skipped for this scrape


def merge_expositions(texts: Iterable[bytes]) -> bytes:
    """Prometheus text expositions from several workers → one, by the rules above."""
    return generate_latest(merged_registry(texts))


def merged_registry(texts: Iterable[bytes]) -> CollectorRegistry:
    """Expositions from several workers → one registry holding the merged families."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text.decode()):
            families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            summed = family.type in _ADDITIVE_TYPES or family.name in SUMMED_GAUGES
            merged = values.setdefault(family.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                seen = merged.get(key)
                if seen is None:
                    merged[key] = sample.value
                elif sample.name.endswith("_created"):
                    merged[key] = min(seen, sample.value)
                elif summed:
                    merged[key] = seen + sample.value
                else:
                    merged[key] = max(seen, sample.value)
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return registry


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)

    def describe(self) -> Iterator[Metric]:
        return iter(())
