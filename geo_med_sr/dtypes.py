"""The dtype policy: what values are computed in, and casting real-world values back to a storage
dtype (rounding and clipping, never wrap-around).

* Computed in float32: bool, (u)int8, (u)int16, float16 and float32 storage, and scaled data
  (real-world values of a NIfTI/DICOM file with slope/intercept) - float32 holds all of them
  exactly.
* Computed in float64: (u)int32, (u)int64 and float64 storage, which float32 would round
  (a uint32 of 16777217 becomes 16777216): classical methods then reproduce the values exactly
  (``nearest`` copies them); networks still run in float32 inside, on normalised values.
* Refused at read time by the adapters: complex data (no method here is defined for it).
"""

from __future__ import annotations

import numpy as np

#: storage dtypes whose values float32 cannot all hold exactly: computed in float64.
WIDE_KINDS = {"f8", "i4", "u4", "i8", "u8"}


def compute_dtype(storage: np.dtype | str | None) -> np.dtype:
    """The float dtype values stored as ``storage`` are computed in (float64 for wide types, else float32)."""
    if storage is None:
        return np.dtype(np.float32)
    dtype = np.dtype(storage)
    return np.dtype(np.float64) if f"{dtype.kind}{dtype.itemsize}" in WIDE_KINDS else np.dtype(np.float32)


def storage_range(dtype: np.dtype | str) -> tuple[float, float]:
    """Smallest and largest value ``dtype`` can hold (finite float limits for floats)."""
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    return float(info.min), float(info.max)


#: values cast per chunk by :func:`cast_to_dtype` (8 MB of float64 temporaries each).
CAST_CHUNK = 1 << 20


def cast_to_dtype(values: np.ndarray, dtype: np.dtype | str, slope: float = 1.0, inter: float = 0.0) -> np.ndarray:
    """Stored values ``raw`` such that ``raw * slope + inter`` approximates ``values``.

    Integer dtypes are rounded to the nearest integer and clipped to the dtype's range (a value
    of 300 stored as uint8 becomes 255, never 44); NaN becomes 0. Float dtypes are clipped to
    their finite range.

    Args:
        values: real-world values, any shape.
        dtype: storage dtype.
        slope, inter: storage scaling (NIfTI scl_slope/scl_inter, DICOM RescaleSlope/Intercept).

    Returns:
        array of ``dtype``, same shape as ``values``.
    """
    dtype = np.dtype(dtype)
    values = np.asarray(values)
    out = np.empty(values.shape, dtype)
    flat, dest = values.reshape(-1), out.reshape(-1)
    lo, hi = storage_range(dtype)
    for start in range(0, flat.size, CAST_CHUNK):  # in chunks: float64 temporaries stay small for any volume
        raw = flat[start : start + CAST_CHUNK].astype(np.float64)
        if slope != 1.0 or inter != 0.0:
            raw = (raw - inter) / slope
        if dtype.kind in "iub":
            raw = np.nan_to_num(np.rint(raw), nan=0.0, posinf=hi, neginf=lo)
        dest[start : start + CAST_CHUNK] = np.clip(raw, lo, hi)
    return out


def rescale_for(values: np.ndarray, dtype: np.dtype | str) -> tuple[float, float]:
    """A (slope, inter) pair that fits the range of ``values`` into integer ``dtype``.

    Returns ``(1.0, 0.0)`` when the values are already whole numbers inside the range.
    """
    dtype = np.dtype(dtype)
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    lo, hi = storage_range(dtype)
    if finite.size == 0:
        return 1.0, 0.0
    vmin, vmax = float(finite.min()), float(finite.max())
    if vmin >= lo and vmax <= hi and np.all(finite == np.round(finite)):
        return 1.0, 0.0
    slope = (vmax - vmin) / (hi - lo) if vmax > vmin else 1.0
    inter = vmin - lo * slope
    return float(slope), float(inter)


def next_to(value: float, dtype: np.dtype | str) -> float:
    """The value next to ``value`` that ``dtype`` holds (what a valid pixel equal to nodata becomes)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        _, hi = storage_range(dtype)
        return value + 1 if value < hi else value - 1
    return float(np.nextafter(np.asarray(value, dtype=dtype), np.asarray(np.inf, dtype=dtype)))


def mark_nodata(data: np.ndarray, valid: np.ndarray, nodata: float | None, *, copy: bool = True) -> np.ndarray:
    """Values with ``nodata`` written where ``valid`` is False, per pixel or per band.

    Args:
        data: ``(C, *S)`` values of the storage dtype.
        valid: ``S`` (one mask for every band) or ``(C, *S)`` (one per band) bool.
        nodata: the nodata value (NaN allowed), or None (``data`` is returned unchanged).
        copy: work on a copy (False: change ``data`` in place).

    Returns:
        ``data`` where each invalid value is ``nodata`` and a valid value equal to ``nodata`` is
        moved to the neighbouring value (so nodata never hides a measurement).
    """
    if nodata is None:
        return data
    invalid = np.broadcast_to(~valid, data.shape)
    out = data.copy() if copy else data
    if not np.isnan(nodata):
        out[(out == nodata) & ~invalid] = next_to(nodata, out.dtype)
    out[invalid] = nodata
    return out
