"""The sharpening methods by name: :data:`SHARPEN_METHODS`, one record per ``sharpen --method``.

Each :class:`SharpenMethod` says what the method needs before it runs (guided weights, training
on the scene, the scene's reduced-resolution copy) and names the function that builds it for one
group of bands (``"module:function"``, imported only when the method is built, so this registry
stays torch-free). :func:`~geo_med_sr.sharpening.plan.plan_sharpening` reads the record once to
decide the plan; the pipeline dispatches through it; the command-line choices (``sharpen
--method``, ``evaluate --sharpen --method``) and the QGIS plugin's list are its names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from geo_med_sr.errors import ConfigError
from geo_med_sr.registry import Registry

__all__ = ["DEFAULT_METHOD", "FULL_SCALE", "PROXY", "SHARPEN_METHODS", "SharpenMethod"]

#: what a method that learns from the reduced copy does when a group is too small for one.
FULL_SCALE, PROXY = "full-scale", "proxy"


@dataclass(frozen=True)
class SharpenMethod:
    """A registered sharpening method.

    Attributes:
        name: its ``--method`` name.
        builder: ``"module:function"`` that builds it for one group of a plan (see
            :mod:`geo_med_sr.sharpening.builders`).
        weights: ``"none"``, ``"required"`` (guided weights: ``--model`` or the bundled default for
            the group) or ``"optional"`` (``--model`` is the starting point, else a new network).
        trains: trains a network on the scene (``--budget``/``--steps``/``--seed`` apply).
        reduced: learns from the scene's reduced-resolution (Wald) copy.
        when_small: what it does for a group too small for its reduced copy: :data:`FULL_SCALE`
            (fit at the scene's own resolution), :data:`PROXY` (learn the group's ratio on finer
            coarse bands, when there are some and no ``--model``) or None (refuse).
        description: one line for help texts.
    """

    name: str
    builder: str
    weights: str = "none"
    trains: bool = False
    reduced: bool = False
    when_small: str | None = None
    description: str = ""

    def build_function(self) -> Callable[..., tuple[Any, dict[str, Any]]]:
        """The builder function (imports its module)."""
        module, _, attr = self.builder.partition(":")
        return getattr(importlib.import_module(module), attr)


#: name -> SharpenMethod: every ``sharpen --method`` there is.
SHARPEN_METHODS: Registry[SharpenMethod] = Registry("sharpening method", ConfigError)
#: the method ``sharpen`` runs when none is given.
DEFAULT_METHOD = "self"

_BUILDERS = "geo_med_sr.sharpening.builders"
for _method in (
    SharpenMethod("bicubic", f"{_BUILDERS}:build_bicubic", description="the coarse bands at the fine pixel centres"),
    SharpenMethod("brovey", f"{_BUILDERS}:build_brovey", description="GDAL's weighted Brovey transform"),
    SharpenMethod(
        "glp",
        f"{_BUILDERS}:build_glp",
        reduced=True,
        when_small=FULL_SCALE,
        description="MTF-GLP detail injection, regression gains fitted at the reduced resolution",
    ),
    SharpenMethod(
        "model",
        f"{_BUILDERS}:build_model",
        weights="required",
        description="a guided network: --model, or the bundled one for the product and ratio",
    ),
    SharpenMethod(
        "self",
        f"{_BUILDERS}:build_self",
        weights="optional",
        trains=True,
        reduced=True,
        when_small=PROXY,
        description="a guided network trained on the scene's own reduced-resolution copy",
    ),
):
    SHARPEN_METHODS.add(_method.name, _method)
