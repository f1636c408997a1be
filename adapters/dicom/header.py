"""Typed values read out of one slice header (a pydicom ``Dataset``): SOP class, optional numbers.

These helpers never raise: a missing or unreadable element gives the documented fallback, and
the callers decide whether that is an error.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.valuerep import format_number_as_ds

#: ``(path, header)`` of one slice file: the header read without its pixel data.
SliceHeader = tuple[Path, Dataset]


def sop_class(ds: Dataset) -> str:
    """The SOPClassUID of ``ds`` (or the file meta's MediaStorageSOPClassUID), ``""`` when neither is set."""
    uid = ds.get("SOPClassUID", None)
    if uid is None and hasattr(ds, "file_meta"):
        uid = ds.file_meta.get("MediaStorageSOPClassUID", None)
    return "" if uid is None else str(uid)


def optional_float(ds: Dataset, keyword: str) -> float | None:
    """A single numeric element as a finite float, or None when it is missing, empty or invalid."""
    value = ds.get(keyword, None)
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def rescale_pair(ds: Dataset) -> tuple[float, float]:
    """``(RescaleSlope, RescaleIntercept)`` of a slice: ``(1, 0)`` where missing (a zero slope counts as 1)."""
    slope = optional_float(ds, "RescaleSlope")
    inter = optional_float(ds, "RescaleIntercept")
    return (1.0 if slope is None or slope == 0 else slope), (0.0 if inter is None else inter)


def ds_text(value: float) -> str:
    """A DS string of at most 16 characters keeping as many digits as fit."""
    value = float(value)
    if value == 0.0:
        return "0"
    text = repr(value)
    return text if len(text) <= 16 else format_number_as_ds(value)
