"""A person's decision on a retraining task: approve (promote the candidate) or reject."""

from __future__ import annotations

from monitors.tasks.records import Task
from monitors.tasks.store import TaskStore
from registry.store import Registry

__all__ = ["approve_task", "reject_task"]


def approve_task(
    tasks: TaskStore, registry: Registry, task_id: int, *, alias: str, reason: str, actor: str
) -> Task:
    """Promote a candidate: move `alias` to its version (audited), then mark it promoted."""
    task = tasks.get(task_id)
    if task.status != "candidate" or task.candidate_version is None:
        # The store refuses the move, naming the statuses that are allowed.
        return tasks.transition(task_id, "promoted", reason=reason, actor=actor, expect="candidate")
    registry.set_alias(
        task.model,
        alias,
        task.candidate_version,
        reason=f"retraining task {task_id} approved by {actor}: {reason}",
    )
    return tasks.transition(
        task_id,
        "promoted",
        reason=f"approved: {reason}; {alias} → {task.model}:{task.candidate_version}",
        actor=actor,
        expect="candidate",
    )


def reject_task(tasks: TaskStore, task_id: int, *, reason: str, actor: str) -> Task:
    return tasks.transition(task_id, "rejected", reason=f"rejected: {reason}", actor=actor)
