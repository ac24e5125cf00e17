"""Retraining tasks and the alerts that open them.

`store.TaskStore` holds tasks and their audited events (`records`), opened once per key;
`decisions` approves or rejects one; `webhook` tells a URL about each change; an
Alertmanager webhook opens tasks through `alertmanager`, and `alert_policy` decides which
drift alerts deserve one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.lazy import lazy_names

if TYPE_CHECKING:
    from monitors.tasks.records import Task, TaskEvent
    from monitors.tasks.store import TaskStore

__all__ = ["Task", "TaskEvent", "TaskStore"]

__getattr__ = lazy_names(
    __name__,
    {
        "Task": "monitors.tasks.records",
        "TaskEvent": "monitors.tasks.records",
        "TaskStore": "monitors.tasks.store",
    },
)
