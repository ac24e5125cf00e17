"""Debian's Chromium for the browser tests, driven by Playwright without its own browsers.

`ensure_chromium()` returns `/usr/bin/chromium`, installing Debian's `chromium` package
when it is missing (root with apt-get only; otherwise a clear error, never a skip), the same
way `pgserver.py` installs PostgreSQL. `playwright install` is never run: its browser
downloads come from the internet, and the system build is what the tests should drive.

`LAUNCH_ARGS` keep a headless run self-contained: no sandbox (containers run as root),
no GPU, and none of Chromium's own background traffic (component updates, sync, field
trials), so that every request a page makes is one the page itself asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.debian import apt_install

__all__ = ["CHROMIUM", "LAUNCH_ARGS", "ensure_chromium"]

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def ensure_chromium() -> Path:
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    apt_install("chromium", f"{CHROMIUM} is missing")
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"installed Debian's chromium package but found no {CHROMIUM}")
    return CHROMIUM
