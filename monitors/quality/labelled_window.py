"""Logged rows joined with their ground truth: what a retrainer trains and evaluates on.

`labelled_window(log_dir, store, model, version, start=, end=)` reads the window from the
inference log (`read_log`), fetches the labels of the window's request ids from the
feedback store (by id, so a label that arrived long after its row, or before it was
logged, joins the same way), and inner-joins them on (request_id, row) with one pandas
merge. The result keeps the log's order (oldest first), its columns and tensors, plus the
labels.

Nothing is dropped silently; what did not join is counted:
- `logged_rows - labelled_rows`: logged rows of the window without a label (yet);
- `unmatched_ids`: labels received in `[start, end)` whose (request_id, row) is not a row of
  this window: rows logged before `start`, by another version, sampled out of the log,
  or never served (a wrong id);
- `duplicate_rows`: logged rows whose (request_id, row) a newer row of the window also
  has (a client reusing ids); the label goes with the newest one only.

Label columns are `label`, or `label_0..label_{k-1}` for list labels; when the log already
has a column of that name (an output called `label`), an underscore is put before it until
none clashes: read `label_columns`, don't assume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitors.log.reader import LogWindow, read_log
from monitors.quality.feedback import FeedbackStore
from registry.errors import BadRequest

__all__ = ["LabelledWindow", "labelled_window"]


@dataclass(frozen=True, eq=False)  # DataFrames and arrays have no plain ==
class LabelledWindow:
    rows: LogWindow
    """The labelled logged rows only, as the log reader gives them (no label columns)."""
    frame: pd.DataFrame
    """`rows.frame` with the label column(s) added."""
    labels: np.ndarray
    """One label per labelled row, in `frame`'s order: shape (n,) or (n, k) for lists."""
    label_columns: tuple[str, ...]
    logged_rows: int
    """Every row the log holds for the window, labelled or not."""
    unmatched_ids: int
    duplicate_rows: int = 0
    skipped: tuple[Path, ...] = field(default=())
    """Log segments that could not be read."""

    @property
    def labelled_rows(self) -> int:
        return len(self.labels)

    def tensors(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The labelled rows' input and output tensors, aligned with `labels`."""
        return self.rows.tensors()


def labelled_window(
    log_dir: Path,
    store: FeedbackStore,
    model: str,
    version: int | None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> LabelledWindow:
    """The logged rows of `[start, end)` that have labels, with them; see the module doc."""
    window = read_log(log_dir, model, version, start=start, end=end)
    logged = window.frame
    keys = pd.DataFrame(
        {
            "request_id": logged["request_id"].astype("str"),
            "row": logged["row"].astype("int64"),
            "_position": np.arange(len(logged)),
        }
    )
    labels = store.labels_for(model, keys["request_id"].unique().tolist())
    joined = keys.merge(labels[["request_id", "row", "label"]], on=["request_id", "row"])
    # The window is oldest first: of several rows with one key, keep the newest.
    newest = joined.sort_values("_position").drop_duplicates(["request_id", "row"], keep="last")
    positions = newest["_position"].to_numpy()
    values = _label_array(newest["label"].tolist(), model)

    rows = window.sample(positions)
    names = _label_names(values, set(logged.columns))
    frame = rows.frame.copy()
    if values.ndim == 1:
        frame[names[0]] = values
    else:
        for j, name in enumerate(names):
            frame[name] = values[:, j]
    return LabelledWindow(
        rows=rows,
        frame=frame,
        labels=values,
        label_columns=names,
        logged_rows=window.rows,
        unmatched_ids=_unmatched(store.received_keys(model, start, end), keys),
        duplicate_rows=len(joined) - len(newest),
        skipped=window.skipped,
    )


def _label_array(values: list[Any], model: str) -> np.ndarray:
    if not values:
        return np.empty(0, dtype=np.float64)
    shapes = pd.Series([len(v) if isinstance(v, list) else 0 for v in values]).value_counts()
    if len(shapes) > 1:
        found = ", ".join(
            f"{n} {'numbers' if size == 0 else f'lists of {size}'}" for size, n in shapes.items()
        )
        raise BadRequest(
            f"the labels of {model} in this window have different shapes ({found}); "
            "post the right label again for the wrong rows: it replaces the old one"
        )
    return np.asarray(values)


def _label_names(values: np.ndarray, taken: set[str]) -> tuple[str, ...]:
    base = "label"
    while True:
        if values.ndim == 1:
            names: tuple[str, ...] = (base,)
        else:
            names = tuple(f"{base}_{j}" for j in range(values.shape[1]))
        if not taken & set(names):
            return names
        base = f"_{base}"


def _unmatched(received: pd.DataFrame, keys: pd.DataFrame) -> int:
    if received.empty:
        return 0
    logged = pd.MultiIndex.from_frame(keys[["request_id", "row"]])
    found = pd.MultiIndex.from_frame(received[["request_id", "row"]]).isin(logged)
    return int((~found).sum())
