"""DICOM series adapter: a folder of single-frame slices <-> :class:`SpatialArray`.

Reading turns one series (one ``SeriesInstanceUID``) of single-frame grayscale slices into a
``(1, columns, rows, slices)`` array whose centre-anchored affine maps the index
``(column, row, slice)`` to world **RAS** mm. DICOM geometry is LPS: the LPS affine is built
from ImageOrientationPatient, PixelSpacing and the sorted ImagePositionPatient values and then
converted once with :func:`geo_med_sr.geometry.lps_to_ras`.

Writing produces a new derived series (new SeriesInstanceUID and SOPInstanceUIDs, same study,
frame of reference and patient as the source) with one file per slice and the geometry of the
image's affine, so that DICOM viewers and ITK/SimpleITK place the super-resolved grid exactly.
Every output slice references the source slices it was made from, and carries the provenance.

Modules, one job each:

* :mod:`.detect`: recognising DICOM files and non-image DICOM objects.
* :mod:`.header`: typed values of one slice header.
* :mod:`.scan`: reading a folder's headers, grouping them by series, choosing one series.
* :mod:`.geometry`: sorted slice positions <-> affine (pure functions; the refusals).
* :mod:`.pixels`: stored pixels <-> real-world values.
* :mod:`.template`: the source header kept on read, the base dataset of the written slices, identity.
* :mod:`.iod`: the IOD written (MR, CT, Secondary Capture) and its required attributes.
* :mod:`.meta`: the JSON-able ``meta`` of a read series.
* :mod:`.references`: Source Image / Referenced Series Sequences, code items.
* :mod:`.provenance`: ``meta["provenance"]`` in the private block ``GEO_MED_SR``.
* :mod:`.write`: series-level attributes and one file per slice.
* :mod:`.adapter`: :class:`DicomAdapter`, registered as ``"dicom"`` when this package is imported.
"""

from __future__ import annotations

try:
    import pydicom  # noqa: F401  (every module of this package needs it)
except ImportError as exc:  # pragma: no cover - pydicom is a declared dependency
    raise ImportError("the DICOM adapter needs pydicom: pip install 'pydicom>=2.4'") from exc

from geo_med_sr.adapters.base import ADAPTERS
from geo_med_sr.adapters.dicom.adapter import OTHER_FORMAT_SUFFIXES, DicomAdapter
from geo_med_sr.adapters.dicom.detect import DICOM_SUFFIXES
from geo_med_sr.adapters.dicom.geometry import (
    DUPLICATE_TOLERANCE_MM,
    INPLANE_TOLERANCE_MM,
    ORIENTATION_TOLERANCE,
    SPACING_TOLERANCE,
    TILT_TOLERANCE_DEG,
    SliceGrid,
    slice_geometry,
    slice_grid,
)
from geo_med_sr.adapters.dicom.iod import KEPT_SOP_CLASSES, MODALITY_SOP
from geo_med_sr.adapters.dicom.provenance import PROVENANCE_CREATOR, PROVENANCE_ELEMENT, PROVENANCE_GROUP
from geo_med_sr.adapters.dicom.references import DERIVATION_CODE, SOURCE_PURPOSE_CODE

__all__ = [
    "DERIVATION_CODE",
    "DICOM_SUFFIXES",
    "DUPLICATE_TOLERANCE_MM",
    "INPLANE_TOLERANCE_MM",
    "KEPT_SOP_CLASSES",
    "MODALITY_SOP",
    "ORIENTATION_TOLERANCE",
    "OTHER_FORMAT_SUFFIXES",
    "PROVENANCE_CREATOR",
    "PROVENANCE_ELEMENT",
    "PROVENANCE_GROUP",
    "SOURCE_PURPOSE_CODE",
    "SPACING_TOLERANCE",
    "TILT_TOLERANCE_DEG",
    "DicomAdapter",
    "SliceGrid",
    "slice_geometry",
    "slice_grid",
]

ADAPTERS.add("dicom", DicomAdapter)
