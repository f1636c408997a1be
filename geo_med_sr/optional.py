"""Optional dependencies, imported when a feature needs them, with an install hint otherwise.

The core (read, super-resolve, write) needs only the required dependencies; ``geo-med-sr
batch`` needs Dask (``pip install 'geo-med-sr[batch]'``) and figures need matplotlib
(``pip install 'geo-med-sr[plot]'``).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from geo_med_sr.errors import DependencyError

#: importable module -> (distribution to install, extra of geo-med-sr that brings it).
OPTIONAL = {
    "distributed": ("distributed", "batch"),
    "dask": ("dask", "batch"),
    "matplotlib": ("matplotlib", "plot"),
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (e.g. ``"matplotlib.pyplot"``) for ``purpose``, or say how to install it.

    Raises:
        DependencyError: the module's distribution is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise  # the module is there but one of its own imports failed: not ours to explain
        distribution, extra = OPTIONAL.get(top, (top, None))
        hint = (
            f"pip install 'geo-med-sr[{extra}]' (or pip install {distribution})"
            if extra
            else f"pip install {distribution}"
        )
        raise DependencyError(f"{purpose} needs {distribution}, which is not installed; {hint}") from exc


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module.split(".")[0]) is not None
