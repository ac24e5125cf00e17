"""Live model quality: labels that come back as feedback, quality realised from them and
estimated before they arrive, data quality, and the policy that turns evidence of harm into
a retraining task."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.lazy import lazy_names

if TYPE_CHECKING:
    from monitors.quality.feedback import FeedbackStore
    from monitors.quality.labelled_window import labelled_window

__all__ = ["FeedbackStore", "labelled_window"]

__getattr__ = lazy_names(
    __name__,
    {
        "FeedbackStore": "monitors.quality.feedback",
        "labelled_window": "monitors.quality.labelled_window",
    },
)
