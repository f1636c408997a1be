"""GeoTIFF adapter (rasterio): windowed reading, windowed writing, Cloud-Optimized output.

Conventions (DESIGN §3):

* A raster inside the package has its spatial axes in index order, fastest first:
  ``(column, row)``. An image is ``(C, W, H)`` = ``(bands, columns, rows)``, the transpose of
  rasterio's ``(bands, rows, columns)``; every box is ``((col_start, col_stop), (row_start, row_stop))``.
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
``meta["geotiff"]["area_or_point"]`` and writes it back, so a Point file re-reads with the
identical transform, the identical raw tiepoint and ``AREA_OR_POINT=Point``.

Valid pixels: a pixel is valid when, in every selected band, it differs from nodata (when set),
is not NaN (float bands), and is not masked by a GDAL mask band (internal/external mask or
alpha; a mask value 0 is invalid).

Hand-off metadata: bands without a description are written as ``"band <n>"``
(:func:`band_names`) so that QGIS and gdalinfo show names; ``meta["provenance"]`` is stored in
``GEO_MED_SR_<KEY>`` dataset tags (:func:`encode_provenance_value`), which survive the COG copy
and a later ``rio cogeo create``; :meth:`GeoTiffAdapter.read_provenance` reads them back.

Cloud-Optimized output: :class:`GeoTiffSink` writes a tiled, compressed GTiff (a sibling
``<name>.tiled.tif``) and, with ``cog=True``, finishes it the way ``rio_cogeo``'s
``cog_translate`` ends: internal overviews (average) on the tiled file, then a GTiff copy with
``COPY_SRC_OVERVIEWS=YES`` and rio-cogeo's deflate profile (plus predictor and
``BIGTIFF=IF_SAFER``); the result passes ``rio_cogeo.cogeo.cog_validate``. ``cog_translate``
itself is not used because it first re-reads the data through a ``WarpedVRT``, which (measured
with rio-cogeo 7) rewrites values: in a 4-band uint8 raster (GDAL makes band 4 ``alpha`` by
default) with nodata 0, pixels that are nodata in one band but valid in others came back as 1.
It also drops band units and forces single-band rasters to ``gray``. The GTiff copy keeps
values, transform (rotated too), CRS, nodata, AREA_OR_POINT, tags, descriptions, colour
interpretation, scales, offsets, units and band tags; the sink checks that after the copy.
"""

from __future__ import annotations

import copy
import ctypes
import functools
import json
import math
import operator
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

try:
    import rasterio
    import rasterio.shutil
    from rasterio._err import CPLE_BaseError
    from rasterio.crs import CRS
    from rasterio.enums import ColorInterp, Compression, MaskFlags, Resampling
    from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioError
    from rasterio.transform import Affine
    from rasterio.windows import Window
except ImportError as exc:  # pragma: no cover - rasterio is a declared dependency
    raise ImportError("the GeoTIFF adapter needs rasterio: pip install 'rasterio>=1.3' 'rio-cogeo>=5.0'") from exc

from .. import geometry
from ..dtypes import cast_to_dtype
from ..errors import ConfigError, GeoMedSRError, InputError, InputNotFoundError, OutputError, file_error
from ..spatial import SpatialArray
from .base import ADAPTERS, Adapter

Box = tuple[tuple[int, int], tuple[int, int]]

SUFFIXES = (".tif", ".tiff")
#: GDAL drivers accepted as GeoTIFF input.
DRIVERS = ("GTiff", "COG")
#: GDAL block cache (MB) held while a sink writes or converts to COG.
SINK_CACHE_MB = 64
#: prefix of the dataset tags that carry ``meta["provenance"]`` (``GEO_MED_SR_<KEY>``).
PROVENANCE_PREFIX = "GEO_MED_SR_"
#: compressions that take a TIFF predictor.
_PREDICTOR_COMPRESSIONS = ("deflate", "lzw", "zstd", "lzma")
#: exceptions rasterio/GDAL raise for unreadable or unwritable files.
_GDAL_ERRORS = (RasterioError, CPLE_BaseError)


class _FromMeta:
    """Sentinel: take the value from ``meta`` (distinct from an explicit ``None``)."""

    def __repr__(self) -> str:
        return "FROM_META"


FROM_META: Any = _FromMeta()


# ---------------------------------------------------------------- conversions (pure helpers)


def affine_from_transform(transform: Affine) -> np.ndarray:
    """Centre-anchored 3x3 affine (index (column, row) -> CRS) from a rasterio transform."""
    return geometry.corner_to_centre(np.array(transform, dtype=np.float64).reshape(3, 3))


def transform_from_affine(affine: np.ndarray) -> Affine:
    """Corner-anchored rasterio transform from a centre-anchored 3x3 affine (exact inverse)."""
    return Affine(*geometry.centre_to_corner(np.asarray(affine, dtype=np.float64))[:2].ravel().tolist())


def encode_nodata(value: float | None) -> float | str | None:
    """JSON-able nodata: a float, ``None``, or ``"nan"``/``"inf"``/``"-inf"`` for non-finite values."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else str(value)


def decode_nodata(value: float | str | None) -> float | None:
    """Inverse of :func:`encode_nodata`."""
    return None if value is None else float(value)


def box_to_window(box: Box) -> Window:
    """rasterio Window of an index-order box ``((c0, c1), (r0, r1))``."""
    (c0, c1), (r0, r1) = box
    return Window(col_off=c0, row_off=r0, width=c1 - c0, height=r1 - r0)


def _normalise_box(
    box: Sequence[Sequence[int]], spatial: tuple[int, int], path: Path, error: type[GeoMedSRError]
) -> Box:
    """``box`` as ints, checked to be non-empty and inside a ``(W, H)`` image."""
    try:
        (c0, c1), (r0, r1) = ((int(a), int(b)) for a, b in box)
    except (TypeError, ValueError) as exc:
        raise file_error(error, path, f"box {box!r} is not ((col_start, col_stop), (row_start, row_stop))") from exc
    width, height = spatial
    if not (0 <= c0 < c1 <= width and 0 <= r0 < r1 <= height):
        raise file_error(
            error,
            path,
            f"box (({c0}, {c1}), ({r0}, {r1})) is empty or outside the image of {width} columns x {height} rows",
        )
    return (c0, c1), (r0, r1)


def _reason(exc: BaseException) -> str:
    """One-line reason of a rasterio error, preferring GDAL's message over rasterio's wrapper."""
    inner = exc.__cause__ or exc.__context__
    if isinstance(inner, CPLE_BaseError) and str(inner):
        exc = inner
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _area_or_point(value: str | None) -> str:
    return "Point" if str(value or "Area").strip().lower() == "point" else "Area"


def _crs_label(wkt: str | None) -> str | None:
    """``"EPSG:<code>"`` when the CRS has one, else its WKT shortened to 80 characters."""
    if not wkt:
        return None
    code = CRS.from_user_input(wkt).to_epsg()
    if code is not None:
        return f"EPSG:{code}"
    return wkt if len(wkt) <= 80 else wkt[:77] + "..."


# ---------------------------------------------------------------- reading


def _open_dataset(path: Path) -> rasterio.io.DatasetReader:
    """Open ``path`` with rasterio, turning every failure into a one-line InputError."""
    if not path.exists():
        raise file_error(InputNotFoundError, path, "no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise file_error(InputError, path, "the file is empty (0 bytes); expected a GeoTIFF")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except _GDAL_ERRORS as exc:
        raise file_error(
            InputError,
            path,
            f"not a readable GeoTIFF ({_reason(exc)}); the file may be truncated or corrupt, or not a TIFF",
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


def _check_bands(path: Path, bands: Sequence[int] | None, count: int) -> tuple[int, ...]:
    """Validated 1-based band indexes (all bands when ``bands`` is None)."""
    if bands is None:
        return tuple(range(1, count + 1))
    try:
        selected = tuple(operator.index(b) for b in bands)
    except TypeError as exc:
        raise file_error(ConfigError, path, f"bands must be whole numbers in 1..{count}, got {list(bands)!r}") from exc
    if not selected:
        raise file_error(ConfigError, path, f"no bands selected; choose band indexes in 1..{count}")
    for band in selected:
        if not 1 <= band <= count:
            raise file_error(ConfigError, path, f"band {band} is out of range: the file has {count} bands (1..{count})")
    seen = set()
    for band in selected:
        if band in seen:
            raise file_error(
                ConfigError,
                path,
                f"band {band} is selected twice; select each band once (the file has {count} bands, 1..{count})",
            )
        seen.add(band)
    return selected


class GeoTiffSource:
    """Windowed reader of a GeoTIFF (a Source for the inference engine).

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
        self._src = _open_dataset(self.path)
        try:
            self._setup(bands)
        except BaseException:
            self._src.close()
            raise

    def _setup(self, bands: Sequence[int] | None) -> None:
        src = self._src
        self.bands = _check_bands(self.path, bands, src.count)
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
        self._last_value_valid: tuple[Box, np.ndarray] | None = None
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
        area_or_point = _area_or_point(tags.pop("AREA_OR_POINT", "Area"))
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
                "area_or_point": area_or_point,
                "block_size": [int(block_cols), int(block_rows)] if tiled else None,
                "compress": compression.name.lower() if compression is not None else None,
            },
        }

    def _probe(self) -> None:
        """Read one pixel of the first and the last block: catches most truncated files cheaply."""
        width, height = self.shape[1:]
        for box in (((0, 1), (0, 1)), ((width - 1, width), (height - 1, height))):
            self._read_raw(box)

    # -------------------------------------------------------------- reading windows

    def _read_raw(self, box: Box) -> np.ndarray:
        """Selected bands of ``box`` in rasterio order ``(C, bh, bw)``."""
        try:
            return self._src.read(indexes=list(self.bands), window=box_to_window(box))
        except _GDAL_ERRORS as exc:
            raise file_error(
                InputError,
                self.path,
                f"cannot read pixels of window {box} ({_reason(exc)}); the file may be truncated or corrupt",
            ) from exc

    def _value_valid(self, raw: np.ndarray) -> np.ndarray:
        """``(bh, bw)`` validity from the values alone (nodata and NaN)."""
        valid = np.ones(raw.shape[1:], dtype=bool)
        if self.nodata is not None and not math.isnan(self.nodata):
            valid &= ~np.any(raw == self.nodata, axis=0)
        if self.dtype.kind == "f":
            valid &= ~np.any(np.isnan(raw), axis=0)
        return valid

    def _mask_valid(self, box: Box) -> np.ndarray | None:
        """``(bh, bw)`` validity from GDAL mask bands, or None when no band has one."""
        if not self._mask_bands:
            return None
        try:
            masks = self._src.read_masks(indexes=list(self._mask_bands), window=box_to_window(box))
        except _GDAL_ERRORS as exc:
            raise file_error(
                InputError,
                self.path,
                f"cannot read the mask of window {box} ({_reason(exc)}); the file may be truncated or corrupt",
            ) from exc
        return np.all(masks != 0, axis=0)

    def read(self, box: Sequence[Sequence[int]]) -> np.ndarray:
        """Values of an in-bounds box.

        Args:
            box: ``((col_start, col_stop), (row_start, row_stop))``.

        Returns:
            ``(C, bw, bh)`` array of :attr:`dtype` (index order; only that window is read).
        """
        box = _normalise_box(box, self.shape[1:], self.path, InputError)
        raw = self._read_raw(box)
        if self._checks_values:
            self._last_value_valid = (box, self._value_valid(raw))
        return np.ascontiguousarray(raw.transpose(0, 2, 1))

    def read_valid(self, box: Sequence[Sequence[int]]) -> np.ndarray:
        """Valid-pixel mask of an in-bounds box.

        Args:
            box: ``((col_start, col_stop), (row_start, row_stop))``.

        Returns:
            ``(bw, bh)`` bool array; True where every selected band holds a measured value.
        """
        box = _normalise_box(box, self.shape[1:], self.path, InputError)
        (c0, c1), (r0, r1) = box
        valid = np.ones((r1 - r0, c1 - c0), dtype=bool)
        if self._checks_values:
            cached = self._last_value_valid
            valid &= cached[1] if cached is not None and cached[0] == box else self._value_valid(self._read_raw(box))
        masked = self._mask_valid(box)
        if masked is not None:
            valid &= masked
        return np.ascontiguousarray(valid.T)

    @property
    def may_have_invalid(self) -> bool:
        """Whether any pixel can be invalid (nodata set, float NaN or a GDAL mask band)."""
        return bool(self._checks_values or self._mask_bands)

    def to_spatial_array(self) -> SpatialArray:
        """The whole selection as a SpatialArray (``(C, W, H)``; ``valid`` is None when all pixels are valid)."""
        box = ((0, self.shape[1]), (0, self.shape[2]))
        array = self.read(box)
        valid = self.read_valid(box)
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


# ---------------------------------------------------------------- writing


def _block_sizes(block_size: int, width: int, height: int, path: Path) -> tuple[int, int]:
    """Tile width and height: ``block_size`` rounded down to a multiple of 16, no larger than needed."""
    if int(block_size) < 16:
        raise file_error(ConfigError, path, f"block_size must be at least 16 pixels, got {block_size}")
    block = int(block_size) // 16 * 16

    def ceil16(n: int) -> int:
        return -(-n // 16) * 16

    return min(block, ceil16(width)), min(block, ceil16(height))


def _check_compress(compress: str | None, path: Path) -> str | None:
    """Lower-case GDAL compression name, or None for no compression."""
    if compress is None or str(compress).lower() in ("none", "raw"):
        return None
    name = str(compress).lower()
    known = sorted(c.name.lower() for c in Compression if c.name.lower() != "none")
    if name not in known:
        raise file_error(ConfigError, path, f"unknown compression {compress!r}; use one of {', '.join(known)} or None")
    return name


def _overview_block(bw: int, bh: int) -> int:
    """Overview tile size: the largest power of two <= the tile size, within GDAL's 64..4096."""
    size = 1 << (min(bw, bh).bit_length() - 1)
    return int(min(max(size, 64), 4096))


def _check_nodata(nodata: float | None, dtype: np.dtype, path: Path) -> None:
    if nodata is None or dtype.kind == "f":
        return
    lo, hi = (np.iinfo(dtype).min, np.iinfo(dtype).max)
    if not math.isfinite(nodata) or nodata != round(nodata) or not lo <= nodata <= hi:
        raise file_error(
            ConfigError,
            path,
            f"nodata {nodata} cannot be stored as {dtype.name} ({lo}..{hi}); choose another output dtype or nodata",
        )


def _matching(values: Any, count: int, what: str, path: Path) -> list | None:
    """``values`` as a list when it has one entry per band, else None (with a warning when given)."""
    if values is None:
        return None
    values = list(values)
    if len(values) != count:
        warnings.warn(f"{path}: {len(values)} {what} for {count} bands; {what} not written", UserWarning, stacklevel=4)
        return None
    return values


def encode_provenance_value(value: Any) -> str:
    """Tag text of one provenance value: JSON, except plain strings that stay readable.

    A string is written raw when reading it back cannot mistake it for JSON (``"edsr"``); a
    string that parses as JSON (``"2"``, ``"true"``, ``"[1]"``), is empty or has
    leading/trailing whitespace (GDAL drops empty tags and strips leading spaces) is written
    JSON-quoted, and every other value as JSON. :func:`decode_provenance_value` inverts it.
    """
    if isinstance(value, str) and value and value == value.strip() and not _parses_as_json(value):
        return value
    return json.dumps(value, sort_keys=True)


def decode_provenance_value(text: str) -> Any:
    """Inverse of :func:`encode_provenance_value`: JSON when the text parses, else the raw string.

    Files written before strings that look like JSON were quoted read such a string as the
    JSON value it spells (``"2"`` -> ``2``); everything else reads back unchanged.
    """
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parses_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _provenance_tags(provenance: dict[str, Any] | None) -> dict[str, str]:
    """``GEO_MED_SR_<KEY>`` dataset tags of a provenance dict (keys upper-cased)."""
    if not provenance:
        return {}
    return {
        f"{PROVENANCE_PREFIX}{str(key).upper()}": encode_provenance_value(value) for key, value in provenance.items()
    }


def provenance_from_tags(tags: dict[str, str]) -> dict[str, Any] | None:
    """Provenance dict from dataset tags (inverse of the writer's tags), or None when there is none.

    Keys are the tag names without ``GEO_MED_SR_``, lower-cased; values decoded with
    :func:`decode_provenance_value`.
    """
    provenance = {
        key[len(PROVENANCE_PREFIX) :].lower(): decode_provenance_value(value)
        for key, value in tags.items()
        if key.startswith(PROVENANCE_PREFIX)
    }
    return provenance or None


def band_names(meta: dict[str, Any], count: int) -> list[str]:
    """Band descriptions to write: the source's, with ``"band <n>"`` for bands that have none.

    ``n`` is the band's number in the source file (``meta["geotiff"]["bands"]`` when it lists
    one per output band), else its position 1..count, so QGIS and ``gdalinfo`` always show a
    name. Descriptions whose count does not match ``count`` are ignored (with a warning from
    :func:`_apply_metadata`).
    """
    info = meta.get("geotiff") or {}
    descriptions = list(info.get("descriptions") or [])
    if len(descriptions) != count:
        descriptions = [None] * count
    numbers = list(info.get("bands") or [])
    if len(numbers) != count:
        numbers = list(range(1, count + 1))
    return [str(text) if text else f"band {number}" for text, number in zip(descriptions, numbers)]


def _apply_metadata(dst: Any, meta: dict[str, Any], count: int, path: Path) -> None:
    """Write descriptions, colour interpretation, scales/offsets/units and tags of ``meta`` to ``dst``."""
    info = meta.get("geotiff") or {}
    _matching(info.get("descriptions"), count, "band descriptions", path)  # warns on a count mismatch
    for i, text in enumerate(band_names(meta, count)):
        dst.set_band_description(i + 1, text)
    colorinterp = _matching(info.get("colorinterp"), count, "colour interpretations", path)
    if colorinterp:
        _set_colorinterp(dst, colorinterp, path)
    scales = _matching(info.get("scales"), count, "scales", path)
    offsets = _matching(info.get("offsets"), count, "offsets", path)
    if scales and any(float(s) != 1.0 for s in scales):
        dst.scales = tuple(float(s) for s in scales)
    if offsets and any(float(o) != 0.0 for o in offsets):
        dst.offsets = tuple(float(o) for o in offsets)
    units = _matching(info.get("units"), count, "units", path)
    if units and any(units):
        dst.units = tuple(str(u or "") for u in units)
    tags = {str(k): str(v) for k, v in (info.get("tags") or {}).items()}
    tags.update(_provenance_tags(meta.get("provenance")))
    tags["AREA_OR_POINT"] = _area_or_point(info.get("area_or_point"))
    dst.update_tags(**tags)
    for i, band_tags in enumerate(_matching(info.get("band_tags"), count, "band tag sets", path) or []):
        if band_tags:
            dst.update_tags(i + 1, **{str(k): str(v) for k, v in band_tags.items()})


def _set_colorinterp(dst: Any, names: Sequence[str], path: Path) -> None:
    try:
        dst.colorinterp = [ColorInterp[str(name)] for name in names]
    except (KeyError, ValueError, *_GDAL_ERRORS) as exc:
        warnings.warn(
            f"{path}: colour interpretation {list(names)} not written ({_reason(exc)})", UserWarning, stacklevel=4
        )


def _layout_metadata(src: Any) -> dict[str, Any]:
    """Grid and metadata a COG copy must keep, as plain comparable values."""
    return {
        "grid": (tuple(src.transform), src.crs.to_wkt() if src.crs else None, src.shape, src.count, src.dtypes[0]),
        "nodata": encode_nodata(src.nodata),
        "tags": src.tags(),
        "descriptions": list(src.descriptions),
        "colorinterp": [c.name for c in src.colorinterp],
        "scales": [float(s) for s in src.scales],
        "offsets": [float(o) for o in src.offsets],
        "units": [u or "" for u in src.units],
        "band_tags": [dict(src.tags(b)) for b in src.indexes],
    }


def _check_blocks(path: Path, name: Path | None = None) -> None:
    """Raise OutputError (naming ``name``, default ``path``) unless every block of ``path`` is in the file.

    GDAL flushes cached blocks when a dataset is closed and rasterio does not report errors
    from that flush, so a disk that fills up at that moment would otherwise leave a silently
    truncated file. Reading the block table of the full-resolution image is cheap (metadata
    only, no pixel data).
    """
    name = path if name is None else name
    size = path.stat().st_size
    try:
        with rasterio.open(path) as src:
            rows, cols = src.block_shapes[0]
            bands = src.indexes if src.interleaving is not None and src.interleaving.name.lower() == "band" else (1,)
            for band in bands:
                for y in range(-(-src.height // rows)):
                    for x in range(-(-src.width // cols)):
                        offset = src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=band)
                        length = src.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=band)
                        if not offset or not length or int(offset) + int(length) > size:
                            raise file_error(
                                OutputError,
                                name,
                                f"block {x},{y} of band {band} was not written completely; the disk may be full",
                            )
    except _GDAL_ERRORS as exc:
        raise file_error(
            OutputError, name, f"the written file cannot be read back ({_reason(exc)}); the disk may be full"
        ) from exc


@functools.lru_cache(maxsize=1)
def _gdal_libtiff() -> Any:
    """The libtiff that GDAL uses, loaded with ctypes (Linux only), or None when not found.

    Picks the ``libtiff*`` mapped into this process from the folder that holds ``libgdal``
    (rasterio wheels bundle both in ``rasterio.libs``; Pillow may map another libtiff elsewhere).
    """
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    paths = {line.split(maxsplit=5)[-1] for line in maps if line.count(" ") >= 5 and "/" in line}
    gdal_dirs = {os.path.dirname(p) for p in paths if os.path.basename(p).startswith("libgdal")}
    tiffs = sorted(p for p in paths if os.path.basename(p).startswith("libtiff") and os.path.dirname(p) in gdal_dirs)
    if not tiffs:
        return None
    try:
        lib = ctypes.CDLL(tiffs[0])
        lib.TIFFSetErrorHandler.restype = ctypes.c_void_p
        lib.TIFFSetErrorHandler.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return lib


@contextmanager
def _quiet_libtiff() -> Iterator[None]:
    """Mute libtiff's global error handler while the sink writes.

    GDAL's low-level TIFF I/O reports a failed write (``_tiffWriteProc: File too large.``) to
    libtiff's default handler, which prints straight to the C ``stderr``. GDAL raises its own
    error for the same failure, which the sink turns into a one-line OutputError, so the raw
    lines are noise that would break the CLI's one-line error contract.
    """
    lib = _gdal_libtiff()
    if lib is None:
        yield
        return
    previous = lib.TIFFSetErrorHandler(None)
    try:
        yield
    finally:
        lib.TIFFSetErrorHandler(previous)


class GeoTiffSink:
    """Windowed writer of a tiled, compressed GeoTIFF, optionally converted to a COG on close.

    Args:
        path: the file to produce (the temporary target the I/O layer hands out).
        shape: ``(C, W, H)`` of the output.
        affine: ``(3, 3)`` centre-anchored index (column, row) -> CRS affine of the output grid.
        meta: package metadata; ``meta["geotiff"]`` supplies CRS, descriptions, colour
            interpretation, scales/offsets/units, tags and AREA_OR_POINT (bands without a
            description are named ``"band <n>"``, see :func:`band_names`); ``meta["provenance"]``
            is stored as ``GEO_MED_SR_<KEY>`` dataset tags (key upper-cased; values encoded by
            :func:`encode_provenance_value`, read back by :meth:`GeoTiffAdapter.read_provenance`).
        dtype: output data type; every window must already have it.
        nodata: nodata value; by default ``meta["geotiff"]["nodata"]``; ``None`` for none.
        cog: write a Cloud-Optimized GeoTIFF (tiled temp file, overviews and COG copy on close).
        block_size: tile size in pixels (rounded down to a multiple of 16, capped to the image).
        compress: GDAL compression name (``"deflate"``, ``"lzw"``, ``"zstd"``, ...) or None.
        name: the path error messages name (e.g. the user's output while ``path`` is the
            I/O layer's temporary target); default ``path``.

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
        _check_nodata(self.nodata, self.dtype, self.name)
        self.compress = _check_compress(compress, self.name)
        self.block = _block_sizes(block_size, self.shape[1], self.shape[2], self.name)
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

    @contextmanager
    def _env(self, **extra: Any) -> Iterator[None]:
        with rasterio.Env(GDAL_CACHEMAX=SINK_CACHE_MB, **extra), _quiet_libtiff():
            yield

    def _predictor(self) -> int | None:
        if self.compress not in _PREDICTOR_COMPRESSIONS:
            return None
        return 3 if self.dtype.kind == "f" else 2

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
            f"could not {action} ({_reason(exc)}); the disk may be full or the folder not writable",
        )

    def _open(self) -> None:
        info = self.meta.get("geotiff") or {}
        count, width, height = self.shape
        try:
            crs = CRS.from_user_input(info["crs"]) if info.get("crs") else None
        except (CRSError, *_GDAL_ERRORS) as exc:
            raise file_error(
                ConfigError,
                self.name,
                f"meta crs is not a CRS GDAL understands ({_reason(exc)}); expected WKT or 'EPSG:<code>'",
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
            with self._env(), warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dst = rasterio.open(self._tiled_path, "w", **profile)
                _apply_metadata(self._dst, self.meta, count, self.name)
        except _GDAL_ERRORS as exc:
            self.abort()
            raise self._write_error(exc, "create the GeoTIFF") from exc
        except BaseException:
            self.abort()
            raise

    # -------------------------------------------------------------- Sink API

    def write(self, box: Sequence[Sequence[int]], data: np.ndarray) -> None:
        """Store one window.

        Args:
            box: ``((col_start, col_stop), (row_start, row_stop))`` of output pixels.
            data: ``(C, bw, bh)`` values in index order, already of the output dtype.
        """
        if self._done or self._dst is None:
            raise file_error(OutputError, self.name, "the GeoTIFF sink is already closed; open a new sink")
        box = _normalise_box(box, self.shape[1:], self.name, OutputError)
        (c0, c1), (r0, r1) = box
        expected = (self.shape[0], c1 - c0, r1 - r0)
        if tuple(data.shape) != expected:
            raise file_error(
                OutputError,
                self.name,
                f"window data of shape {tuple(data.shape)} does not match box {box}; expected {expected}",
            )
        if data.dtype != self.dtype:
            raise file_error(
                OutputError,
                self.name,
                f"window data has dtype {data.dtype} but the output is {self.dtype}; cast it first (geo_med_sr.dtypes.cast_to_dtype)",
            )
        try:
            with self._env():
                self._dst.write(np.ascontiguousarray(data.transpose(0, 2, 1)), window=box_to_window(box))
        except _GDAL_ERRORS as exc:
            self.abort()
            raise self._write_error(exc, f"write window {box}") from exc

    def close(self) -> None:
        """Finish the file (flush, and convert to COG when ``cog``); idempotent.

        Raises:
            OutputError: the data could not be written (every file of the sink is then removed).
        """
        if self._done:
            return
        try:
            with self._env():
                self._dst.close()
                _check_blocks(self._tiled_path, self.name)
            if self.cog:
                self._convert_to_cog()
        except (*_GDAL_ERRORS, OSError) as exc:
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
                with _quiet_libtiff():
                    self._dst.close()
            except (*_GDAL_ERRORS, OSError):
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

    def _cog_profile(self) -> dict[str, Any]:
        """rio-cogeo's deflate COG profile with this sink's compression, tiles and predictor."""
        from rio_cogeo.profiles import cog_profiles

        profile = dict(cog_profiles.get("deflate"))
        profile.update(
            driver="GTiff",
            compress=(self.compress or "none").upper(),
            blockxsize=self.block[0],
            blockysize=self.block[1],
            BIGTIFF="IF_SAFER",
        )
        if self._predictor():
            profile["predictor"] = self._predictor()
        return profile

    def _convert_to_cog(self) -> None:
        """Tiled temp file -> COG at ``path`` with every piece of metadata; deletes the temp file.

        The same two steps ``cog_translate`` ends with, without its WarpedVRT pass: internal
        average overviews on the tiled file, then a GTiff copy with ``COPY_SRC_OVERVIEWS=YES``.
        """
        profile = self._cog_profile()
        _, width, height = self.shape
        factors = overview_factors(width, height, min(self.block))
        config = {"GDAL_NUM_THREADS": "ALL_CPUS", "GDAL_TIFF_OVR_BLOCKSIZE": str(_overview_block(*self.block))}
        with self._env(**config):
            with rasterio.open(self._tiled_path, "r+") as tiled:
                if factors:
                    tiled.build_overviews(factors, Resampling.average)
                tiled.update_tags(OVERVIEW_RESAMPLING="AVERAGE")
                expected = _layout_metadata(tiled)
            self._created.append(self.path)
            rasterio.shutil.copy(str(self._tiled_path), str(self.path), copy_src_overviews=True, **profile)
            _check_blocks(self.path, self.name)
            with rasterio.open(self.path) as cog:
                got = _layout_metadata(cog)
        if got["grid"] != expected["grid"]:
            raise file_error(
                OutputError,
                self.name,
                f"the COG copy changed the grid ({got['grid'][0]} vs {expected['grid'][0]}); write with cog=False and report this",
            )
        changed = sorted(key for key in expected if got[key] != expected[key])
        if changed:
            warnings.warn(
                f"{self.name}: the COG copy did not keep the {', '.join(changed)} of the tiled file",
                UserWarning,
                stacklevel=3,
            )
        self._tiled_path.unlink()


def overview_factors(width: int, height: int, tile: int) -> list[int]:
    """Decimation factors 2, 4, ... until both sides of the overview fit in one ``tile``.

    Stopping at the smallest side (``rasterio.rio.overview.get_maximum_overview_level``, used by
    ``cog_translate``) leaves e.g. a 600x500 image with 512 tiles without overviews, which
    ``cog_validate`` warns about and QGIS then reads at full resolution when zoomed out.
    """
    factors: list[int] = []
    factor = 1
    while max(width // factor, height // factor) > tile:
        factor *= 2
        factors.append(factor)
    return factors


# ---------------------------------------------------------------- adapter


def _has_suffix(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


class GeoTiffAdapter(Adapter):
    """``.tif`` / ``.tiff`` rasters (GeoTIFF and COG), read and written window by window."""

    name = "geotiff"
    is_folder = False
    #: the adapter offers windowed sources and sinks (:meth:`open_source`, :meth:`open_sink`).
    streaming = True

    @classmethod
    def can_read(cls, path: Path) -> bool:
        path = Path(path)
        return path.is_file() and _has_suffix(path)

    @classmethod
    def can_write(cls, path: Path) -> bool:
        return _has_suffix(Path(path))

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
        mask is per pixel: a pixel that was nodata in one band of the source is nodata in all).
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
        _check_nodata(nodata, dtype, path)
        if image.valid is not None and nodata is not None and not image.valid.all():
            array = np.where(image.valid[np.newaxis], array, np.asarray(nodata, dtype=dtype))
        _, width, height = array.shape
        with GeoTiffSink(
            path, array.shape, image.affine, image.meta, dtype, nodata=nodata, cog=cog, block_size=block_size
        ) as sink:
            sink.write(((0, width), (0, height)), array)

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
        except (*_GDAL_ERRORS, OSError):
            return None
        return provenance_from_tags(tags)

    @classmethod
    def open_source(cls, path: Path, bands: Sequence[int] | None = None) -> GeoTiffSource:
        """A windowed reader of ``path`` (close it, or use it as a context manager).

        Streaming caps GDAL's process-wide block cache at ``SINK_CACHE_MB`` (unless the user
        set ``GDAL_CACHEMAX``), so memory does not grow with the scene: GDAL's default (5 % of
        RAM) would otherwise fill with blocks of a large scene.
        """
        if "GDAL_CACHEMAX" not in os.environ:
            rasterio.env.set_gdal_config("GDAL_CACHEMAX", SINK_CACHE_MB)
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
        )

    @classmethod
    def describe(cls, image: SpatialArray) -> dict[str, Any]:
        info = image.meta.get("geotiff", {})
        transform = transform_from_affine(image.affine)
        width, height = image.spatial_shape
        corners = np.array([[0, width, 0, width], [0, 0, height, height], [1, 1, 1, 1]], dtype=np.float64)
        xs, ys = (np.array(transform, dtype=np.float64).reshape(3, 3) @ corners)[:2]
        nodata = info.get("nodata")
        return {
            "CRS": _crs_label(info.get("crs")) or "none (pixel grid only)",
            "transform (a, b, c, d, e, f)": tuple(transform)[:6],
            "bounds (minx, miny, maxx, maxy)": (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())),
            "band descriptions": info.get("descriptions"),
            "nodata": nodata,
            "AREA_OR_POINT": info.get("area_or_point", "Area"),
            "colorinterp": info.get("colorinterp"),
        }


ADAPTERS.add("geotiff", GeoTiffAdapter)
