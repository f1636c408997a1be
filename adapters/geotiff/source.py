"""Windowed reading of a GeoTIFF: :class:`GeoTiffSource`, an ImageSource for the inference engine.

Valid pixels: a pixel is valid when, in every selected band, it differs from nodata (when set),
is not NaN (float bands), and is not masked by a GDAL mask band (internal/external mask or
alpha; a mask value 0 is invalid).
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
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning

from ...errors import ConfigError, InputError, InputNotFoundError, file_error
from ...inference.protocols import Window
from ...spatial import SpatialArray
from .conventions import (
    GDAL_ERRORS,
    affine_from_transform,
    area_or_point,
    encode_nodata,
    normalise_window,
    rasterio_window,
    reason,
)
from .layout import check_bands

#: GDAL drivers accepted as GeoTIFF input.
DRIVERS = ("GTiff", "COG")


def open_dataset(path: Path) -> rasterio.io.DatasetReader:
    """Open ``path`` with rasterio, turning every failure into a one-line InputError."""
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
    if src.driver not in DRIVERS:
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
            units, tags (without AREA_OR_POINT), band_tags, area_or_point, block_size, compress}}``;
            the per-band lists follow the selected bands.
        dtype: numpy dtype shared by the selected bands.
        nodata: the nodata value (float, possibly NaN) or None.

    Raises:
        InputError: the file is missing, empty, not a GeoTIFF, or corrupt/truncated.
        ConfigError: an invalid band selection or bands of different data types.
    """

    def __init__(self, path: str | os.PathLike, bands: Sequence[int] | None = None) -> None:
        self.path = Path(path)
        self._src = open_dataset(self.path)
        try:
            self._setup(bands)
        except BaseException:
            self._src.close()
            raise

    def _setup(self, bands: Sequence[int] | None) -> None:
        src = self._src
        self.bands = check_bands(self.path, bands, src.count)
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
        self._mask_bands = tuple(b for b in self.bands if self._needs_mask_band(b))
        self._checks_values = self.nodata is not None or self.dtype.kind == "f"
        self._last_value_valid: tuple[Window, np.ndarray] | None = None
        if src.crs is None:
            extra = " (its GCPs are not used)" if src.gcps[0] else ""
            warnings.warn(
                f"{self.path}: no CRS{extra}; the output will be on the pixel grid only", UserWarning, stacklevel=3
            )
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
            },
        }

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
        """``(bh, bw)`` validity from the values alone (nodata and NaN)."""
        valid = np.ones(raw.shape[1:], dtype=bool)
        if self.nodata is not None and not math.isnan(self.nodata):
            valid &= ~np.any(raw == self.nodata, axis=0)
        if self.dtype.kind == "f":
            valid &= ~np.any(np.isnan(raw), axis=0)
        return valid

    def _mask_valid(self, window: Window) -> np.ndarray | None:
        """``(bh, bw)`` validity from GDAL mask bands, or None when no band has one."""
        if not self._mask_bands:
            return None
        try:
            masks = self._src.read_masks(indexes=list(self._mask_bands), window=rasterio_window(window))
        except GDAL_ERRORS as exc:
            raise file_error(
                InputError,
                self.path,
                f"cannot read the mask of window {window} ({reason(exc)}); the file may be truncated or corrupt",
            ) from exc
        return np.all(masks != 0, axis=0)

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
        if self._checks_values:
            self._last_value_valid = (window, self._value_valid(raw))
        return np.ascontiguousarray(raw.transpose(0, 2, 1))

    def read_valid(self, window: Window) -> np.ndarray:
        """Valid-pixel mask of an in-bounds window.

        Args:
            window: ``((col_start, col_stop), (row_start, row_stop))`` (a Window or plain pairs).

        Returns:
            ``(bw, bh)`` bool array; True where every selected band holds a measured value.
        """
        window = normalise_window(window, self.shape[1:], self.path, InputError)
        bw, bh = window.shape
        valid = np.ones((bh, bw), dtype=bool)
        if self._checks_values:
            cached = self._last_value_valid
            use_cache = cached is not None and cached[0] == window
            valid &= cached[1] if use_cache else self._value_valid(self._read_raw(window))
        masked = self._mask_valid(window)
        if masked is not None:
            valid &= masked
        return np.ascontiguousarray(valid.T)

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
