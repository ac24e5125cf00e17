"""A retraining worker that only claims: `python -m tests.support.claim_worker URL NAME`.

Waits for the file named by argv[3] to exist (so both workers start claiming together),
then claims tasks until none is open, printing each claimed id on its own line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from monitors.tasks.store import TaskStore
from registry.db import Database


def main() -> None:
    url, name, start = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    store = TaskStore(Database(url))
    while not start.exists():
        time.sleep(0.005)
    while (task := store.claim(name)) is not None:
        print(task.id, flush=True)


if __name__ == "__main__":
    main()
