"""The ``meta`` of a read series, and its ``meta["dicom"]`` record that the writer and ``describe`` use.

Everything in it is JSON-able: the template header, series UID and description, modality, SOP
class, slice thickness and spacing (mm) and where the spacing came from, the stored dtype and
rescale, the number of source files, the sorted source instances (for the writer's references)
and the source's numbering conventions (the direction of InstanceNumber and the sign of
SliceLocation along the slice normal, which the writer keeps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geo_med_sr.adapters.dicom.header import SliceHeader, optional_float, sop_class
from geo_med_sr.adapters.dicom.references import source_instances
from geo_med_sr.adapters.dicom.template import strip_template


def dicom_info(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta["dicom"]``, or ``{}`` when the image was not read from DICOM."""
    info = meta.get("dicom")
    return info if isinstance(info, dict) else {}


def _sign(values: np.ndarray, along: np.ndarray) -> int:
    """+1 or -1: whether ``values`` ``(N,)`` grow with ``along`` ``(N,)`` (N >= 2) or match its sign (N == 1)."""
    if len(values) == 1:
        return -1 if abs(values[0] + along[0]) < abs(values[0] - along[0]) else 1
    return -1 if float(np.sum((values - values.mean()) * (along - along.mean()))) < 0 else 1


def _values(ds: Any, keyword: str) -> list[float] | None:
    """A numeric element's values as floats (a multi-valued DS too), None when absent or invalid."""
    value = ds.get(keyword, None)
    if value is None or value == "":
        return None
    values = [value] if isinstance(value, (str, int, float)) else list(value)
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def series_window(items: list[SliceHeader]) -> dict[str, Any] | None:
    """The source's display window (real-world units) for the whole series, None when a slice has none.

    Returns:
        ``{"center": [...], "width": [...], "explanation": [...]}``: every slice's own
        values when they all agree, else the median of their first centre and width (scanners
        auto-window each slice; one series window stays true for the resampled slices).
    """
    centers = [_values(ds, "WindowCenter") for _, ds in items]
    widths = [_values(ds, "WindowWidth") for _, ds in items]
    if any(v is None for v in centers) or any(v is None for v in widths):
        return None
    text = items[0][1].get("WindowCenterWidthExplanation", None)
    explanation = [] if text is None else [str(v) for v in ([text] if isinstance(text, str) else text)]
    if all(c == centers[0] for c in centers) and all(w == widths[0] for w in widths):
        return {"center": centers[0], "width": widths[0], "explanation": explanation}
    center = float(np.median([c[0] for c in centers]))
    width = float(np.median([w[0] for w in widths]))
    return {"center": [center], "width": [width], "explanation": explanation[:1]}


def series_conventions(items: list[SliceHeader]) -> dict[str, int]:
    """The source's ``instance_direction`` and ``slice_location_sign`` (+1 or -1; +1 when unknown).

    ``instance_direction`` is +1 when InstanceNumber grows along the slice normal
    (row direction x column direction), -1 when it grows against it; ``slice_location_sign``
    is +1 when SliceLocation is ``position . normal``, -1 when it is its negative.
    """
    first = items[0][1]
    try:
        iop = np.array([float(v) for v in first.ImageOrientationPatient], dtype=np.float64)
        along = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in items]) @ np.cross(iop[:3], iop[3:])
    except (AttributeError, TypeError, ValueError):
        return {"instance_direction": 1, "slice_location_sign": 1}
    out = {"instance_direction": 1, "slice_location_sign": 1}
    numbers = [optional_float(ds, "InstanceNumber") for _, ds in items]
    if len(items) > 1 and None not in numbers:
        out["instance_direction"] = _sign(np.array(numbers, dtype=np.float64), np.arange(len(items), dtype=np.float64))
    locations = [optional_float(ds, "SliceLocation") for _, ds in items]
    if None not in locations:
        out["slice_location_sign"] = _sign(np.array(locations, dtype=np.float64), along)
    return out


def series_meta(
    uid: str,
    items: list[SliceHeader],
    storage: np.dtype,
    pairs: list[tuple[float, float]],
    step: float,
    spacing_source: str = "ImagePositionPatient",
) -> dict[str, Any]:
    """The JSON-able ``meta`` of a read series.

    Args:
        uid: its SeriesInstanceUID.
        items: ``(path, header)`` of its slices, sorted along the normal.
        storage: the stored pixel dtype.
        pairs: each slice's ``(RescaleSlope, RescaleIntercept)``.
        step: the slice step (mm).
        spacing_source: where ``step`` came from: ``"ImagePositionPatient"`` (several slices),
            ``"SpacingBetweenSlices"``, ``"SliceThickness"`` or ``"assumed"`` (1.0 mm) for one slice.

    Returns:
        ``format``, ``dtype``, ``description``, ``dicom`` (the writer's record) and, when every
        slice has the same one, ``rescale`` ``[slope, intercept]`` (also kept in ``dicom``, which
        the pipeline does not rewrite). ``dicom["slice_spacing_assumed"]`` is True for a
        one-slice series, whose spacing is not measured.
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
            "slice_spacing_source": spacing_source,
            "slice_spacing_assumed": spacing_source != "ImagePositionPatient",
            "stored_dtype": storage.name,
            "source_files": len(items),
            "source_instances": source_instances(items),
            "window": series_window(items),
            **series_conventions(items),
        },
    }
    if all(p == pairs[0] for p in pairs):
        meta["rescale"] = [float(pairs[0][0]), float(pairs[0][1])]
        meta["dicom"]["rescale"] = list(meta["rescale"])
    return meta
