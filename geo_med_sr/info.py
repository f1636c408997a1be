"""Human-readable geometry summary for ``geo-med-sr info``."""

from __future__ import annotations

import os

import numpy as np

from . import geometry, io
from .spatial import SpatialArray


def _fmt(values) -> str:
    return "(" + ", ".join(f"{x:.6g}" for x in values) + ")"


def describe(path: str | os.PathLike, series: str | None = None) -> str:
    """Shape, spacing, orientation, origin, dtype and format details of the image at ``path``.

    GeoTIFFs are described from their header and a window-free metadata read (no pixel data
    is loaded), so ``info`` is instant on any scene size.
    """
    adapter = io.adapter_for_input(path)
    if getattr(adapter, "streaming", False):
        with adapter.open_source(path) as source:
            image = SpatialArray(
                np.empty((source.shape[0],) + (1,) * (len(source.shape) - 1), source.dtype), source.affine, source.meta
            )
            shape, channels, dtype, value_range = (
                tuple(source.shape[1:]),
                source.shape[0],
                source.meta.get("dtype"),
                None,
            )
            units, world = "CRS units", "CRS"
    else:
        image = adapter.read(path, **({"series": series} if adapter.is_folder else {}))
        shape, channels, dtype = (
            image.spatial_shape,
            image.num_channels,
            f"{image.meta.get('dtype', image.array.dtype)} (values loaded as {image.array.dtype})",
        )
        value_range = f"{np.nanmin(image.array):.6g} .. {np.nanmax(image.array):.6g}"
        units, world = "mm", "RAS+ world"
    lines = {
        "file": str(path),
        "format": adapter.name,
        "shape": f"{shape} pixels (index order, fastest first), {channels} channel(s)",
        "spacing": f"{_fmt(image.spacing)} {units}",
        "orientation": f"{geometry.orientation_code(image.affine, *(('RAS', 'LPI') if units == 'mm' else ('EN', 'WS')))} ({world})",
        "origin": f"{_fmt(geometry.origin(image.affine))} {units} (centre of pixel 0)",
        "dtype": str(dtype),
    }
    if value_range is not None:
        lines["value range"] = value_range
    lines.update({k: str(v) for k, v in adapter.describe(image).items() if v not in (None, "")})
    lines["affine"] = np.array2string(image.affine, precision=6, suppress_small=True).replace("\n", "\n" + " " * 14)
    width = max(len(k) for k in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines.items())
