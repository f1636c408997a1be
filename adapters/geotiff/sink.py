"""Windowed writing of a GeoTIFF: :class:`GeoTiffSink`, an ImageSink for the inference engine.

The sink writes a tiled, compressed GTiff window by window and, with ``cog=True``, converts it
to a Cloud-Optimized GeoTIFF on close (:mod:`~geo_med_sr.adapters.geotiff.cog`). Every failure
is a one-line OutputError and leaves no file behind (:meth:`GeoTiffSink.abort`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import CRSError, NotGeoreferencedWarning

from ...errors import ConfigError, OutputError, file_error
from ...inference.protocols import Window
from .blocks import check_blocks
from .cog import build_overviews, check_copy, cog_profile, copy_to_cog, overview_config
from .conventions import GDAL_ERRORS, decode_nodata, normalise_window, rasterio_window, reason, transform_from_affine
from .environment import quiet_libtiff, writing_env
from .layout import block_sizes, check_compress, check_nodata, predictor
from .tags import apply_metadata


class _FromMeta:
    """Sentinel: take the value from ``meta`` (distinct from an explicit ``None``)."""

    def __repr__(self) -> str:
        return "FROM_META"


#: default of ``nodata``: take ``meta["geotiff"]["nodata"]``.
FROM_META: Any = _FromMeta()


class GeoTiffSink:
    """Windowed writer of a tiled, compressed GeoTIFF, optionally converted to a COG on close.

    An :class:`~geo_med_sr.inference.protocols.ImageSink`.

    Args:
        path: the file to produce (the temporary target the I/O layer hands out).
        shape: ``(C, W, H)`` of the output.
        affine: ``(3, 3)`` centre-anchored index (column, row) -> CRS affine of the output grid.
        meta: package metadata; ``meta["geotiff"]`` supplies CRS, descriptions, colour
            interpretation, scales/offsets/units, tags and AREA_OR_POINT (bands without a
            description are named ``"band <n>"``, see :func:`~.tags.band_names`); ``meta["provenance"]``
            is stored as ``GEO_MED_SR_<KEY>`` dataset tags (key upper-cased; values encoded by
            :func:`~.tags.encode_provenance_value`, read back by ``GeoTiffAdapter.read_provenance``).
        dtype: output data type; every window must already have it.
        nodata: nodata value; by default ``meta["geotiff"]["nodata"]``; ``None`` for none.
        cog: write a Cloud-Optimized GeoTIFF (tiled temp file, overviews and COG copy on close).
        block_size: tile size in pixels (rounded down to a multiple of 16, capped to the image).
        compress: GDAL compression name (``"deflate"``, ``"lzw"``, ``"zstd"``, ...) or None.
        name: the path error messages name (e.g. the user's output while ``path`` is the
            I/O layer's temporary target); default ``path``.

    Attributes:
        block: ``(tile width, tile height)`` in pixels, index order.
        dtype: the output dtype windows must have.
        nodata: the nodata value written to the file, or None.

    Raises:
        ConfigError: bad shape, block size, compression, or a nodata the dtype cannot hold.
        OutputError: the file cannot be created.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: Sequence[int],
        affine: np.ndarray,
        meta: dict[str, Any],
        dtype: np.dtype | str,
        nodata: float | None = FROM_META,
        cog: bool = True,
        block_size: int = 512,
        compress: str | None = "deflate",
        *,
        name: str | os.PathLike | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = Path(path if name is None else name)
        self.shape = tuple(int(v) for v in shape)
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise file_error(
                ConfigError,
                self.name,
                f"GeoTIFF output needs a (C, W, H) shape with positive sizes, got {tuple(shape)}",
            )
        self.dtype = np.dtype(dtype)
        self.cog = bool(cog)
        self.meta = meta
        info = meta.get("geotiff") or {}
        self.nodata = (
            decode_nodata(info.get("nodata")) if nodata is FROM_META else (None if nodata is None else float(nodata))
        )
        check_nodata(self.nodata, self.dtype, self.name)
        self.compress = check_compress(compress, self.name)
        self.block = block_sizes(block_size, self.shape[1], self.shape[2], self.name)
        self.affine = np.asarray(affine, dtype=np.float64)
        if self.affine.shape != (3, 3) or not np.all(np.isfinite(self.affine)):
            raise file_error(
                ConfigError, self.name, f"a GeoTIFF needs a finite 3x3 affine, got shape {self.affine.shape}"
            )
        self._tiled_path = self.path.with_name(self.path.name + ".tiled.tif") if self.cog else self.path
        self._created: list[Path] = []
        self._done = False
        self._dst = None
        self._open()

    # -------------------------------------------------------------- helpers

    def _predictor(self) -> int | None:
        return predictor(self.compress, self.dtype)

    def _creation_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "tiled": True,
            "blockxsize": self.block[0],
            "blockysize": self.block[1],
            "BIGTIFF": "IF_SAFER",
            "interleave": "pixel",
        }
        if self.compress:
            options["compress"] = self.compress
        if self._predictor():
            options["predictor"] = self._predictor()
        return options

    def _write_error(self, exc: BaseException, action: str) -> OutputError:
        return file_error(
            OutputError,
            self.name,
            f"could not {action} ({reason(exc)}); the disk may be full or the folder not writable",
        )

    def _open(self) -> None:
        info = self.meta.get("geotiff") or {}
        count, width, height = self.shape
        try:
            crs = CRS.from_user_input(info["crs"]) if info.get("crs") else None
        except (CRSError, *GDAL_ERRORS) as exc:
            raise file_error(
                ConfigError,
                self.name,
                f"meta crs is not a CRS GDAL understands ({reason(exc)}); expected WKT or 'EPSG:<code>'",
            ) from exc
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": count,
            "dtype": self.dtype.name,
            "crs": crs,
            "transform": transform_from_affine(self.affine),
            "nodata": self.nodata,
            **self._creation_options(),
        }
        self._created.append(self._tiled_path)
        try:
            with writing_env(), warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dst = rasterio.open(self._tiled_path, "w", **profile)
                apply_metadata(self._dst, self.meta, count, self.name)
        except GDAL_ERRORS as exc:
            self.abort()
            raise self._write_error(exc, "create the GeoTIFF") from exc
        except BaseException:
            self.abort()
            raise

    # -------------------------------------------------------------- Sink API

    def write(self, window: Window, data: np.ndarray) -> None:
        """Store one window.

        Args:
            window: ``((col_start, col_stop), (row_start, row_stop))`` of output pixels (a
                Window or plain pairs).
            data: ``(C, bw, bh)`` values in index order, already of the output dtype.

        Raises:
            OutputError: the sink is closed, the window is malformed or out of bounds, ``data``
                does not match it or the dtype, or GDAL cannot write it (the sink is aborted).
        """
        if self._done or self._dst is None:
            raise file_error(OutputError, self.name, "the GeoTIFF sink is already closed; open a new sink")
        window = normalise_window(window, self.shape[1:], self.name, OutputError)
        expected = (self.shape[0], *window.shape)
        if tuple(data.shape) != expected:
            raise file_error(
                OutputError,
                self.name,
                f"window data of shape {tuple(data.shape)} does not match box {window}; expected {expected}",
            )
        if data.dtype != self.dtype:
            raise file_error(
                OutputError,
                self.name,
                f"window data has dtype {data.dtype} but the output is {self.dtype}; "
                "cast it first (geo_med_sr.dtypes.cast_to_dtype)",
            )
        try:
            with writing_env():
                self._dst.write(np.ascontiguousarray(data.transpose(0, 2, 1)), window=rasterio_window(window))
        except GDAL_ERRORS as exc:
            self.abort()
            raise self._write_error(exc, f"write window {window}") from exc

    def close(self) -> None:
        """Finish the file (flush, and convert to COG when ``cog``); idempotent.

        Raises:
            OutputError: the data could not be written (every file of the sink is then removed).
        """
        if self._done:
            return
        try:
            with writing_env():
                self._dst.close()
                check_blocks(self._tiled_path, self.name)
            if self.cog:
                self._convert_to_cog()
        except (*GDAL_ERRORS, OSError) as exc:
            self.abort()
            raise self._write_error(exc, "finish the GeoTIFF") from exc
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        """Close without finishing and delete every file the sink created (idempotent)."""
        if self._dst is not None and not self._dst.closed:
            try:
                with quiet_libtiff():
                    self._dst.close()
            except (*GDAL_ERRORS, OSError):
                pass  # the dataset is being discarded after an earlier error; its files go next
        for path in self._created:
            for candidate in (path, path.with_name(path.name + ".aux.xml"), path.with_name(path.name + ".ovr")):
                candidate.unlink(missing_ok=True)
        self._done = True

    def __enter__(self) -> GeoTiffSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -------------------------------------------------------------- COG conversion

    def _convert_to_cog(self) -> None:
        """Tiled temp file -> COG at ``path`` with every piece of metadata; deletes the temp file.

        The same two steps ``cog_translate`` ends with, without its WarpedVRT pass: internal
        average overviews on the tiled file, then a GTiff copy with ``COPY_SRC_OVERVIEWS=YES``.
        """
        profile = cog_profile(self.compress, self.block, self._predictor())
        with writing_env(**overview_config(self.block)):
            expected = build_overviews(self._tiled_path, self.shape[1:], self.block)
            self._created.append(self.path)  # from here on, abort removes the COG too
            got = copy_to_cog(self._tiled_path, self.path, profile, self.name)
        check_copy(expected, got, self.name)
        self._tiled_path.unlink()
