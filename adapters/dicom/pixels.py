"""Pixel values: stored slice pixels <-> real-world values, both ways.

Reading assembles the sorted slices into one ``(1, columns, rows, slices)`` volume of real-world
values (stored * RescaleSlope + RescaleIntercept): in the stored integer dtype when no slice is
rescaled, float32 otherwise. Writing chooses a 16-bit storage dtype (the source's own one when
known), a slope/intercept that holds the values, and a display window computed from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pydicom

from geo_med_sr.adapters.dicom.header import SliceHeader, ds_text, rescale_pair
from geo_med_sr.dtypes import cast_to_dtype, storage_range
from geo_med_sr.errors import InputError, file_error

# ----------------------------------------------------------------------------- reading


def read_pixels(path: Path, forced: bool, rows: int, columns: int) -> np.ndarray:
    """Stored pixel values of one slice, shape ``(rows, columns)``; InputError naming the file."""
    try:
        ds = pydicom.dcmread(path, force=forced)
        if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
            raise ValueError("no pixel data (the file is incomplete or truncated)")
        pixels = ds.pixel_array
    except Exception as exc:  # re-raised with the file name: pydicom raises many types
        reason = " ".join(str(exc).split())[:300]
        hint = (
            "; install pylibjpeg / python-gdcm for compressed files"
            if "decod" in reason.lower() or "plugin" in reason.lower()
            else ""
        )
        raise file_error(
            InputError,
            path,
            f"cannot read the pixel data ({type(exc).__name__}: {reason}){hint}; replace or remove the file",
        ) from exc
    if pixels.shape != (rows, columns):
        raise file_error(
            InputError,
            path,
            f"pixel data of shape {pixels.shape} does not match Rows x Columns {rows}x{columns}; the file is corrupt",
        )
    return pixels


def read_volume(
    items: list[SliceHeader], forced: dict[Path, bool]
) -> tuple[np.ndarray, np.dtype, list[tuple[float, float]]]:
    """The real-world values of the sorted slices ``items`` as one volume.

    Args:
        items: ``(path, header)`` of the slices, sorted along the normal.
        forced: per file, whether it is parsed with ``force`` (no "DICM" preamble).

    Returns:
        ``(volume, storage, pairs)``: the ``(1, columns, rows, slices)`` volume (the stored
        dtype when every slice has slope 1 and intercept 0, float32 otherwise), the stored
        dtype common to all slices, and each slice's ``(slope, intercept)``.

    Raises:
        InputError: a slice's pixel data cannot be decoded or does not match Rows x Columns.
    """
    rows, columns = int(items[0][1].Rows), int(items[0][1].Columns)
    stored = [read_pixels(file, forced[file], rows, columns) for file, _ in items]
    storage = np.result_type(*[s.dtype for s in stored])
    pairs = [rescale_pair(ds) for _, ds in items]
    identity = all(p == (1.0, 0.0) for p in pairs)
    out_dtype = storage if identity else np.dtype(np.float32)
    volume = np.empty((1, columns, rows, len(items)), dtype=out_dtype)
    for k, (pixels, (slope, inter)) in enumerate(zip(stored, pairs)):
        if identity:
            volume[0, :, :, k] = pixels.T
        else:
            volume[0, :, :, k] = (pixels.T.astype(np.float64) * slope + inter).astype(np.float32)
    return volume, storage, pairs


# ----------------------------------------------------------------------------- writing

#: value range of the 16-bit storage dtypes.
#: the storage dtypes a series is written in (BitsAllocated 16).
_STORAGE16 = (np.dtype("uint16"), np.dtype("int16"))


class StoredPixels(NamedTuple):
    """The values of a volume as written: stored integers, their rescale and a display window.

    Attributes:
        raw: ``(columns, rows, slices)`` stored values, little-endian ``storage``.
        storage: uint16 or int16.
        slope, intercept: RescaleSlope / RescaleIntercept (real = raw * slope + intercept),
            exactly the values the DS strings hold.
        center, width: WindowCenter / WindowWidth of the real-world values (computed).
        kept: True when slope/intercept and storage are the source DICOM's own (non-identity) rescale.
    """

    raw: np.ndarray
    storage: np.dtype
    slope: float
    intercept: float
    center: float
    width: float
    kept: bool = False


def source_rescale(meta: dict[str, Any]) -> tuple[np.dtype, float, float] | None:
    """The source DICOM's own ``(storage, slope, intercept)`` when it was not the identity, else None.

    Read from ``meta["dicom"]`` (``rescale`` and ``stored_dtype`` recorded by the reader; an
    older record falls back on ``meta["rescale"]`` and ``meta["dtype"]``). Only a DICOM source
    counts: a scaled NIfTI's scl_slope is chosen by nibabel for its own range and is not kept.
    """
    info = meta.get("dicom")
    if not isinstance(info, dict) or not info.get("template"):
        return None
    rescale = info.get("rescale", meta.get("rescale"))
    if not isinstance(rescale, (list, tuple)) or len(rescale) != 2:
        return None
    slope, inter = float(rescale[0]), float(rescale[1])
    if (slope, inter) == (1.0, 0.0) or slope == 0:
        return None
    stored = np.dtype(str(info.get("stored_dtype", meta.get("dtype", "uint16"))))
    storage = stored if stored in _STORAGE16 else np.dtype("int16" if stored.kind == "i" else "uint16")
    return storage, slope, inter


def _is_scaled(meta: dict[str, Any]) -> bool:
    """True when ``meta["dtype"]`` is a storage dtype under a scaling (the values are not its integers)."""
    nifti = meta.get("nifti")
    rescale = meta.get("rescale")
    scaled = isinstance(nifti, dict) and bool(nifti.get("scaled"))
    return scaled or (isinstance(rescale, (list, tuple)) and tuple(float(v) for v in rescale) != (1.0, 0.0))


def whole_numbers(values: np.ndarray, meta: dict[str, Any]) -> np.ndarray | None:
    """``values`` as whole numbers when they are meant to be integers, else None.

    Integers are meant when ``meta["dtype"]`` is an unscaled integer dtype (the engine's float
    output of an integer source is cast to it: rounded, clipped to its range) or when the values
    already are whole numbers. Returns float64 of the same shape.
    """
    dtype = np.dtype(str(meta.get("dtype") or values.dtype))
    if dtype.kind in "iub" and not _is_scaled(meta):
        return cast_to_dtype(values, dtype).astype(np.float64)
    if values.dtype.kind in "iub":
        return values.astype(np.float64)
    if np.all(np.isfinite(values)) and np.array_equal(values, np.round(values)):
        return values.astype(np.float64)
    return None


def choose_rescale(values: np.ndarray, meta: dict[str, Any]) -> tuple[np.dtype, float, float, bool, np.ndarray]:
    """``(storage, slope, intercept, kept, values)`` for the real-world ``values`` (policy of :func:`encode_volume`).

    The returned values are those to store (the whole numbers when slope 1 is chosen).
    """
    own = source_rescale(meta)
    if own is not None:
        return own[0], own[1], own[2], True, values
    whole = whole_numbers(values, meta)
    declared = np.dtype(str(meta.get("dtype") or "float32"))
    if whole is not None and declared in _STORAGE16 and not _is_scaled(meta):
        return declared, 1.0, 0.0, False, whole  # a 16-bit integer source keeps its own storage (and signedness)
    if whole is not None and whole.size:
        lo, hi = float(whole.min()), float(whole.max())
        for storage in _STORAGE16:
            low, high = storage_range(storage)
            if low <= lo and hi <= high:
                return storage, 1.0, 0.0, False, whole
    if whole is not None:  # whole numbers beyond 16 bits (int32 data): scaled like floats
        values = whole
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return np.dtype("uint16"), 1.0, 0.0, False, values
    nonnegative = float(finite.min()) >= 0
    storage = np.dtype("uint16" if nonnegative else "int16")
    peak = float(np.max(np.abs(finite)))
    slope = float(ds_text(peak / (65535.0 if nonnegative else 32767.0))) if peak > 0 else 1.0
    return storage, slope, 0.0, False, values


def window(values: np.ndarray) -> tuple[float, float]:
    """Window centre and width covering the 0.5-99.5 percentiles of the real-world values."""
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values.ravel()
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.5]))
    return (lo + hi) / 2.0, max(hi - lo, 1e-3)


def encode_volume(values: np.ndarray, meta: dict[str, Any]) -> StoredPixels:
    """Stored 16-bit pixels of the real-world ``values`` ``(columns, rows, slices)``.

    Policy (so that every reader applying ``stored * slope + intercept`` gets true values, and
    a real-world 0 is stored as 0):

    * the source DICOM had its own RescaleSlope/Intercept (not 1/0): they and its storage dtype
      are kept, the values rounded to its grid and clipped (the series reads with the same
      quantisation);
    * whole numbers (an unscaled integer ``meta["dtype"]``: the values are cast to it first)
      within a 16-bit range: slope 1, intercept 0, in the source's own dtype when it is int16 or
      uint16, else uint16 when all >= 0, else int16;
    * anything else: intercept 0, slope ``max|v| / 65535`` in uint16 when all >= 0, else
      ``max|v| / 32767`` in int16. NaN is stored as 0.
    """
    storage, slope, inter, kept, values = choose_rescale(values, meta)
    raw = cast_to_dtype(values, storage, slope, inter).astype(storage.newbyteorder("<"), copy=False)
    center, width = window(values)
    return StoredPixels(raw, storage, slope, inter, center, width, kept)
