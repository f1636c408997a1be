"""The template: the source's header kept by the reader, and the dataset the writer starts from.

Reading keeps the first sorted slice's header without pixel data, private tags, overlays or
large binary elements (JSON-able, in ``meta["dicom"]["template"]``). Writing starts from it
(keeping the source's patient, study, frame of reference and SOP class) after dropping what
describes the old grid, pixels, instances or per-slice timing; without a template it starts
from a new dataset whose patient and study are derived from the input's SHA-256 (two inputs
never share a PatientID; several outputs of one input share one study). A ``template`` folder
(another DICOM series) gives the series its patient and study identity; ``patient_id`` and
``patient_name`` override the patient.
"""

from __future__ import annotations

import copy
import datetime
import uuid
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from geo_med_sr.adapters.dicom.iod import complete_iod, normalise_modality, resolve_sop_class
from geo_med_sr.errors import InputError, file_error

#: patient/study identity a ``template`` series gives the written series.
IDENTITY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "ReferringPhysicianName",
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
    "VOILUTSequence",
    "ModalityLUTSequence",
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
    # per-slice timing: one slice's time copied onto every output slice would be a lie
    # (dcm2niix then reports bogus slice timing); SeriesTime/StudyTime/ContentTime stay
    "AcquisitionTime",
    "AcquisitionDateTime",
    "TriggerTime",
    "FrameReferenceTime",
    "TemporalPositionIndex",
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


def input_digest(meta: dict[str, Any], input_sha256: str | None) -> str:
    """The input's SHA-256 hex digest: the option, else the provenance's request, else a random one."""
    if input_sha256:
        return str(input_sha256).lower()
    provenance = meta.get("provenance")
    request = provenance.get("request") if isinstance(provenance, dict) else None
    digest = request.get("input_sha256") if isinstance(request, dict) else None
    return str(digest).lower() if digest else uuid.uuid4().hex * 2


def new_dataset_without_template(description: Any, digest: str) -> Dataset:
    """A dataset with a patient and study of its own for a non-DICOM input.

    Args:
        description: the image's ``meta["description"]``, its SeriesDescription ("geo_med_sr"
            when empty).
        digest: the input's SHA-256 hex digest: PatientID ``"GMS" + digest[:16]``; the
            StudyInstanceUID and FrameOfReferenceUID are derived from it (one input: one study).
    """
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "ANONYMOUS"
    ds.PatientID = "GMS" + digest[:16].upper()
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["geo_med_sr study", digest])
    # the slices carry patient positions (Image Plane attributes), so give them a frame of
    # reference: viewers and registration tools group series by it
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=["geo_med_sr frame of reference", digest])
    ds.PositionReferenceIndicator = ""
    now = datetime.datetime.now()
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Manufacturer = ""
    ds.SeriesDescription = str(description or "geo_med_sr")
    ds.SeriesNumber = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def source_dataset(info: dict[str, Any]) -> Dataset:
    """The source's template header without what describes the old grid, pixels, instances or timing."""
    ds = Dataset.from_json(info["template"])
    ds.remove_private_tags()
    for keyword in DROPPED_ON_WRITE:
        if keyword in ds:
            delattr(ds, keyword)
    for tag in list(ds.keys()):
        if _is_overlay_or_meta_group(tag.group):
            del ds[tag]
    if "FrameOfReferenceUID" not in ds:
        ds.FrameOfReferenceUID = generate_uid()
    if "StudyInstanceUID" not in ds:
        ds.StudyInstanceUID = generate_uid()
    return ds


def read_template(folder: Path) -> Dataset:
    """The header of the first DICOM image of the ``template`` series folder.

    Raises:
        InputError: naming the folder: not a folder, no DICOM image, or images of several studies.
    """
    from geo_med_sr.adapters.dicom.scan import scan_folder  # local import: scan is only needed for this option

    groups, _ = scan_folder(Path(folder))
    headers = [items[0][1] for items in groups.values()]
    studies = {str(ds.get("StudyInstanceUID", "")) for ds in headers}
    if len(studies) > 1:
        raise file_error(
            InputError,
            folder,
            f"the template folder holds series of {len(studies)} studies; pass a folder holding one series",
        )
    return headers[0]


def apply_identity(ds: Dataset, template: Dataset, take_frame: bool) -> None:
    """Copy the patient and study identity of ``template`` into ``ds`` (absent there: written empty).

    Args:
        take_frame: also take its FrameOfReferenceUID (the image's world coordinates are the
            template's scanner coordinates).
    """
    for keyword in IDENTITY_KEYWORDS:
        value = template.get(keyword, None)
        if keyword == "StudyInstanceUID" and not value:
            continue
        setattr(ds, keyword, "" if value is None else value)
    if "SpecificCharacterSet" in template:
        ds.SpecificCharacterSet = template.SpecificCharacterSet
    if take_frame and template.get("FrameOfReferenceUID"):
        ds.FrameOfReferenceUID = template.FrameOfReferenceUID


def scanner_coordinates(meta: dict[str, Any]) -> bool:
    """True when a non-DICOM image's world is the scanner's (NIfTI sform or qform code 1)."""
    nifti = meta.get("nifti")
    return isinstance(nifti, dict) and 1 in (nifti.get("sform_code"), nifti.get("qform_code"))


def base_dataset(
    meta: dict[str, Any],
    folder: Path,
    modality: str | None = None,
    template: Path | None = None,
    patient_id: str | None = None,
    patient_name: str | None = None,
    input_sha256: str | None = None,
) -> tuple[Dataset, str]:
    """The dataset every slice starts from, and the source series UID ("" without a DICOM source).

    Args:
        meta: the image's metadata (``meta["dicom"]`` when read from DICOM).
        folder: the output folder, for messages.
        modality: the IOD to write ("MR", "CT", "OT"/None; see :func:`.iod.resolve_sop_class`).
        template: a DICOM series folder whose patient and study the series joins.
        patient_id, patient_name: override the patient identity.
        input_sha256: the input's SHA-256 hex digest (identity of a non-DICOM input).

    Raises:
        OutputError: an unknown or relabelling ``modality``.
        InputError: an unreadable ``template`` folder.
    """
    info = meta.get("dicom") if isinstance(meta.get("dicom"), dict) else {}
    requested = normalise_modality(modality, folder)
    if info.get("template"):
        ds = source_dataset(info)
        source_uid = str(info.get("series_uid", ds.get("SeriesInstanceUID", "")))
        source_sop, source_modality = str(ds.get("SOPClassUID", "")), str(ds.get("Modality", "") or "")
    else:
        ds = new_dataset_without_template(meta.get("description", ""), input_digest(meta, input_sha256))
        source_uid, source_sop, source_modality = "", "", ""
    sop, modality_name = resolve_sop_class(source_sop, source_modality, requested, folder)
    if template is not None:
        apply_identity(ds, read_template(Path(template)), take_frame=not source_uid and scanner_coordinates(meta))
    if patient_id is not None:
        ds.PatientID = str(patient_id)
    if patient_name is not None:
        ds.PatientName = str(patient_name)
    complete_iod(ds, sop, modality_name)
    return ds, source_uid
