"""Retraining: a task's candidate trained and registered (`candidate`), judged against the
serving version on held-out rows (`judge`), and promoted or not (`retrainer.Retrainer`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.lazy import lazy_names

if TYPE_CHECKING:
    from services.retraining.retrainer import Retrainer, RetrainSettings

__all__ = ["RetrainSettings", "Retrainer"]

__getattr__ = lazy_names(
    __name__,
    {
        "RetrainSettings": "services.retraining.retrainer",
        "Retrainer": "services.retraining.retrainer",
    },
)
