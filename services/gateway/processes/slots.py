"""Worker slots: which worker of a gateway this process is.

Each worker takes the lowest free `slot-<i>.lock` in the gateway's worker folder (an
exclusive `flock`, released by the kernel when the process dies, so a replacement takes
the slot of the worker it replaces). Slot 0 is the leader: it runs what is done once per
gateway (the monitoring rounds, the in-process retrainer).
"""

from __future__ import annotations

import fcntl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["WorkerSlot", "claim_slot"]


@dataclass(frozen=True)
class WorkerSlot:
    """Which worker this process is (0 runs the monitor), of how many, sharing `folder`."""

    index: int
    workers: int
    folder: Path
    lock: IO[str]

    @property
    def leader(self) -> bool:
        return self.index == 0


def claim_slot(folder: Path, workers: int, *, wait_s: float = 60.0) -> WorkerSlot:
    """The lowest slot no live worker holds (a worker replacing a dead one may start before
    the kernel has released its slot: it waits for it)."""
    deadline = time.monotonic() + wait_s
    while True:
        for index in range(workers):
            handle = (folder / f"slot-{index}.lock").open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return WorkerSlot(index, workers, folder, handle)
        if time.monotonic() > deadline:
            raise RuntimeError(f"all {workers} worker slots in {folder} are held")
        time.sleep(0.05)
