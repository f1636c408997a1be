"""Human-readable geometry summary for ``geo-med-sr info``."""

from __future__ import annotations

import os

import numpy as np

from . import geometry, io


def describe(path: str | os.PathLike, series: str | None = None) -> str:
    """Shape, spacing, orientation code, origin, dtype and format details of the image at ``path``."""
    adapter = io.adapter_for_input(path)
    image = adapter.read(path, **({"series": series} if adapter.is_folder else {}))
    fmt = lambda v: "(" + ", ".join(f"{x:.6g}" for x in v) + ")"  # noqa: E731
    lines = {
        "file": str(path),
        "format": adapter.name,
        "shape": f"{image.spatial_shape} voxels (index order, fastest first), {image.num_channels} channel(s)",
        "spacing": fmt(image.spacing) + " mm",
        "orientation": geometry.orientation_code(image.affine) + " (RAS+ world)",
        "origin": fmt(geometry.origin(image.affine)) + " mm (centre of voxel 0, RAS)",
        "dtype": f"{image.meta.get('dtype', image.array.dtype)} (values loaded as {image.array.dtype})",
        "value range": f"{np.nanmin(image.array):.6g} .. {np.nanmax(image.array):.6g}",
    }
    lines.update({k: str(v) for k, v in adapter.describe(image).items() if v not in (None, "")})
    affine = np.array2string(image.affine, precision=6, suppress_small=True).replace("\n", "\n" + " " * 14)
    lines["affine"] = affine
    width = max(len(k) for k in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines.items())
