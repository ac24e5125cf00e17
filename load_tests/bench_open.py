"""What opening the registry's database costs a process: the schema check at every start.

    python -m load_tests.bench_open [CHECKOUT ...] [--runs 15]

Each CHECKOUT (default: the current directory) is a work tree of this repository (`git
archive <commit> | tar -x -C /tmp/before` gives a before to compare with). Each gets its own
SQLite database in a temporary folder, created by its own code on a first open (so a
checkout from before migrations and one after never share a database), then, alternating
between checkouts run by run, in fresh interpreters:

    import   importing registry.db and monitors.schema
    open     the first use of the database: the registry's schema check
             (Database.ensure_schema) and monitoring's (ensure_tables), on a database
             that is already up to date
    models   `python -m services.cli models` on that database, to its exit

Figures are the median (and min, max) wall time of `--runs` runs, and whether the opening
process imported Alembic. A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OPEN = """
import sys, time

started = time.perf_counter()
from registry.db import Database
from monitors.schema import ensure_tables

db = Database(sys.argv[1])
imported = time.perf_counter()
db.ensure_schema()
ensure_tables(db)
opened = time.perf_counter()
print(imported - started, opened - imported, "alembic" in sys.modules)
"""


def _open(checkout: Path, url: str) -> tuple[float, float, bool]:
    out = subprocess.run(
        [sys.executable, "-c", OPEN, url], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1]), out[2] == "True"


def _models(checkout: Path, url: str, home: Path) -> float:
    env = {**os.environ, "MLGATE_REGISTRY_URL": url, "MLGATE_HOME": str(home)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "services.cli", "models"],
        cwd=checkout,
        env=env,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="*", type=Path, default=[Path.cwd()])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkouts]
    figures: dict[str, dict[str, list[float]]] = {}
    alembic: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="mlgate-bench-open-") as scratch:
        urls = {}
        for n, checkout in enumerate(checkouts):
            urls[checkout] = f"sqlite:///{Path(scratch) / f'registry-{n}.db'}"
            _open(checkout, urls[checkout])  # created (or migrated) by this checkout's code
        for _ in range(args.runs):
            for checkout in checkouts:
                name = str(checkout)
                imported, opened, with_alembic = _open(checkout, urls[checkout])
                models = _models(checkout, urls[checkout], Path(scratch) / "home")
                runs = figures.setdefault(name, {"import": [], "open": [], "models": []})
                runs["import"].append(imported)
                runs["open"].append(opened)
                runs["models"].append(models)
                alembic[name] = alembic.get(name, False) or with_alembic
    for name, runs in figures.items():
        print(f"{name} (imported Alembic: {'yes' if alembic[name] else 'no'})")
        for what, values in runs.items():
            print(
                f"  {what:7} {1000 * statistics.median(values):8.1f} ms "
                f"({1000 * min(values):.1f}–{1000 * max(values):.1f})"
            )


if __name__ == "__main__":
    main()
