"""A package's face that hands on names from its modules without importing them first.

`monitors.log` re-exports `read_log`, but importing `monitors.log.segments` must not pull
in pandas through the reader: a package's `__init__` runs before any of its modules. A face
therefore maps each public name to the module that defines it, and imports that module the
first time the name is read (PEP 562). Type checkers see the same names through the face's
`if TYPE_CHECKING:` imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

__all__ = ["lazy_names"]


def lazy_names(package: str, names: Mapping[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for `package` that resolves `names` (name → module)."""

    def resolve(name: str) -> object:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals_ = importlib.import_module(package).__dict__
        globals_[name] = value  # read once; later reads do not come back here
        return value

    return resolve
