"""Which IOD a written series is (MR, CT or Secondary Capture), and its required attributes.

:func:`resolve_sop_class` turns the ``modality`` write option and the source's SOP class into
the SOP class written. :func:`complete_iod` then adds every Type 1 attribute the modules of
that IOD need (with a neutral value) and every Type 2 / 2C attribute it lacks (empty), so that
dciodvfy reports no missing attribute: Patient, General Study, General Series, Frame of
Reference, General Equipment, General Image, Image Plane, Image Pixel, and the MR Image / CT
Image / SC Equipment modules. The geometry and pixel attributes themselves are set by
:mod:`.write`.

Only MR and CT Image Storage carry the geometry to every reader: GDCM (and so SimpleITK and
ITK-based tools) ignores ImagePositionPatient/ImageOrientationPatient in Secondary Capture
(origin 0, spacing 1), although they are written there too.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
)

from geo_med_sr.errors import OutputError, file_error

#: single-frame image SOP classes written with their own class; anything else becomes SC.
KEPT_SOP_CLASSES = (
    MRImageStorage,
    CTImageStorage,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
)
#: ``modality`` option -> (SOP class, Modality). "SC" is an alias of "OT".
MODALITY_SOP = {
    "MR": (MRImageStorage, "MR"),
    "CT": (CTImageStorage, "CT"),
    "OT": (SecondaryCaptureImageStorage, "OT"),
    "SC": (SecondaryCaptureImageStorage, "OT"),
}
#: Type 2 / 2C attributes of the modules common to MR, CT and SC (written empty when absent).
COMMON_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "SeriesNumber",
    "Manufacturer",
    "PositionReferenceIndicator",
)
#: BodyPartExamined values of paired structures (Laterality is then required, Type 2C).
PAIRED_BODY_PARTS = ("BREAST", "EYE", "KNEE", "HIP", "SHOULDER", "ELBOW", "WRIST", "HAND", "FOOT", "ANKLE", "KIDNEY")
#: MR Image module: Type 1 attributes with the value written when the source has none ...
MR_TYPE1_DEFAULTS = {"ScanningSequence": "RM", "SequenceVariant": "NONE"}
#: ... and its Type 2 / 2C attributes (empty when unknown).
MR_TYPE2 = ("ScanOptions", "MRAcquisitionType", "RepetitionTime", "EchoTime", "EchoTrainLength", "PatientPosition")
#: CT Image module: Type 2 / 2C attributes (empty when unknown).
CT_TYPE2 = ("KVP", "AcquisitionNumber", "PatientPosition")


def normalise_modality(modality: str | None, folder: Path) -> str | None:
    """``"MR"``, ``"CT"``, ``"OT"`` or None from the ``modality`` option.

    Raises:
        OutputError: an unknown modality.
    """
    if modality is None or str(modality).strip() == "":
        return None
    key = str(modality).strip().upper()
    if key not in MODALITY_SOP:
        raise file_error(
            OutputError, folder, f"unknown DICOM modality {modality!r}; use MR, CT or OT (Secondary Capture)"
        )
    return "OT" if key == "SC" else key


def resolve_sop_class(source_sop: str, source_modality: str, modality: str | None, folder: Path) -> tuple[str, str]:
    """``(SOPClassUID, Modality)`` of the written series.

    Args:
        source_sop: the source's SOP class ("" for a non-DICOM input).
        source_modality: the source's Modality ("" for a non-DICOM input).
        modality: the normalised ``modality`` option (None: the source's class, SC without a source).
        folder: the output folder, for messages.

    Raises:
        OutputError: MR requested for a CT source or the reverse (that would relabel the images).
    """
    if modality is None:
        if not source_sop:
            return MODALITY_SOP["OT"]
        sop = source_sop if source_sop in KEPT_SOP_CLASSES else SecondaryCaptureImageStorage
        return sop, source_modality or ("OT" if sop == SecondaryCaptureImageStorage else "")
    sop, name = MODALITY_SOP[modality]
    if name != "OT" and source_modality and source_modality not in (name, "OT"):
        raise file_error(
            OutputError,
            folder,
            f"the source series is {source_modality}; writing it as {name} would relabel the images;"
            " omit the modality (keep the source's) or write OT (Secondary Capture)",
        )
    return sop, name


def _empty_if_absent(ds: Dataset, keywords: tuple[str, ...]) -> None:
    for keyword in keywords:
        if keyword not in ds:
            setattr(ds, keyword, "")


def complete_iod(ds: Dataset, sop: str, modality: str) -> None:
    """Set SOP class and Modality, and add the attributes the IOD needs that ``ds`` lacks.

    Type 1 attributes get a neutral value (MR: ScanningSequence "RM" research mode,
    SequenceVariant "NONE"; SC: ConversionType "WSD"), Type 2 / 2C attributes an empty value.
    Attributes of another IOD that a source brought along stay (dciodvfy warns, not errs).
    """
    ds.SOPClassUID = sop
    ds.Modality = modality
    _empty_if_absent(ds, COMMON_TYPE2)
    if "BodyPartExamined" not in ds or str(ds.BodyPartExamined).upper() in PAIRED_BODY_PARTS:
        _empty_if_absent(ds, ("Laterality",))  # 2C: required for a paired (or unknown) body part
    if sop == MRImageStorage:
        for keyword, value in MR_TYPE1_DEFAULTS.items():
            if not ds.get(keyword):
                setattr(ds, keyword, value)
        _empty_if_absent(ds, MR_TYPE2)
    elif sop == CTImageStorage:
        _empty_if_absent(ds, CT_TYPE2)
    if sop == SecondaryCaptureImageStorage:
        if not ds.get("ConversionType"):
            ds.ConversionType = "WSD"
        _empty_if_absent(ds, ("PatientOrientation",))
    elif "ConversionType" in ds:
        del ds.ConversionType
