"""Human-readable geometry summary for ``geo-med-sr info``."""

from __future__ import annotations

import os

import numpy as np

from geo_med_sr import geometry, io
from geo_med_sr.inference.protocols import Window


def _fmt(values) -> str:
    return "(" + ", ".join(f"{x:.6g}" for x in values) + ")"


def describe(path: str | os.PathLike, series: str | None = None) -> str:
    """Shape, spacing, orientation, origin, dtype and format details of the image at ``path``.

    The input is opened as the pipeline opens it (:func:`geo_med_sr.io.open_source`): formats read
    by windows (``reads_windows``: GeoTIFF) are described from their header without reading pixels,
    so ``info`` is instant on any scene size; formats read whole (NIfTI, DICOM) also report their
    value range.
    """
    adapter = io.adapter_for_input(path)
    with io.open_source(path, series=series) as source:
        spatial, channels = tuple(source.shape[1:]), source.shape[0]
        if adapter.reads_windows:
            dtype, value_range = str(source.meta.get("dtype")), None
        else:
            values = source.read(Window.from_shape(spatial))
            dtype = f"{source.meta.get('dtype', values.dtype)} (values loaded as {values.dtype})"
            value_range = f"{np.nanmin(values):.6g} .. {np.nanmax(values):.6g}"
        medical = adapter.domain == "medical"
        units, world, labels = ("mm", "RAS+ world", ("RAS", "LPI")) if medical else ("CRS units", "CRS", ("EN", "WS"))
        lines = {
            "file": str(path),
            "format": adapter.name,
            "shape": f"{spatial} pixels (index order, fastest first), {channels} channel(s)",
            "spacing": f"{_fmt(geometry.spacing(source.affine))} {units}",
            "orientation": f"{geometry.orientation_code(source.affine, *labels)} ({world})",
            "origin": f"{_fmt(geometry.origin(source.affine))} {units} (centre of pixel 0)",
            "dtype": dtype,
        }
        if value_range is not None:
            lines["value range"] = value_range
        lines.update({k: str(v) for k, v in adapter.describe(source).items() if v not in (None, "")})
        lines["affine"] = np.array2string(source.affine, precision=6, suppress_small=True).replace(
            "\n", "\n" + " " * 14
        )
    width = max(len(k) for k in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines.items())
