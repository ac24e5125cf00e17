"""Installing a Debian package the tests need (PostgreSQL, Prometheus, Chromium).

The test machines and CI are Debian and run as root; a machine that is neither gets a
clear error naming the package instead of a skipped test.
"""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["apt_install"]


def apt_install(package: str, why: str) -> None:
    """`apt-get install --no-install-recommends <package>`, or an error saying `why`."""
    apt_get = shutil.which("apt-get")
    if os.geteuid() != 0 or apt_get is None:
        raise RuntimeError(
            f"{why} and cannot be installed here (needs root and apt-get): install Debian's "
            f"{package} package (apt-get install --no-install-recommends {package})"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt_get, "update", "-qq"], check=True, env=env)
    subprocess.run(
        [apt_get, "install", "-y", "-qq", "--no-install-recommends", package],
        check=True,
        env=env,
    )
