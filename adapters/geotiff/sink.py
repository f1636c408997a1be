"""Windowed writing of a GeoTIFF: :class:`GeoTiffSink`, an ImageSink for the inference engine.

The sink writes a tiled, compressed GTiff window by window and, with ``cog=True``, converts it
to a Cloud-Optimized GeoTIFF on close (:mod:`~geo_med_sr.adapters.geotiff.cog`). Every failure
is a one-line OutputError and leaves no file behind (:meth:`GeoTiffSink.abort`).

With ``cog=True`` the windows go to a band-interleaved intermediate whose overviews GDAL computes
level by level from full resolution (:func:`~.cog.build_overviews`); it is then copied to the
pixel-interleaved COG. Every overview pixel is GDAL's average of the valid full-resolution pixels
it covers: with integer factors the exact mean of its block, and with sizes that are no multiple
of a factor what GDAL gives for that level built alone. Until issue 26 the intermediate was
pixel-interleaved and GDAL's multi-band path built all levels in one call, so the x4 and coarser
levels of some outputs differ now (x2 never; measured with 12 uint16 bands): identical at 2046^2;
at 4092^2 its x8 level had a stripe every 128 rows (only rows 128, 256 and 384 differ, at GDAL's
chunk edges: off by up to 990); small outputs (a level's source chunk under
``GDAL_OVR_CHUNK_MAX_SIZE``, e.g. 1030 x 777) were cascaded, each level averaged from the rounded
level above without the nodata share of its pixels (off by up to 63 without nodata, 589 on noisy
data with 15 % invalid pixels). A GDAL quirk stays, as it was for large outputs: with an internal
mask and sizes that are no multiple of a factor, a few pixels at the edge of masked areas are
marked valid and hold 0.

Besides the values it writes what stays true on the new grid: the input's GDAL mask (an
internal per-dataset mask, or the alpha band by nearest neighbour; :mod:`.masks`), its ground
control points with pixel/line multiplied by the scale (:func:`scaled_gcps`) and the tags of
:mod:`.tags`.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import TransformNotInvertibleError
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import CRSError, NotGeoreferencedWarning
from rasterio.transform import Affine

from geo_med_sr.adapters.base import SinkContext
from geo_med_sr.adapters.geotiff.blocks import check_blocks
from geo_med_sr.adapters.geotiff.cog import build_overviews, check_copy, cog_profile, copy_to_cog, overview_config
from geo_med_sr.adapters.geotiff.conventions import (
    GDAL_ERRORS,
    decode_nodata,
    normalise_window,
    rasterio_window,
    reason,
    transform_from_affine,
)
from geo_med_sr.adapters.geotiff.environment import quiet_libtiff, writing_env
from geo_med_sr.adapters.geotiff.layout import block_sizes, check_compress, check_nodata, predictor
from geo_med_sr.adapters.geotiff.masks import InputMask, integer_factors, mask_of
from geo_med_sr.adapters.geotiff.tags import apply_metadata
from geo_med_sr.dtypes import mark_nodata
from geo_med_sr.errors import ConfigError, OutputError, file_error
from geo_med_sr.inference.protocols import Window


def _apply(transform: Affine, x: float, y: float) -> tuple[float, float]:
    """``transform`` applied to the point ``(x, y)`` (what ``transform * (x, y)`` did before affine 3 deprecated it)."""
    a, b, c, d, e, f = tuple(transform)[:6]
    return a * x + b * y + c, d * x + e * y + f


def exact_transform(affine: np.ndarray, info: dict[str, Any], factors: Sequence[int] | None) -> Affine:
    """The output's rasterio transform, exact when it is the input's scaled by integer ``factors``.

    ``affine`` goes through centre <-> corner conversions that may leave a rounding error of an
    ulp (an origin of 101984.99999999999 instead of 101985); when it matches the input's
    transform ``(a, b, c, d, e, f)`` of ``info["transform"]`` scaled by ``(fx, fy)`` to 1e-9 of
    a pixel, the correctly rounded ``(a/fx, b/fy, c, d/fx, e/fy, f)`` is returned instead.
    """
    transform = transform_from_affine(affine)
    source = info.get("transform")
    if not factors or not source or len(source) != 6:
        return transform
    a, b, c, d, e, f = (float(v) for v in source)
    fx, fy = factors
    exact = Affine(a / fx, b / fy, c, d / fx, e / fy, f)
    try:
        inverse = ~exact
    except TransformNotInvertibleError:  # a degenerate input transform: keep the computed one
        return transform
    corners = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]
    error = max(abs(u - x) + abs(v - y) for x, y in corners for u, v in [_apply(inverse, *_apply(transform, x, y))])
    return exact if error <= 1e-9 else transform


def scaled_gcps(gcps: Sequence[Sequence[Any]], factors: Sequence[int] | None, affine: np.ndarray) -> list:
    """The output's ground control points: the input's with pixel/line mapped to the output grid.

    GCP pixel/line are corner-based pixel coordinates, so with integer ``factors`` ``(fx, fy)``
    the new ones are exactly ``(col * fx, row * fy)``; otherwise they go through the inverse of
    the output's transform (``affine`` maps output pixel centres to input pixel coordinates,
    which is how a GCP-georeferenced input's grid is described).

    Args:
        gcps: ``[[col, row, x, y, z, id, info], ...]`` of ``meta["geotiff"]["gcps"]``.
        factors: integer scale ``(fx, fy)``, or None.
        affine: ``(3, 3)`` centre-anchored affine of the output.
    """
    inverse = ~transform_from_affine(affine)
    out = []
    for col, row, x, y, z, ident, info in gcps:
        new_col, new_row = (col * factors[0], row * factors[1]) if factors else _apply(inverse, col, row)
        out.append(GroundControlPoint(row=new_row, col=new_col, x=x, y=y, z=z, id=ident, info=info))
    return out


class _FromMeta:
    """Sentinel: take the value from ``meta`` (distinct from an explicit ``None``)."""

    def __repr__(self) -> str:
        return "FROM_META"


#: default of ``nodata``: take ``meta["geotiff"]["nodata"]``.
FROM_META: Any = _FromMeta()


#: creation options that make a codec fast (the COG's intermediate file is read once).
FAST_LEVEL: dict[str, dict[str, Any]] = {"zstd": {"ZSTD_LEVEL": 1}}
#: the same for the intermediate's overviews: GDAL options while they are built (GDAL compresses
#: overviews at its default level otherwise, ZSTD 9: 2.6 s instead of 1.7 s at 2048^2 x 12 bands).
FAST_OVERVIEW_LEVEL: dict[str, dict[str, str]] = {"zstd": {"ZSTD_LEVEL_OVERVIEW": "1"}}


@functools.cache
def gdal_has_zstd() -> bool:
    """Whether this GDAL writes ZSTD-compressed GeoTIFFs (a 1x1 file in memory)."""
    from rasterio.io import MemoryFile

    try:
        with warnings.catch_warnings(), MemoryFile() as memory:
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with memory.open(driver="GTiff", width=1, height=1, count=1, dtype="uint8", compress="zstd") as dataset:
                dataset.write(np.zeros((1, 1, 1), dtype=np.uint8))
        return True
    except (*GDAL_ERRORS, ValueError):
        return False


def intermediate_codec(compress: str | None) -> str | None:
    """The codec of the tiled file a COG is copied from: ZSTD (level 1) where GDAL has it and the
    COG is compressed at all, else the COG's own ``compress``."""
    if compress is None:
        return None
    return "zstd" if gdal_has_zstd() else compress


class GeoTiffSink(SinkContext):
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
        mask: write an internal per-dataset mask from the ``valid`` given to :meth:`write`;
            default: when ``meta["geotiff"]["mask"]`` describes an input mask, which is then
            re-read from ``meta["source"]`` (see :mod:`.masks`).

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
        mask: bool | None = None,
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
        self.factors = integer_factors(info.get("size"), self.shape[1:])
        self._input_mask = InputMask(meta, self.shape, self.name) if mask is None and InputMask.wanted(meta) else None
        alpha = self._input_mask.alpha if self._input_mask is not None else None
        self._writes_mask = bool(mask) or (self._input_mask is not None and alpha is None)
        self._open()

    # -------------------------------------------------------------- helpers

    def _predictor(self) -> int | None:
        """The predictor of the final file's compression (the COG's with ``cog``)."""
        return predictor(self.compress, self.dtype)

    def _creation_options(self) -> dict[str, Any]:
        """GTiff creation options of the file the windows are written to.

        With ``cog`` that file is an intermediate the COG copy reads once and compresses with
        ``compress``: it is written with a fast codec (:func:`intermediate_codec`, ZSTD level 1)
        instead, so that the data is compressed once with ``compress``, not twice (at 2048^2 x 12
        bands, deflate then deflate again spent 50 s of a 67 s bicubic job on the COG step). It is
        also band-interleaved (the COG itself is pixel-interleaved, as is the file without ``cog``):
        GDAL builds the average overviews of a band-interleaved file band by band, 5-10x faster
        than its multi-band path for a pixel-interleaved one (12 bands: 2.7 s instead of 15.5 s at
        2048^2, 12 s instead of 135 s at 4096^2), every level from full resolution
        (:func:`~.cog.build_overviews`)."""
        options: dict[str, Any] = {
            "tiled": True,
            "blockxsize": self.block[0],
            "blockysize": self.block[1],
            "BIGTIFF": "IF_SAFER",
            "interleave": "band" if self.cog else "pixel",
        }
        codec = intermediate_codec(self.compress) if self.cog else self.compress
        if codec:
            options["compress"] = codec
            options.update(FAST_LEVEL.get(codec, {}) if self.cog else {})
        if predictor(codec, self.dtype):
            options["predictor"] = predictor(codec, self.dtype)
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
        gcps = info.get("gcps")
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": count,
            "dtype": self.dtype.name,
            "crs": None if gcps else crs,
            "transform": None if gcps else exact_transform(self.affine, info, self.factors),
            "nodata": self.nodata,
            **self._creation_options(),
        }
        self._created.append(self._tiled_path)
        try:
            with writing_env(), warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dst = rasterio.open(self._tiled_path, "w", **profile)
                if gcps:
                    gcp_crs = CRS.from_user_input(info["gcp_crs"]) if info.get("gcp_crs") else None
                    self._dst.gcps = (scaled_gcps(gcps, self.factors, self.affine), gcp_crs)
                apply_metadata(self._dst, self.meta, count, self.name, self.factors)
        except GDAL_ERRORS as exc:
            self.abort()
            raise self._write_error(exc, "create the GeoTIFF") from exc
        except BaseException:
            self.abort()
            raise

    # -------------------------------------------------------------- Sink API

    def write(self, window: Window, data: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Store one window (and its mask).

        Args:
            window: ``((col_start, col_stop), (row_start, row_stop))`` of output pixels (a
                Window or plain pairs).
            data: ``(C, bw, bh)`` values in index order, already of the output dtype.
            valid: optional validity of these pixels, ``(bw, bh)`` (every band) or ``(C, bw, bh)``
                (per band): invalid values become :attr:`nodata` (per band; a valid value equal
                to nodata moves to the next value) and, with a mask, masked pixels are those
                invalid in every band (with nodata) or in any band (without). Without it the
                input's mask from ``meta`` is written, if any.

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
        mask = self._window_mask(window, valid, data.shape)
        if valid is not None:
            data = mark_nodata(data, valid, self.nodata)
        data = self._with_alpha(window, data)
        try:
            with writing_env():
                self._dst.write(np.ascontiguousarray(data.transpose(0, 2, 1)), window=rasterio_window(window))
                if mask is not None:
                    self._dst.write_mask(
                        np.ascontiguousarray(mask.T).astype(np.uint8) * 255, window=rasterio_window(window)
                    )
        except GDAL_ERRORS as exc:
            self.abort()
            raise self._write_error(exc, f"write window {window}") from exc

    def _window_mask(self, window: Window, valid: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
        """``(bw, bh)`` bool mask to write for ``window``, or None when the output has no mask band."""
        if valid is not None:
            valid = np.asarray(valid, dtype=bool)
            if valid.shape not in (tuple(shape[1:]), tuple(shape)):
                raise file_error(
                    OutputError,
                    self.name,
                    f"valid mask of shape {valid.shape} does not match window data {tuple(shape)}",
                )
            carries_alpha = self._input_mask is not None and self._input_mask.alpha is not None
            if not self._writes_mask and self.nodata is None and not carries_alpha and not valid.all():
                raise file_error(
                    OutputError,
                    self.name,
                    "invalid pixels but neither nodata nor a mask to mark them; "
                    "open the sink with mask=True or a nodata",
                )
            return mask_of(valid, self.nodata) if self._writes_mask else None
        if not self._writes_mask:
            return None
        if self._input_mask is None:
            return np.ones(shape[1:], dtype=bool)
        return self._input_mask.valid(window)

    def _with_alpha(self, window: Window, data: np.ndarray) -> np.ndarray:
        """``data`` with the alpha band replaced by the input's, nearest-upsampled (when there is one)."""
        if self._input_mask is None or self._input_mask.alpha is None:
            return data
        out = data.copy()
        out[self._input_mask.alpha] = self._input_mask.alpha_values(window)
        return out

    def close(self) -> None:
        """Finish the file (flush, and convert to COG when ``cog``); idempotent.

        Raises:
            OutputError: the data could not be written (every file of the sink is then removed).
        """
        if self._done:
            return
        try:
            if self._input_mask is not None:
                self._input_mask.close()
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
        if getattr(self, "_input_mask", None) is not None:
            self._input_mask.close()
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

    # -------------------------------------------------------------- COG conversion

    def _convert_to_cog(self) -> None:
        """Tiled temp file -> COG at ``path`` with every piece of metadata; deletes the temp file.

        The same two steps ``cog_translate`` ends with, without its WarpedVRT pass: internal
        average overviews on the tiled file, then a GTiff copy with ``COPY_SRC_OVERVIEWS=YES``.
        """
        profile = cog_profile(self.compress, self.block, self._predictor())
        fast = FAST_OVERVIEW_LEVEL.get(intermediate_codec(self.compress) or "", {})
        with writing_env(**overview_config(self.block)):
            expected = build_overviews(self._tiled_path, self.shape[1:], self.block, fast)
            self._created.append(self.path)  # from here on, abort removes the COG too
            got = copy_to_cog(self._tiled_path, self.path, profile, self.name)
        check_copy(expected, got, self.name)
        self._tiled_path.unlink()
