"""Windowed reading of a GeoTIFF: :class:`GeoTiffSource`, an ImageSource for the inference engine.

Valid pixels: a pixel is valid when, in every selected band, it differs from nodata (when set),
is not NaN (float bands), and is not masked by a GDAL mask band (internal/external mask or
alpha; a mask value 0 is invalid). :meth:`GeoTiffSource.read_band_valid` gives the same per band.

What a source refuses or records about the file as a whole (:func:`check_georeferencing`,
:func:`mask_info`):

* complex bands (CInt16, CFloat32, ...): refused (InputError), the imaginary part would be lost;
* ground control points (no geotransform): kept in ``meta["geotiff"]["gcps"]`` with their CRS;
  the sink writes them with pixel/line multiplied by the scale;
* RPC coefficients: refused when they are the only georeferencing, else dropped with a warning
  (they would not match the new pixel grid);
* a GDAL mask that is neither nodata nor "all valid" (internal ``.msk``, external ``.msk``, an
  alpha band): described in ``meta["geotiff"]["mask"]`` so that the sink writes the output's mask
  (an internal per-dataset mask, or the alpha band carried by nearest neighbour).
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning

from geo_med_sr.adapters.geotiff.conventions import (
    GDAL_ERRORS,
    affine_from_transform,
    area_or_point,
    encode_nodata,
    normalise_window,
    rasterio_window,
    reason,
)
from geo_med_sr.adapters.geotiff.layout import check_bands
from geo_med_sr.errors import ConfigError, InputError, InputNotFoundError, file_error
from geo_med_sr.inference.protocols import Window
from geo_med_sr.spatial import SpatialArray

#: GDAL drivers accepted as GeoTIFF input.
DRIVERS = ("GTiff", "COG")
#: drivers a band of a multi-resolution product may come in (Sentinel-2 SAFE bands are JPEG 2000).
BAND_DRIVERS = (*DRIVERS, "JP2OpenJPEG")


def check_dtypes(path: Path, dtypes: Sequence[str]) -> None:
    """Refuse complex bands (GDAL CInt16/CInt32/CFloat32/CFloat64) with the project's one-line InputError."""
    for name in dtypes:
        if "complex" in str(name):
            raise file_error(
                InputError,
                path,
                f"complex data ({name}) is not supported; "
                "write the magnitude/phase or real/imaginary parts as separate files",
            )


def has_geotransform(src: rasterio.io.DatasetReader) -> bool:
    """Whether the dataset has a geotransform (GDAL reports the identity when it has none)."""
    return not src.transform.is_identity


def check_georeferencing(path: Path, src: rasterio.io.DatasetReader) -> None:
    """Refuse a file georeferenced only by RPCs; warn that RPCs are dropped when a geotransform or GCPs exist."""
    if src.rpcs is None:
        return
    if not has_geotransform(src) and not src.gcps[0]:
        raise file_error(
            InputError,
            path,
            "georeferenced only by RPC coefficients, which this tool does not rescale; "
            "orthorectify it first: gdalwarp -rpc -t_srs EPSG:4326 in.tif out.tif",
        )
    warnings.warn(
        f"{path}: its RPC coefficients are dropped (they would not match the new pixel grid); "
        "the geotransform or GCPs are kept",
        UserWarning,
        stacklevel=4,
    )


def gcp_meta(src: rasterio.io.DatasetReader) -> tuple[list[list[Any]] | None, str | None]:
    """Ground control points of a file without a geotransform, JSON-able, and their CRS (WKT).

    Returns:
        ``([[col, row, x, y, z, id, info], ...], wkt)`` (``col``/``row``: corner-based pixel/line
        coordinates, GDAL's convention), or ``(None, None)`` when the file has a geotransform or no GCPs.
    """
    gcps, crs = src.gcps
    if not gcps or has_geotransform(src):
        return None, None
    points = [[float(g.col), float(g.row), float(g.x), float(g.y), float(g.z or 0.0), g.id, g.info] for g in gcps]
    return points, crs.to_wkt() if crs is not None else None


def mask_info(src: rasterio.io.DatasetReader, bands: Sequence[int]) -> dict[str, Any] | None:
    """How the file's GDAL mask must be reproduced in the output, or None (no mask, or nodata only).

    Returns:
        ``{"kind": "alpha", "alpha": i}`` when an alpha band defines validity and is the ``i``-th
        selected band (0-based; the sink carries it by nearest neighbour); ``{"kind": "mask",
        "alpha": None}`` for an internal/external mask, or an alpha band that is not selected
        (the sink writes an internal per-dataset mask, nearest-upsampled).
    """
    flags = [src.mask_flag_enums[b - 1] for b in bands]
    if not any(MaskFlags.all_valid not in f and MaskFlags.nodata not in f for f in flags):
        return None
    if any(MaskFlags.alpha in f for f in flags):
        alphas = [i for i, b in enumerate(bands) if src.colorinterp[b - 1] == ColorInterp.alpha]
        if alphas:
            return {"kind": "alpha", "alpha": alphas[0]}
    return {"kind": "mask", "alpha": None}


def open_dataset(path: Path, drivers: tuple[str, ...] = DRIVERS) -> rasterio.io.DatasetReader:
    """Open ``path`` with rasterio (one of ``drivers``), turning every failure into a one-line InputError."""
    if not path.exists():
        raise file_error(InputNotFoundError, path, "no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise file_error(InputError, path, "the file is empty (0 bytes); expected a GeoTIFF")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except GDAL_ERRORS as exc:
        raise file_error(
            InputError,
            path,
            f"not a readable GeoTIFF ({reason(exc)}); the file may be truncated or corrupt, or not a TIFF",
        ) from exc
    if src.driver not in drivers:
        driver = src.driver
        src.close()
        raise file_error(
            InputError,
            path,
            f"not a GeoTIFF: GDAL reads it as {driver}; convert it to GeoTIFF (e.g. gdal_translate -of GTiff)",
        )
    return src


class GeoTiffSource:
    """Windowed reader of a GeoTIFF (an :class:`~geo_med_sr.inference.protocols.ImageSource`).

    Keeps the dataset open until :meth:`close` (or the end of a ``with`` block). Used from one
    thread at a time.

    Args:
        path: the ``.tif`` file.
        bands: 1-based band indexes to read, in that order; ``None`` selects all bands.

    Attributes:
        path: the file.
        bands: the selected 1-based band indexes.
        shape: ``(C, W, H)`` = (selected bands, columns, rows).
        affine: ``(3, 3)`` centre-anchored index (column, row) -> CRS affine.
        meta: JSON-able ``{"format": "geotiff", "source", "dtype", "geotiff": {crs (WKT or None),
            nodata (float, "nan" or None), bands, descriptions, colorinterp, scales, offsets,
            units, tags (without AREA_OR_POINT), band_tags, area_or_point, block_size, compress,
            size ([W, H] of the file), transform (rasterio's 6 coefficients), mask (:func:`mask_info`),
            gcps and gcp_crs (:func:`gcp_meta`), colormap (first band's colour table or None)}}``;
            the per-band lists follow the selected bands.
        dtype: numpy dtype shared by the selected bands.
        nodata: the nodata value (float, possibly NaN) or None.
        band_nodata: the nodata value of each selected band (what :meth:`read_band_valid` uses).

    Raises:
        InputError: the file is missing, empty, not a GeoTIFF, corrupt/truncated, holds complex
            bands, or is georeferenced only by RPCs.
        ConfigError: an invalid band selection or bands of different data types.
    """

    def __init__(
        self, path: str | os.PathLike, bands: Sequence[int] | None = None, drivers: tuple[str, ...] = DRIVERS
    ) -> None:
        self.path = Path(path)
        self._src = open_dataset(self.path, drivers)
        try:
            self._setup(bands)
        except BaseException:
            self._src.close()
            raise

    def _setup(self, bands: Sequence[int] | None) -> None:
        src = self._src
        self.bands = check_bands(self.path, bands, src.count)
        check_dtypes(self.path, [src.dtypes[b - 1] for b in self.bands])
        check_georeferencing(self.path, src)
        dtypes = sorted({src.dtypes[b - 1] for b in self.bands})
        if len(dtypes) != 1:
            raise file_error(
                ConfigError,
                self.path,
                f"the selected bands have different data types ({', '.join(dtypes)}); select bands of one data type",
            )
        self.dtype = np.dtype(dtypes[0])
        self.shape = (len(self.bands), src.width, src.height)
        self.affine = affine_from_transform(src.transform)
        self.nodata = None if src.nodata is None else float(src.nodata)
        self.band_nodata = tuple(
            None if src.nodatavals[b - 1] is None else float(src.nodatavals[b - 1]) for b in self.bands
        )
        self._mask_bands = tuple(b for b in self.bands if self._needs_mask_band(b))
        self._checks_values = self.nodata is not None or self.dtype.kind == "f"
        self._last_value_valid: tuple[Window, np.ndarray] | None = None
        self._gcps, self._gcp_crs = gcp_meta(src)
        if src.crs is None and self._gcps is None:
            warnings.warn(f"{self.path}: no CRS; the output will be on the pixel grid only", UserWarning, stacklevel=3)
        self.meta = self._build_meta()
        self._probe()

    def _needs_mask_band(self, band: int) -> bool:
        flags = self._src.mask_flag_enums[band - 1]
        return MaskFlags.all_valid not in flags and MaskFlags.nodata not in flags

    def _build_meta(self) -> dict[str, Any]:
        src = self._src
        tags = src.tags()
        anchor = area_or_point(tags.pop("AREA_OR_POINT", "Area"))
        tiled = src.block_shapes[0][1] < src.width or bool(src.profile.get("tiled", False))
        block_rows, block_cols = src.block_shapes[0]
        compression = src.compression
        idx = [b - 1 for b in self.bands]
        return {
            "format": "geotiff",
            "source": str(self.path),
            "dtype": self.dtype.name,
            "geotiff": {
                "crs": src.crs.to_wkt() if src.crs is not None else None,
                "nodata": encode_nodata(self.nodata),
                "bands": list(self.bands),
                "descriptions": [src.descriptions[i] for i in idx],
                "colorinterp": [src.colorinterp[i].name for i in idx],
                "scales": [float(src.scales[i]) for i in idx],
                "offsets": [float(src.offsets[i]) for i in idx],
                "units": [src.units[i] or None for i in idx],
                "tags": dict(tags),
                "band_tags": [dict(src.tags(b)) for b in self.bands],
                "area_or_point": anchor,
                "block_size": [int(block_cols), int(block_rows)] if tiled else None,
                "compress": compression.name.lower() if compression is not None else None,
                "size": [int(src.width), int(src.height)],
                "transform": [float(v) for v in tuple(src.transform)[:6]],
                "mask": mask_info(src, self.bands),
                "gcps": self._gcps,
                "gcp_crs": self._gcp_crs,
                "colormap": self._colormap(),
            },
        }

    def _colormap(self) -> dict[str, list[int]] | None:
        """Colour table of the first selected band (``{"index": [r, g, b, a]}``), or None."""
        try:
            table = self._src.colormap(self.bands[0])
        except ValueError:  # rasterio: "NULL color table"
            return None
        return {str(k): [int(c) for c in v] for k, v in table.items()}

    def _probe(self) -> None:
        """Read one pixel of the first and the last block: catches most truncated files cheaply."""
        width, height = self.shape[1:]
        for window in (Window(((0, 1), (0, 1))), Window(((width - 1, width), (height - 1, height)))):
            self._read_raw(window)

    # -------------------------------------------------------------- reading windows

    def _read_raw(self, window: Window) -> np.ndarray:
        """Selected bands of ``window`` in rasterio order ``(C, bh, bw)``."""
        try:
            return self._src.read(indexes=list(self.bands), window=rasterio_window(window))
        except GDAL_ERRORS as exc:
            raise file_error(
                InputError,
                self.path,
                f"cannot read pixels of window {window} ({reason(exc)}); the file may be truncated or corrupt",
            ) from exc

    def _value_valid(self, raw: np.ndarray) -> np.ndarray:
        """``(C, bh, bw)`` validity per band from the values alone (the band's nodata, NaN, +-inf)."""
        valid = np.ones(raw.shape, dtype=bool)
        for i, nodata in enumerate(self.band_nodata):
            if nodata is not None and not math.isnan(nodata):
                valid[i] &= raw[i] != nodata
        if self.dtype.kind == "f":
            valid &= np.isfinite(raw)
        return valid

    def _mask_valid(self, window: Window) -> np.ndarray | None:
        """``(C, bh, bw)`` validity per band from GDAL mask bands, or None when no band has one."""
        if not self._mask_bands:
            return None
        masks = self._read_masks(window)
        valid = np.ones((len(self.bands), *masks.shape[1:]), dtype=bool)
        for i, band in enumerate(self.bands):
            if band in self._mask_bands:
                valid[i] = masks[self._mask_bands.index(band)] != 0
        return valid

    def _read_masks(self, window: Window) -> np.ndarray:
        """GDAL masks ``(len(mask bands), bh, bw)`` of the bands that have one (0 = invalid)."""
        try:
            return self._src.read_masks(indexes=list(self._mask_bands), window=rasterio_window(window))
        except GDAL_ERRORS as exc:
            raise file_error(
                InputError,
                self.path,
                f"cannot read the mask of window {window} ({reason(exc)}); the file may be truncated or corrupt",
            ) from exc

    def read(self, window: Window) -> np.ndarray:
        """Values of an in-bounds window.

        Args:
            window: ``((col_start, col_stop), (row_start, row_stop))`` (a Window or plain pairs).

        Returns:
            ``(C, bw, bh)`` array of :attr:`dtype` (index order; only that window is read).

        Raises:
            InputError: a malformed, empty or out-of-bounds window, or pixels that cannot be read.
        """
        window = normalise_window(window, self.shape[1:], self.path, InputError)
        raw = self._read_raw(window)
        if self._checks_values:  # kept for the validity of the same window, read right after
            self._last_value_valid = (window, self._value_valid(raw))
        return np.ascontiguousarray(raw.transpose(0, 2, 1))

    def _band_valid(self, window: Window) -> np.ndarray:
        """``(C, bh, bw)`` validity per band (values and GDAL masks), reading the values only when
        they are not the window :meth:`read` just read."""
        valid = np.ones((len(self.bands), *window.shape[::-1]), dtype=bool)
        if self._checks_values:
            cached = self._last_value_valid
            valid &= (
                cached[1] if cached is not None and cached[0] == window else self._value_valid(self._read_raw(window))
            )
        masked = self._mask_valid(window)
        if masked is not None:
            valid &= masked
        return valid

    def read_valid(self, window: Window) -> np.ndarray:
        """Valid-pixel mask of an in-bounds window.

        Args:
            window: ``((col_start, col_stop), (row_start, row_stop))`` (a Window or plain pairs).

        Returns:
            ``(bw, bh)`` bool array; True where every selected band holds a measured value.
        """
        window = normalise_window(window, self.shape[1:], self.path, InputError)
        return np.ascontiguousarray(self._band_valid(window).all(axis=0).T)

    def read_band_valid(self, window: Window) -> np.ndarray | None:
        """Per-band valid mask of an in-bounds window (for per-band nodata).

        A value is valid in its band when it differs from that band's nodata, is not NaN (float
        bands) and the band's GDAL mask is not 0 there. :meth:`read_valid` is the AND over bands.

        Args:
            window: ``((col_start, col_stop), (row_start, row_stop))`` (a Window or plain pairs).

        Returns:
            ``(C, bw, bh)`` bool array, or None when no pixel can be invalid (:attr:`may_have_invalid`).
        """
        window = normalise_window(window, self.shape[1:], self.path, InputError)
        if not self.may_have_invalid:
            return None
        return np.ascontiguousarray(self._band_valid(window).transpose(0, 2, 1))

    @property
    def may_have_invalid(self) -> bool:
        """Whether any pixel can be invalid (nodata set, float NaN or a GDAL mask band)."""
        return bool(self._checks_values or self._mask_bands)

    def to_spatial_array(self) -> SpatialArray:
        """The whole selection as a SpatialArray (``(C, W, H)``; ``valid`` is None when all pixels are valid)."""
        window = Window.from_shape(self.shape[1:])
        array = self.read(window)
        valid = self.read_valid(window)
        return SpatialArray(
            array=array, affine=self.affine, meta=copy.deepcopy(self.meta), valid=None if valid.all() else valid
        )

    def close(self) -> None:
        """Close the dataset (idempotent)."""
        self._src.close()

    def __enter__(self) -> GeoTiffSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
