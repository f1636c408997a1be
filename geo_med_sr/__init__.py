"""geo_med_sr: super-resolution for medical volumes and satellite imagery with exact geometry.

Public entry points (what the ``geo-med-sr`` command calls): :func:`super_resolve` (one
image, :mod:`geo_med_sr.upscale.pipeline`), :func:`sharpen` (guided sharpening of a
multi-resolution product, :mod:`geo_med_sr.sharpening.pipeline`), :func:`batch` (many files on a Dask cluster,
:mod:`geo_med_sr.upscale.batch`) and :func:`batch_sharpen` (many products, :mod:`geo_med_sr.sharpening.batch`);
:mod:`geo_med_sr.io` (``read``/``write``/``read_provenance``)
and :class:`geo_med_sr.spatial.SpatialArray`. They are imported on first use, so
``import geo_med_sr`` stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "super_resolve": ("upscale.pipeline", "super_resolve"),
    "batch": ("upscale.batch", "batch"),
    "batch_sharpen": ("sharpening.batch", "batch_sharpen"),
    "sharpen": ("sharpening.pipeline", "sharpen"),
}
__all__ = ["__version__", "batch", "batch_sharpen", "sharpen", "super_resolve"]


def __dir__() -> list[str]:
    """The module's names with the lazy entry points (``dir(geo_med_sr)`` and completion list them)."""
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
