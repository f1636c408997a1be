"""References from a derived series to its source: Source Image and Referenced Series Sequences.

Reading records every sorted source slice (SOP class and instance UIDs, LPS position). Writing
lists, in Source Image Sequence (0008,2112) of the General Reference module of every output
slice, the source slice(s) whose slab contains its centre (purpose "Source image for image
processing operation", DCM 121322), and indexes them in Referenced Series Sequence (0008,1115)
of the Common Instance Reference module (required there because they are in the same study),
so viewers and PACS show the series as derived from the source. Derivation Code Sequence
(0008,9215) holds "Spatial resampling" (DCM 113085, CID 7203).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from geo_med_sr.adapters.dicom.geometry import DUPLICATE_TOLERANCE_MM
from geo_med_sr.adapters.dicom.header import SliceHeader, sop_class

#: (CodeValue, CodingSchemeDesignator, CodeMeaning) of the source references (CID 7202).
SOURCE_PURPOSE_CODE = ("121322", "DCM", "Source image for image processing operation")
#: ... and of the derivation (CID 7203 "Image Derivation").
DERIVATION_CODE = ("113085", "DCM", "Spatial resampling")


def code_item(code: tuple[str, str, str]) -> Dataset:
    """One item of a Code Sequence (Code Sequence Macro: value, scheme, meaning)."""
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def source_instances(items: list[SliceHeader]) -> list[dict[str, Any]]:
    """JSON-able reference of every sorted slice: SOP class and instance UIDs, LPS position (mm)."""
    return [
        {
            "sop_class_uid": sop_class(ds),
            "sop_instance_uid": str(ds.get("SOPInstanceUID", "") or ""),
            "position": [float(v) for v in ds.ImagePositionPatient],
        }
        for _, ds in items
    ]


def sources_per_slice(info: dict[str, Any], positions: np.ndarray, normal: np.ndarray) -> list[list[dict[str, Any]]]:
    """For each output slice, the source instances whose slab contains the slice centre.

    Args:
        info: ``meta["dicom"]`` of the image (``source_instances`` and ``slice_spacing`` from
            :meth:`DicomAdapter.read`).
        positions: ``(N, 3)`` ImagePositionPatient of the output slices (LPS mm, centre of
            each slice's first pixel).
        normal: unit slice normal of the output (LPS).

    Returns:
        ``N`` lists of ``source_instances`` entries: a source slice ``j`` is listed when the
        output slice lies within half a source slice step of it along the normal (both
        neighbours at an exact midpoint); empty lists when the source is unknown.
    """
    instances = [
        inst
        for inst in info.get("source_instances") or []
        if inst.get("sop_instance_uid") and inst.get("sop_class_uid")
    ]
    step = info.get("slice_spacing")
    if not instances or not step:
        return [[] for _ in positions]
    along_src = np.array([inst["position"] for inst in instances], dtype=np.float64) @ normal
    along_out = positions @ normal
    half = abs(float(step)) / 2 + DUPLICATE_TOLERANCE_MM
    return [[instances[j] for j in np.nonzero(np.abs(along_src - p) <= half)[0]] for p in along_out]


def add_source_references(ds: Dataset, sources: list[dict[str, Any]], source_series_uid: str) -> None:
    """Source Image Sequence and the matching Referenced Series Sequence (same study) of one slice."""
    if not sources or not source_series_uid:
        return
    images, instances = [], []
    for inst in sources:
        image = Dataset()
        image.ReferencedSOPClassUID = inst["sop_class_uid"]
        image.ReferencedSOPInstanceUID = inst["sop_instance_uid"]
        image.PurposeOfReferenceCodeSequence = DicomSequence([code_item(SOURCE_PURPOSE_CODE)])
        images.append(image)
        ref = Dataset()
        ref.ReferencedSOPClassUID = inst["sop_class_uid"]
        ref.ReferencedSOPInstanceUID = inst["sop_instance_uid"]
        instances.append(ref)
    series = Dataset()
    series.SeriesInstanceUID = source_series_uid
    series.ReferencedInstanceSequence = DicomSequence(instances)
    ds.SourceImageSequence = DicomSequence(images)
    ds.ReferencedSeriesSequence = DicomSequence([series])
