"""The GeoTIFF adapter's conventions as pure functions: index order, the centre affine, windows, nodata.

Conventions (DESIGN §3):

* A raster inside the package has its spatial axes in index order, fastest first:
  ``(column, row)``. An image is ``(C, W, H)`` = ``(bands, columns, rows)``, the transpose of
  rasterio's ``(bands, rows, columns)``; every window is ``((col_start, col_stop), (row_start, row_stop))``.
* ``affine`` is the 3x3 float64 matrix mapping the ``(column, row)`` index of a pixel **centre**
  to CRS ``(x, y)``: ``corner_to_centre(T)`` of rasterio's corner-anchored transform ``T``, and
  back with ``centre_to_corner``. Rotated and non-square transforms pass through unchanged.

AREA_OR_POINT (measured with rasterio 1.4 / GDAL 3.10; tests
``test_gdal_normalises_point_files_to_the_corner_convention`` and ``test_point_file_round_trip``):
GDAL already normalises ``PixelIsPoint`` files. The raw TIFF tiepoint of such a file is the
centre of pixel 0, i.e. ``T * (0.5, 0.5)`` (only ``GTIFF_POINT_GEO_IGNORE=YES`` exposes it),
yet GDAL reports the corner-anchored ``T`` on read and shifts the tiepoint back by half a pixel
on write when the dataset's ``AREA_OR_POINT`` tag is ``Point``. The package therefore treats
the rasterio transform as corner-anchored in both cases, keeps the tag in
``meta["geotiff"]["area_or_point"]`` and writes it back (:func:`area_or_point`), so a Point
file re-reads with the identical transform, the identical raw tiepoint and ``AREA_OR_POINT=Point``.

Also here: the one-line reason of a GDAL error (:func:`reason`, :data:`GDAL_ERRORS`), shared
with :mod:`geo_med_sr.adapters.vrt`. Nothing in this module opens a file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window as RasterioWindow

from geo_med_sr import geometry
from geo_med_sr.errors import GeoMedSRError, file_error
from geo_med_sr.inference.protocols import Window

#: exceptions rasterio/GDAL raise for unreadable or unwritable files.
GDAL_ERRORS = (RasterioError, CPLE_BaseError)


# ---------------------------------------------------------------- grid


def affine_from_transform(transform: Affine) -> np.ndarray:
    """Centre-anchored affine from a rasterio transform.

    Args:
        transform: corner-anchored rasterio transform (index (column, row) of a pixel's outer
            corner -> CRS ``(x, y)``, in CRS units).

    Returns:
        ``(3, 3)`` float64 affine mapping the (column, row) index of a pixel centre to CRS ``(x, y)``.
    """
    return geometry.corner_to_centre(np.array(transform, dtype=np.float64).reshape(3, 3))


def transform_from_affine(affine: np.ndarray) -> Affine:
    """Corner-anchored rasterio transform from a centre-anchored affine (exact inverse of
    :func:`affine_from_transform`).

    Args:
        affine: ``(3, 3)`` centre-anchored index (column, row) -> CRS affine.

    Returns:
        The rasterio transform of the same grid.
    """
    return Affine(*geometry.centre_to_corner(np.asarray(affine, dtype=np.float64))[:2].ravel().tolist())


# ---------------------------------------------------------------- windows


def rasterio_window(window: Sequence[Sequence[int]]) -> RasterioWindow:
    """rasterio Window of an index-order window ``((c0, c1), (r0, r1))`` (pixels)."""
    (c0, c1), (r0, r1) = window
    return RasterioWindow(col_off=c0, row_off=r0, width=c1 - c0, height=r1 - r0)


def window_from_rasterio(window: RasterioWindow) -> Window:
    """Index-order :class:`~geo_med_sr.inference.protocols.Window` of a rasterio Window (inverse
    of :func:`rasterio_window`).

    Raises:
        ValueError: offsets or sizes that are not whole numbers of pixels.
    """
    values = tuple(float(v) for v in (window.col_off, window.row_off, window.width, window.height))
    if not all(v.is_integer() for v in values):
        raise ValueError(f"rasterio window {window} is not on whole pixels; round it first (Window.round())")
    c0, r0, width, height = (int(v) for v in values)
    return Window(((c0, c0 + width), (r0, r0 + height)))


def normalise_window(
    window: Sequence[Sequence[int]], spatial: tuple[int, int], path: Path, error: type[GeoMedSRError]
) -> Window:
    """``window`` as a :class:`Window` of ints, checked to be non-empty and inside the image.

    Args:
        window: ``((col_start, col_stop), (row_start, row_stop))`` (a Window or plain pairs).
        spatial: ``(W, H)`` of the image (columns, rows).
        path: the file error messages name.
        error: the error class raised (InputError when reading, OutputError when writing).

    Raises:
        error: a malformed, empty or out-of-bounds window.
    """
    try:
        normalised = Window(window)
        (c0, c1), (r0, r1) = normalised
    except (TypeError, ValueError) as exc:
        raise file_error(error, path, f"box {window!r} is not ((col_start, col_stop), (row_start, row_stop))") from exc
    width, height = spatial
    if not (0 <= c0 < c1 <= width and 0 <= r0 < r1 <= height):
        raise file_error(
            error,
            path,
            f"box (({c0}, {c1}), ({r0}, {r1})) is empty or outside the image of {width} columns x {height} rows",
        )
    return normalised


# ---------------------------------------------------------------- values and tags


def encode_nodata(value: float | None) -> float | str | None:
    """JSON-able nodata: a float, ``None``, or ``"nan"``/``"inf"``/``"-inf"`` for non-finite values."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else str(value)


def decode_nodata(value: float | str | None) -> float | None:
    """Inverse of :func:`encode_nodata`."""
    return None if value is None else float(value)


def area_or_point(value: str | None) -> str:
    """The ``AREA_OR_POINT`` tag value: ``"Point"`` when ``value`` says so (any case), else ``"Area"``."""
    return "Point" if str(value or "Area").strip().lower() == "point" else "Area"


def crs_label(wkt: str | None) -> str | None:
    """``"EPSG:<code>"`` when the CRS has one, else its WKT shortened to 80 characters."""
    if not wkt:
        return None
    code = CRS.from_user_input(wkt).to_epsg()
    if code is not None:
        return f"EPSG:{code}"
    return wkt if len(wkt) <= 80 else wkt[:77] + "..."


# ---------------------------------------------------------------- errors


def reason(exc: BaseException) -> str:
    """One-line reason of a rasterio error, preferring GDAL's message over rasterio's wrapper."""
    inner = exc.__cause__ or exc.__context__
    if isinstance(inner, CPLE_BaseError) and str(inner):
        exc = inner
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
