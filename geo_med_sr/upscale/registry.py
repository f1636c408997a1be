"""The names of the upscale methods (torch-free): :data:`METHODS`, their :class:`MethodSpec` and kinds.

The configuration (:mod:`geo_med_sr.upscale.config`) validates ``model.method`` against
:data:`METHODS` and the command line takes its ``--method`` choices from it;
:mod:`geo_med_sr.upscale.methods` decides what a name runs (:func:`~geo_med_sr.upscale.methods.resolve_method`)
and builds it. Nothing here imports torch or the methods module, so the configuration and the
methods never import each other.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from geo_med_sr.errors import ConfigError
from geo_med_sr.registry import Registry

if TYPE_CHECKING:
    from geo_med_sr.inference.protocols import Upsampler

__all__ = ["CLASSICAL", "METHODS", "MODEL", "SELF", "MethodSpec", "learned_methods"]

#: kinds of method.
CLASSICAL, MODEL, SELF = "classical", "model", "self"


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its ``kind`` and, for classical ones, the upsampler class
    (``"module:Class"``, imported when the method is built: the registry itself stays torch-free)."""

    kind: str
    upsampler: str | None = None
    description: str = ""

    def upsampler_class(self) -> Callable[[int | Sequence[int]], Upsampler]:
        """The classical upsampler class (imports its module)."""
        module, _, name = str(self.upsampler).partition(":")
        return getattr(importlib.import_module(module), name)


#: name -> MethodSpec: every ``--method`` there is.
METHODS: Registry[MethodSpec] = Registry("method", ConfigError)
METHODS.add("model", MethodSpec(MODEL, description="the bundled network for the domain and scale, or --model"))
METHODS.add("self", MethodSpec(SELF, description="a network trained on the input itself (no download)"))
for _name, _cls, _text in (
    ("bicubic", "BicubicUpsampler", "Keys cubic convolution"),
    ("bspline", "BSplineUpsampler", "cubic B-spline interpolation"),
    ("linear", "LinearUpsampler", "(bi/tri)linear interpolation"),
    ("nearest", "NearestUpsampler", "nearest neighbour (each voxel a block)"),
):
    METHODS.add(_name, MethodSpec(CLASSICAL, f"geo_med_sr.inference.classical:{_cls}", _text))
METHODS.add(
    "bspline-ibp",
    MethodSpec(CLASSICAL, "geo_med_sr.inference.consistency:BSplineIBP", "cubic B-spline + back-projection"),
)


def learned_methods() -> list[str]:
    """Names of the methods that run a network (``model``, ``self``)."""
    return [name for name in METHODS if METHODS.get(name).kind != CLASSICAL]
