"""A registering process for the concurrency and crash tests.

    python -m tests.support.register_worker --url URL --home DIR --name NAME --count N
        [--pause-at STAGE]

Prints `STAGE <name>` before each registration stage and `DONE <ref>` after each
version. With --pause-at, it sleeps at that stage so the test can kill it there.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
import torch

from registry import Registry
from tests.fixtures import make_mlp


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--pause-at")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    registry = Registry(url=args.url, home=args.home)

    def progress(stage: str) -> None:
        print(f"STAGE {stage}", flush=True)
        if stage == args.pause_at:
            time.sleep(600)

    rng = np.random.default_rng(args.seed)
    features = [f"f{i}" for i in range(6)]
    for index in range(args.count):
        model = make_mlp(seed=args.seed * 1000 + index)
        reference = pd.DataFrame(rng.standard_normal((500, 6)).astype(np.float32), columns=features)
        version = registry.register(
            model,
            args.name,
            torch.randn(4, 6),
            feature_names=features,
            reference=reference,
            factory="tests.fixtures:make_mlp",
            factory_kwargs={"seed": args.seed * 1000 + index},
            progress=progress,
        )
        print(f"DONE {version.ref}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
