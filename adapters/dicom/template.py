"""The template: the source's header kept by the reader, and the dataset the writer starts from.

Reading keeps the first sorted slice's header without pixel data, private tags, overlays or
large binary elements (JSON-able, in ``meta["dicom"]["template"]``). Writing starts from it
(keeping the source's patient, study, frame of reference and SOP class) after dropping what
describes the old grid, pixels or instances; without a template it starts from a new Secondary
Capture dataset with an anonymous patient and a new study.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

#: single-frame image SOP classes written with their own class; anything else becomes SC.
KEPT_SOP_CLASSES = (
    MRImageStorage,
    CTImageStorage,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
)

#: template elements that describe the old grid, old pixels or old instances: dropped on write.
DROPPED_ON_WRITE = (
    "ReferencedImageSequence",
    "SourceImageSequence",
    "ReferencedInstanceSequence",
    "ReferencedSeriesSequence",
    "StudiesContainingOtherReferencedInstancesSequence",
    "DerivationCodeSequence",
    "SourceInstanceSequence",
    "SliceLocation",
    "AcquisitionMatrix",
    "IconImageSequence",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
    "VOILUTFunction",
    "VOILUTSequence",
    "ModalityLUTSequence",
    "RescaleType",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "PixelAspectRatio",
    "NumberOfFrames",
    "ImagesInAcquisition",
    "InStackPositionNumber",
    "PlanarConfiguration",
    "PixelData",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
)
#: element VRs holding raw bytes; large ones never go into the JSON template.
_BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
_BULK_LIMIT_BYTES = 1024


def _is_overlay_or_meta_group(group: int) -> bool:
    """Overlay (60xx), curve (50xx) and file meta (0002) groups: never part of a template."""
    return 0x6000 <= group <= 0x60FF or 0x5000 <= group <= 0x50FF or group == 0x0002


def _prune(item: Dataset) -> None:
    """Delete pixel data, overlays, curves, file meta and large binary elements, recursively."""
    for tag in list(item.keys()):
        elem = item[tag]
        group = tag.group
        if group == 0x7FE0 or _is_overlay_or_meta_group(group) or tag == 0x00880200:
            del item[tag]
        elif elem.VR in _BULK_VRS and elem.value is not None and len(elem.value) > _BULK_LIMIT_BYTES:
            del item[tag]
        elif elem.VR == "SQ":
            for sub in elem.value:
                _prune(sub)


def strip_template(ds: Dataset) -> Dataset:
    """A copy of ``ds`` without pixel data, private tags, overlays or large binary elements."""
    out = copy.deepcopy(ds)
    out.remove_private_tags()
    _prune(out)
    return out


def new_dataset_without_template(description: Any) -> Dataset:
    """A minimal Secondary Capture dataset (anonymous patient, new study) for non-DICOM inputs.

    Args:
        description: the image's ``meta["description"]``, its SeriesDescription ("geo_med_sr"
            when empty).
    """
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.PatientName = "ANONYMOUS"
    ds.PatientID = "GEOMEDSR"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = generate_uid()
    # the slices carry patient positions (Image Plane attributes), so give them a frame of
    # reference: viewers and registration tools group series by it
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = ""
    now = datetime.datetime.now()
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = str(description or "geo_med_sr")
    ds.SeriesNumber = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def base_dataset(info: dict[str, Any], description: Any) -> tuple[Dataset, str]:
    """The dataset every slice starts from, and the source series UID ("" without a template).

    Args:
        info: the image's ``meta["dicom"]`` (``{}`` when it was not read from DICOM).
        description: the image's ``meta["description"]``, used without a template.
    """
    if not info or not info.get("template"):
        return new_dataset_without_template(description), ""
    ds = Dataset.from_json(info["template"])
    ds.remove_private_tags()
    for keyword in DROPPED_ON_WRITE:
        if keyword in ds:
            delattr(ds, keyword)
    for tag in list(ds.keys()):
        if _is_overlay_or_meta_group(tag.group):
            del ds[tag]
    sop = str(ds.get("SOPClassUID", ""))
    if sop not in KEPT_SOP_CLASSES:
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.ConversionType = "WSD"
    if "FrameOfReferenceUID" not in ds:
        ds.FrameOfReferenceUID = generate_uid()
    if "StudyInstanceUID" not in ds:
        ds.StudyInstanceUID = generate_uid()
    return ds, str(info.get("series_uid", ds.get("SeriesInstanceUID", "")))
