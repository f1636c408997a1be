"""The ``meta`` of a read series, and its ``meta["dicom"]`` record that the writer and ``describe`` use.

Everything in it is JSON-able: the template header, series UID and description, modality, SOP
class, slice thickness and spacing (mm), the number of source files and the sorted source
instances (for the writer's references).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .header import SliceHeader, optional_float, sop_class
from .references import source_instances
from .template import strip_template


def dicom_info(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta["dicom"]``, or ``{}`` when the image was not read from DICOM."""
    info = meta.get("dicom")
    return info if isinstance(info, dict) else {}


def series_meta(
    uid: str, items: list[SliceHeader], storage: np.dtype, pairs: list[tuple[float, float]], step: float
) -> dict[str, Any]:
    """The JSON-able ``meta`` of a read series.

    Args:
        uid: its SeriesInstanceUID.
        items: ``(path, header)`` of its slices, sorted along the normal.
        storage: the stored pixel dtype.
        pairs: each slice's ``(RescaleSlope, RescaleIntercept)``.
        step: the slice step (mm).

    Returns:
        ``format``, ``dtype``, ``description``, ``dicom`` (the writer's record) and, when every
        slice has the same one, ``rescale`` ``[slope, intercept]``.
    """
    first = items[0][1]
    description = str(first.get("SeriesDescription", "") or "")
    meta: dict[str, Any] = {
        "format": "dicom",
        "dtype": storage.name,
        "description": description,
        "dicom": {
            "template": strip_template(first).to_json_dict(suppress_invalid_tags=True),
            "series_uid": uid,
            "series_description": description,
            "modality": str(first.get("Modality", "") or ""),
            "sop_class_uid": sop_class(first),
            "slice_thickness": optional_float(first, "SliceThickness"),
            "slice_spacing": step,
            "source_files": len(items),
            "source_instances": source_instances(items),
        },
    }
    if all(p == pairs[0] for p in pairs):
        meta["rescale"] = [float(pairs[0][0]), float(pairs[0][1])]
    return meta
