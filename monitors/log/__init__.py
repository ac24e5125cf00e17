"""The inference log: every served request's inputs and outputs, sampled, as Parquet.

The gateway writes it (`inference_log.InferenceLog`, staging rows off the request path in
`batches`, writing segments in `writer` and per-segment counts in `counts_writer`; which
requests are kept is `sampling`); monitoring reads it back (`reader.read_log` for a window,
`counts.read_counts` for the counts alone). `segments` is the on-disk layout both share, and
`recent_ids` the request ids that feedback may still name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.lazy import lazy_names

if TYPE_CHECKING:
    from monitors.log.counts import read_counts
    from monitors.log.inference_log import InferenceLog
    from monitors.log.reader import LogWindow, read_log
    from monitors.log.settings import LogSettings

__all__ = ["InferenceLog", "LogSettings", "LogWindow", "read_counts", "read_log"]

__getattr__ = lazy_names(
    __name__,
    {
        "InferenceLog": "monitors.log.inference_log",
        "LogSettings": "monitors.log.settings",
        "LogWindow": "monitors.log.reader",
        "read_counts": "monitors.log.counts",
        "read_log": "monitors.log.reader",
    },
)
