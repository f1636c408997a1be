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

from ...dtypes import cast_to_dtype, rescale_for
from ...errors import InputError, file_error
from .header import SliceHeader, rescale_pair

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


class StoredPixels(NamedTuple):
    """The values of a volume as written: stored integers, their rescale and a display window.

    Attributes:
        raw: ``(columns, rows, slices)`` stored values, little-endian ``storage``.
        storage: uint16 or int16.
        slope, intercept: RescaleSlope / RescaleIntercept (real = raw * slope + intercept).
        center, width: WindowCenter / WindowWidth of the real-world values.
    """

    raw: np.ndarray
    storage: np.dtype
    slope: float
    intercept: float
    center: float
    width: float


def storage_dtype(meta: dict[str, Any], values: np.ndarray) -> tuple[np.dtype, bool]:
    """Storage dtype of the written pixels and whether it is the source's own dtype."""
    name = str(meta.get("dtype", ""))
    if name in ("uint16", "int16"):
        return np.dtype(name), True
    if name == "uint8":
        return np.dtype("uint16"), True
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    nonnegative = finite.size == 0 or float(finite.min()) >= 0
    return np.dtype("uint16" if nonnegative else "int16"), False


def window(values: np.ndarray) -> tuple[float, float]:
    """Window centre and width covering the 0.5-99.5 percentiles of the real-world values."""
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values.ravel()
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.5]))
    return (lo + hi) / 2.0, max(hi - lo, 1e-3)


def encode_volume(values: np.ndarray, meta: dict[str, Any]) -> StoredPixels:
    """Stored pixels of the real-world ``values`` ``(columns, rows, slices)``.

    The source's own storage dtype keeps its recorded ``meta["rescale"]`` (so a read series is
    written back bit for bit); otherwise the slope/intercept are chosen to hold the values.
    """
    storage, own_dtype = storage_dtype(meta, values)
    rescale = meta.get("rescale")
    if own_dtype and isinstance(rescale, (list, tuple)) and len(rescale) == 2:
        slope, inter = float(rescale[0]), float(rescale[1])
    else:
        slope, inter = rescale_for(values, storage)
    raw = cast_to_dtype(values, storage, slope, inter).astype(storage.newbyteorder("<"), copy=False)
    center, width = window(values)
    return StoredPixels(raw, storage, slope, inter, center, width)
