"""Casting real-world values back to a storage dtype: rounding and clipping, never wrap-around."""

from __future__ import annotations

import numpy as np


def storage_range(dtype: np.dtype | str) -> tuple[float, float]:
    """Smallest and largest value ``dtype`` can hold (finite float limits for floats)."""
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    return float(info.min), float(info.max)


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
    raw = np.asarray(values, dtype=np.float64)
    if slope != 1.0 or inter != 0.0:
        raw = (raw - inter) / slope
    lo, hi = storage_range(dtype)
    if dtype.kind in "iub":
        raw = np.nan_to_num(np.rint(raw), nan=0.0, posinf=hi, neginf=lo)
    return np.clip(raw, lo, hi).astype(dtype)


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
