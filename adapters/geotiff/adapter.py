"""The GeoTIFF adapter: ``.tif`` / ``.tiff`` rasters read and written whole or window by window."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from geo_med_sr.adapters.base import Adapter
from geo_med_sr.adapters.geotiff.conventions import GDAL_ERRORS, crs_label, decode_nodata, transform_from_affine
from geo_med_sr.adapters.geotiff.environment import cap_block_cache
from geo_med_sr.adapters.geotiff.layout import check_nodata
from geo_med_sr.adapters.geotiff.sink import FROM_META, GeoTiffSink
from geo_med_sr.adapters.geotiff.source import GeoTiffSource
from geo_med_sr.adapters.geotiff.tags import provenance_from_tags
from geo_med_sr.dtypes import cast_to_dtype
from geo_med_sr.errors import OutputError, file_error
from geo_med_sr.inference.protocols import ImageSource, Window
from geo_med_sr.spatial import SpatialArray

#: file name endings the adapter reads and writes (any case).
SUFFIXES = (".tif", ".tiff")


def _has_suffix(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


class GeoTiffAdapter(Adapter):
    """``.tif`` / ``.tiff`` rasters (GeoTIFF and COG), read and written window by window.

    Images are ``(C, W, H)`` (bands, columns, rows) on a centre-anchored ``(3, 3)`` affine in
    CRS units (:mod:`~geo_med_sr.adapters.geotiff.conventions`).
    """

    name = "geotiff"
    domain = "geo"
    spatial_dims = 2
    is_folder = False
    #: :meth:`open_source` reads windows of the file and :meth:`open_sink` writes them.
    reads_windows = True
    writes_windows = True
    band_selection = True

    @classmethod
    def can_read(cls, path: Path) -> bool:
        path = Path(path)
        return path.is_file() and _has_suffix(path)

    @classmethod
    def can_write(cls, path: Path) -> bool:
        return _has_suffix(Path(path))

    @classmethod
    def output_name(cls, path: Path) -> str:
        """``<input stem>.tif``: a batch output of a GeoTIFF input is a ``.tif`` named after the input."""
        return f"{Path(path).stem}.tif"

    @classmethod
    def read(cls, path: Path, bands: Sequence[int] | None = None, **ignored: Any) -> SpatialArray:
        """Read the selected bands of ``path`` into a ``(C, W, H)`` SpatialArray."""
        with GeoTiffSource(path, bands=bands) as source:
            return source.to_spatial_array()

    @classmethod
    def write(cls, image: SpatialArray, path: Path, cog: bool = True, block_size: int = 512, **ignored: Any) -> None:
        """Write a ``(C, W, H)`` image to ``path`` (a COG by default).

        Values are cast to ``image.meta["dtype"]`` (rounded and clipped) when needed. When the
        image has a nodata value, pixels outside ``image.valid`` are set to it in every band (the
        mask is per pixel: a pixel that was nodata in one band of the source is nodata in all);
        without one, they are marked in an internal per-dataset mask.
        """
        path = Path(path)
        if image.spatial_dims != 2:
            raise file_error(
                OutputError,
                path,
                f"GeoTIFF output needs 2 spatial axes (C, W, H), got an image of shape {image.array.shape}",
            )
        dtype = np.dtype(image.meta.get("dtype") or image.array.dtype)
        array = image.array if image.array.dtype == dtype else cast_to_dtype(image.array, dtype)
        nodata = decode_nodata((image.meta.get("geotiff") or {}).get("nodata"))
        check_nodata(nodata, dtype, path)
        valid = None if image.valid is None or image.valid.all() else image.valid
        mask = valid is not None and nodata is None
        with GeoTiffSink(
            path, array.shape, image.affine, image.meta, dtype, nodata=nodata, cog=cog, block_size=block_size, mask=mask
        ) as sink:
            sink.write(Window.from_shape(array.shape[1:]), array, valid=valid)

    @classmethod
    def read_provenance(cls, path: Path) -> dict[str, Any] | None:
        """The provenance stored in the ``GEO_MED_SR_*`` dataset tags of ``path`` (tags only).

        Returns None when the file is missing, unreadable (corrupt, partial, not a TIFF) or has
        no such tags.
        """
        path = Path(path)
        if not path.is_file():
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NotGeoreferencedWarning and GDAL's warnings on partial files
                with rasterio.open(path) as src:
                    tags = src.tags()
        except (*GDAL_ERRORS, OSError):
            return None
        return provenance_from_tags(tags)

    @classmethod
    def open_source(cls, path: Path, bands: Sequence[int] | None = None) -> GeoTiffSource:
        """A windowed reader of ``path`` (close it, or use it as a context manager).

        Streaming caps GDAL's process-wide block cache at ``SINK_CACHE_MB`` (unless the user
        set ``GDAL_CACHEMAX``), so memory does not grow with the scene: GDAL's default (5 % of
        RAM) would otherwise fill with blocks of a large scene.
        """
        cap_block_cache()
        return GeoTiffSource(path, bands=bands)

    @classmethod
    def open_sink(
        cls,
        path: Path,
        shape: Sequence[int],
        affine: np.ndarray,
        meta: dict[str, Any],
        dtype: np.dtype | str,
        cog: bool = True,
        block_size: int = 512,
        *,
        nodata: float | None = FROM_META,
        compress: str | None = "deflate",
        name: str | os.PathLike | None = None,
        mask: bool | None = None,
    ) -> GeoTiffSink:
        """A windowed writer of a ``(C, W, H)`` output at ``path`` (see :class:`GeoTiffSink`).

        ``name`` is the path that error messages name (the user's output when ``path`` is a
        temporary target); default ``path``.
        """
        return GeoTiffSink(
            path,
            shape,
            affine,
            meta,
            dtype,
            nodata=nodata,
            cog=cog,
            block_size=block_size,
            compress=compress,
            name=name,
            mask=mask,
        )

    @classmethod
    def describe(cls, image: SpatialArray | ImageSource) -> dict[str, Any]:
        """CRS, transform, bounds, band descriptions, nodata, AREA_OR_POINT and colour interpretation.

        Args:
            image: a ``(C, W, H)`` SpatialArray or an opened source (uses only ``shape[1:]``,
                ``affine`` and ``meta``).
        """
        info = image.meta.get("geotiff", {})
        transform = transform_from_affine(image.affine)
        width, height = image.shape[1:]
        corners = np.array([[0, width, 0, width], [0, 0, height, height], [1, 1, 1, 1]], dtype=np.float64)
        xs, ys = (np.array(transform, dtype=np.float64).reshape(3, 3) @ corners)[:2]
        nodata = info.get("nodata")
        return {
            "CRS": crs_label(info.get("crs")) or "none (pixel grid only)",
            "transform (a, b, c, d, e, f)": tuple(transform)[:6],
            "bounds (minx, miny, maxx, maxy)": (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())),
            "band descriptions": info.get("descriptions"),
            "nodata": nodata,
            "AREA_OR_POINT": info.get("area_or_point", "Area"),
            "colorinterp": info.get("colorinterp"),
        }
