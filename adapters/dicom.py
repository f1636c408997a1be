"""DICOM series adapter: a folder of single-frame slices <-> :class:`SpatialArray`.

Reading turns one series (one ``SeriesInstanceUID``) of single-frame grayscale slices into a
``(1, columns, rows, slices)`` array whose centre-anchored affine maps the index
``(column, row, slice)`` to world **RAS** mm. DICOM geometry is LPS: the LPS affine is built
from ImageOrientationPatient, PixelSpacing and the sorted ImagePositionPatient values and then
converted once with :func:`geo_med_sr.geometry.lps_to_ras`.

The reader never guesses a geometry: slices are sorted by their position along the slice
normal, and duplicate positions, missing slices, uneven spacing and gantry tilt (sheared
stacks) are refused with a one-line message that says what was found and what to do.

Writing produces a new derived series (new SeriesInstanceUID and SOPInstanceUIDs, same study,
frame of reference and patient as the source) with one file per slice and the geometry of the
image's affine, so that DICOM viewers and ITK/SimpleITK place the super-resolved grid exactly.

References to the source (when the image was read from a DICOM series): every output slice
lists, in Source Image Sequence (0008,2112) of the General Reference module, the source
slice(s) whose slab contains its centre (purpose "Source image for image processing
operation", DCM 121322), and indexes them in Referenced Series Sequence (0008,1115) of the
Common Instance Reference module (required there because they are in the same study), so
viewers and PACS show the series as derived from the source. Derivation Code Sequence
(0008,9215) holds "Spatial resampling" (DCM 113085, CID 7203).

Provenance (``meta["provenance"]``) is stored as JSON (VR UT) in every slice, in the private
block of creator ``GEO_MED_SR`` in group 0x0071 (element (0071,xx01));
:meth:`DicomAdapter.read_provenance` reads it back from one slice.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

try:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import (
        CTImageStorage,
        ExplicitVRLittleEndian,
        MediaStorageDirectoryStorage,
        MRImageStorage,
        PositronEmissionTomographyImageStorage,
        SecondaryCaptureImageStorage,
        generate_uid,
    )
    from pydicom.valuerep import format_number_as_ds
except ImportError as exc:  # pragma: no cover - pydicom is a declared dependency
    raise ImportError("the DICOM adapter needs pydicom: pip install 'pydicom>=2.4'") from exc

from .. import __version__, geometry
from ..dtypes import cast_to_dtype, rescale_for
from ..errors import GeometryError, InputError, OutputError, file_error
from ..spatial import SpatialArray
from .base import ADAPTERS, Adapter, provenance_from_text

#: file-name endings that mark a DICOM file even without the "DICM" preamble.
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
#: output names that belong to other adapters (a DICOM output is a folder without suffix).
OTHER_FORMAT_SUFFIXES = (".nii", ".nii.gz", ".tif", ".tiff", ".img", ".hdr", ".mha", ".mhd", ".nrrd", ".png", ".jpg")
#: single-frame image SOP classes written with their own class; anything else becomes SC.
KEPT_SOP_CLASSES = (
    MRImageStorage,
    CTImageStorage,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
)

#: ImageOrientationPatient values of all slices must agree to this (direction cosines).
ORIENTATION_TOLERANCE = 1e-4
#: relative deviation of a slice step from the median step that counts as uneven.
SPACING_TOLERANCE = 0.01
#: slices closer than this along the normal (mm) share a position.
DUPLICATE_TOLERANCE_MM = 1e-3
#: a stack whose slice direction leans more than this off the normal is tilted ...
TILT_TOLERANCE_DEG = 0.01
#: ... provided its in-plane drift (mm) also exceeds the rounding of the stored positions.
INPLANE_TOLERANCE_MM = 5e-3

#: private group, creator and element offset of the provenance JSON written into every slice.
PROVENANCE_GROUP = 0x0071
PROVENANCE_CREATOR = "GEO_MED_SR"
PROVENANCE_ELEMENT = 0x01
#: (CodeValue, CodingSchemeDesignator, CodeMeaning) of the source references (CID 7202).
SOURCE_PURPOSE_CODE = ("121322", "DCM", "Source image for image processing operation")
#: ... and of the derivation (CID 7203 "Image Derivation").
DERIVATION_CODE = ("113085", "DCM", "Spatial resampling")

#: template elements that describe the old grid, old pixels or old instances: dropped on write.
_DROPPED_ON_WRITE = (
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


# ----------------------------------------------------------------------------- detection


def _sniff(path: Path) -> str | None:
    """How ``path`` can be parsed as DICOM, or None when it is not a DICOM file.

    Returns:
        ``"preamble"`` for a file with "DICM" at byte 128, ``"raw"`` for a DICOM suffix or a
        preamble-less file that starts with a group 0002/0008 tag (parsed with ``force``).
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return None
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "preamble"
    if path.name.lower().endswith(DICOM_SUFFIXES):
        return "raw"
    if len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[3:4] == b"\x00":
        return "raw"
    return None


def _folder_files(folder: Path) -> list[Path]:
    """Regular files directly inside ``folder`` (not recursive), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file())


# ----------------------------------------------------------------------------- reading helpers


def _sop_class(ds: Dataset) -> str:
    uid = ds.get("SOPClassUID", None)
    if uid is None and hasattr(ds, "file_meta"):
        uid = ds.file_meta.get("MediaStorageSOPClassUID", None)
    return "" if uid is None else str(uid)


def _is_non_image_object(ds: Dataset) -> bool:
    """True for complete DICOM objects that are not images (DICOMDIR, SR, presentation states)."""
    sop = _sop_class(ds)
    if sop == MediaStorageDirectoryStorage:
        return True
    if not sop or "Rows" in ds or "PixelData" in ds:
        return False
    name = pydicom.uid.UID(sop).name
    if name != sop:  # a standard SOP class: images have "Image" in their name
        return "Image" not in name
    return not sop.startswith("1.2.840.10008.")  # a private non-image object (e.g. a vendor report)


def _floats(ds: Dataset, keyword: str, count: int, path: Path) -> np.ndarray:
    """A multi-valued numeric element as float64, or GeometryError naming the file."""
    value = ds.get(keyword, None)
    try:
        values = np.array(
            [float(v) for v in (value if isinstance(value, Iterable) and not isinstance(value, str) else [value])],
            dtype=np.float64,
        )
    except (TypeError, ValueError):
        values = np.array([])
    if value is None or values.size != count or not np.all(np.isfinite(values)):
        raise file_error(
            GeometryError,
            path,
            f"{keyword} is missing or invalid ({value!r}): the slice has no 3D geometry"
            " (a localiser, screenshot or truncated file?); remove it from the folder",
        )
    return values


def _optional_float(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword, None)
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _rescale_pair(ds: Dataset) -> tuple[float, float]:
    slope = _optional_float(ds, "RescaleSlope")
    inter = _optional_float(ds, "RescaleIntercept")
    return (1.0 if slope is None or slope == 0 else slope), (0.0 if inter is None else inter)


def _strip_template(ds: Dataset) -> Dataset:
    """A copy of ``ds`` without pixel data, private tags, overlays or large binary elements."""
    out = copy.deepcopy(ds)
    out.remove_private_tags()

    def prune(item: Dataset) -> None:
        for tag in list(item.keys()):
            elem = item[tag]
            group = tag.group
            if (
                group == 0x7FE0
                or 0x6000 <= group <= 0x60FF
                or 0x5000 <= group <= 0x50FF
                or tag == 0x00880200
                or group == 0x0002
            ):
                del item[tag]
            elif elem.VR in _BULK_VRS and elem.value is not None and len(elem.value) > _BULK_LIMIT_BYTES:
                del item[tag]
            elif elem.VR == "SQ":
                for sub in elem.value:
                    prune(sub)

    prune(out)
    return out


def _describe_series(uid: str, items: list[tuple[Path, Dataset]]) -> str:
    description = str(items[0][1].get("SeriesDescription", "") or "no description")
    return f"{uid} ({description}, {len(items)} files)"


def _select_series(
    folder: Path, groups: dict[str, list[tuple[Path, Dataset]]], series: str | None
) -> tuple[str, list[tuple[Path, Dataset]]]:
    listing = "; ".join(_describe_series(uid, items) for uid, items in groups.items())
    if series is not None:
        key = str(series).strip()
        if key not in groups:
            raise file_error(InputError, folder, f"no DICOM series with SeriesInstanceUID {key}; available: {listing}")
        return key, groups[key]
    if len(groups) > 1:
        raise file_error(
            InputError,
            folder,
            f"the folder holds {len(groups)} DICOM series: {listing}; pass --series UID to choose one",
        )
    uid = next(iter(groups))
    return uid, groups[uid]


def _check_image_kind(path: Path, ds: Dataset) -> None:
    """Refuse multi-frame, enhanced and colour images with a clear reason."""
    frames = ds.get("NumberOfFrames", 1)
    try:
        frames = int(frames or 1)
    except (TypeError, ValueError):
        frames = 1
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds or frames > 1:
        name = pydicom.uid.UID(_sop_class(ds)).name if _sop_class(ds) else "unknown SOP class"
        raise file_error(
            InputError,
            path,
            f"multi-frame/enhanced DICOM ({name}, {frames} frames) is not supported; only series of"
            " single-frame slices can be read; convert it first (e.g. dcm2niix to NIfTI)",
        )
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        photometric = ds.get("PhotometricInterpretation", "?")
        raise file_error(
            InputError,
            path,
            f"colour DICOM ({photometric}, {samples} samples per pixel) is not supported; only grayscale slices can be read",
        )
    for keyword in ("Rows", "Columns"):
        if keyword not in ds:
            raise file_error(
                InputError, path, f"{keyword} is missing: the file is incomplete or truncated; replace or remove it"
            )


def _position_gaps_message(positions: np.ndarray, steps: np.ndarray, median: float) -> str:
    """Explain uneven steps: missing slices when gaps are whole multiples of a base step."""
    positive = steps[steps > 0]
    for base in (median, float(positive.min()) if positive.size else median):
        if base <= 0:
            continue
        ratios = steps / base
        whole = np.rint(ratios)
        fits = (whole >= 1) & (np.abs(ratios - whole) <= SPACING_TOLERANCE * whole)
        if np.all(fits) and np.any(whole >= 2):
            gaps = np.nonzero(whole >= 2)[0]
            missing = int(np.sum(whole[gaps] - 1))
            where = ", ".join(
                f"{int(whole[i] - 1)} between {positions[i]:.3f} and {positions[i + 1]:.3f} mm" for i in gaps[:5]
            )
            more = f" and {len(gaps) - 5} more gaps" if len(gaps) > 5 else ""
            return (
                f"missing slice(s): {missing} slice(s) missing ({where}{more} along the slice normal, expected step"
                f" {base:.4g} mm); copy the complete series into the folder"
            )
    return (
        f"uneven slice spacing (min {steps.min():.4g}, max {steps.max():.4g} mm, median {median:.4g} mm):"
        " the slices do not lie on a regular grid; resample the series onto one first"
    )


def _slice_geometry(
    folder: Path, items: list[tuple[Path, Dataset]]
) -> tuple[list[tuple[Path, Dataset]], np.ndarray, float]:
    """Sort the slices and build the LPS affine; refuse anything that is not a regular grid.

    Args:
        folder: the series folder (for messages).
        items: ``(path, header)`` of every slice of the series.

    Returns:
        The slices sorted along the normal, the ``(4, 4)`` LPS centre-anchored affine and the
        slice step in mm (distance between slice planes).
    """
    first_path, first = items[0]
    iop0 = _floats(first, "ImageOrientationPatient", 6, first_path)
    ps0 = _floats(first, "PixelSpacing", 2, first_path)
    size0 = (int(first.Rows), int(first.Columns))
    positions = []
    for path, ds in items:
        iop = _floats(ds, "ImageOrientationPatient", 6, path)
        if np.max(np.abs(iop - iop0)) > ORIENTATION_TOLERANCE:
            raise file_error(
                GeometryError,
                folder,
                f"slices have different ImageOrientationPatient ({first_path.name}: {iop0.round(5).tolist()},"
                f" {path.name}: {iop.round(5).tolist()}); a series must be one stack; split it or pass another --series",
            )
        ps = _floats(ds, "PixelSpacing", 2, path)
        if not np.allclose(ps, ps0, rtol=1e-4, atol=1e-6):
            raise file_error(
                GeometryError,
                folder,
                f"slices have different PixelSpacing ({first_path.name}: {ps0.tolist()}, {path.name}: {ps.tolist()}); a series must be one regular grid",
            )
        size = (int(ds.Rows), int(ds.Columns))
        if size != size0:
            raise file_error(
                GeometryError,
                folder,
                f"slices have different sizes (rows x columns {size0[0]}x{size0[1]} in {first_path.name}, {size[0]}x{size[1]} in {path.name}); a series must be one regular grid",
            )
        positions.append(_floats(ds, "ImagePositionPatient", 3, path))

    row_dir, col_dir = iop0[:3], iop0[3:]
    norms = np.linalg.norm(row_dir), np.linalg.norm(col_dir)
    if abs(norms[0] - 1) > 1e-3 or abs(norms[1] - 1) > 1e-3 or abs(float(row_dir @ col_dir)) > 1e-3:
        raise file_error(
            GeometryError,
            folder,
            f"ImageOrientationPatient {iop0.tolist()} is not two perpendicular unit vectors; the file header is corrupt",
        )
    row_dir, col_dir = row_dir / norms[0], col_dir / norms[1]
    normal = np.cross(row_dir, col_dir)
    ipp = np.array(positions)
    along = ipp @ normal
    order = np.argsort(along, kind="stable")
    items = [items[i] for i in order]
    ipp, along = ipp[order], along[order]
    n = len(items)

    if n == 1:
        step = _optional_float(first, "SpacingBetweenSlices") or _optional_float(first, "SliceThickness") or 1.0
        step = abs(step)
        step_vec = normal * step
    else:
        steps = np.diff(along)
        dup = np.nonzero(steps < DUPLICATE_TOLERANCE_MM)[0]
        if dup.size:
            i = int(dup[0])
            raise file_error(
                GeometryError,
                folder,
                f"duplicate slice position: {dup.size} pair(s) of slices share a position"
                f" (e.g. {items[i][0].name} and {items[i + 1][0].name} at {along[i]:.3f} mm along the slice normal);"
                " the series holds several images per position (echoes, time points or repeats); put each volume in its own folder",
            )
        median = float(np.median(steps))
        if np.any(np.abs(steps - median) > SPACING_TOLERANCE * median):
            raise file_error(GeometryError, folder, _position_gaps_message(along, steps, median))
        total = ipp[-1] - ipp[0]
        total_along = float(total @ normal)
        inplane = total - total_along * normal
        tilt_deg = math.degrees(math.atan2(float(np.linalg.norm(inplane)), total_along))
        if tilt_deg > TILT_TOLERANCE_DEG and np.linalg.norm(inplane) > INPLANE_TOLERANCE_MM:
            raise file_error(
                GeometryError,
                folder,
                f"gantry tilt / sheared stack of {tilt_deg:.3f} degrees: the slices are offset within their planes"
                f" ({np.linalg.norm(inplane):.3f} mm over the stack); resample to an untilted grid first"
                " (e.g. dcm2niix corrects gantry tilt)",
            )
        step_vec = total / (n - 1)
        step = total_along / (n - 1)
        residual = ipp - (ipp[0] + np.arange(n)[:, None] * step_vec)
        res_along = np.abs(residual @ normal)
        res_inplane = np.linalg.norm(residual - np.outer(residual @ normal, normal), axis=1)
        if res_along.max() > SPACING_TOLERANCE * step:
            raise file_error(
                GeometryError,
                folder,
                f"uneven slice spacing (positions drift up to {res_along.max():.4g} mm from a regular {step:.4g} mm grid);"
                " resample the series onto a regular grid first",
            )
        if res_inplane.max() > max(INPLANE_TOLERANCE_MM, 1e-3 * step):
            raise file_error(
                GeometryError,
                folder,
                f"sheared stack: slices are not stacked on a straight line (in-plane offset up to {res_inplane.max():.4g} mm,"
                " like a variable gantry tilt); resample the series onto a regular grid first",
            )

    lps = np.eye(4)
    lps[:3, 0] = row_dir * ps0[1]
    lps[:3, 1] = col_dir * ps0[0]
    lps[:3, 2] = step_vec
    lps[:3, 3] = ipp[0]
    return items, lps, float(step)


def _source_instances(items: list[tuple[Path, Dataset]]) -> list[dict[str, Any]]:
    """JSON-able reference of every sorted slice: SOP class and instance UIDs, LPS position (mm)."""
    return [
        {
            "sop_class_uid": _sop_class(ds),
            "sop_instance_uid": str(ds.get("SOPInstanceUID", "") or ""),
            "position": [float(v) for v in ds.ImagePositionPatient],
        }
        for _, ds in items
    ]


def _read_pixels(path: Path, forced: bool, rows: int, columns: int) -> np.ndarray:
    """Stored pixel values of one slice, shape ``(rows, columns)``; InputError naming the file."""
    try:
        ds = pydicom.dcmread(path, force=forced)
        if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
            raise ValueError("no pixel data (the file is incomplete or truncated)")
        pixels = ds.pixel_array
    except Exception as exc:  # re-raised with the file name: pydicom raises many types
        reason = " ".join(str(exc).split())[:300]
        hint = (
            "; install pylibjpeg / python-gdcm for compressed files"
            if "decod" in reason.lower() or "plugin" in reason.lower()
            else ""
        )
        raise file_error(
            InputError,
            path,
            f"cannot read the pixel data ({type(exc).__name__}: {reason}){hint}; replace or remove the file",
        ) from exc
    if pixels.shape != (rows, columns):
        raise file_error(
            InputError,
            path,
            f"pixel data of shape {pixels.shape} does not match Rows x Columns {rows}x{columns}; the file is corrupt",
        )
    return pixels


# ----------------------------------------------------------------------------- writing helpers


def _ds(value: float) -> str:
    """A DS string of at most 16 characters keeping as many digits as fit."""
    value = float(value)
    if value == 0.0:
        return "0"
    text = repr(value)
    return text if len(text) <= 16 else format_number_as_ds(value)


def _storage_dtype(meta: dict[str, Any], values: np.ndarray) -> tuple[np.dtype, bool]:
    """Storage dtype of the written pixels and whether it is the source's own dtype."""
    name = str(meta.get("dtype", ""))
    if name in ("uint16", "int16"):
        return np.dtype(name), True
    if name == "uint8":
        return np.dtype("uint16"), True
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    nonnegative = finite.size == 0 or float(finite.min()) >= 0
    return np.dtype("uint16" if nonnegative else "int16"), False


def _window(values: np.ndarray) -> tuple[float, float]:
    """Window centre and width covering the 0.5-99.5 percentiles of the real-world values."""
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values.ravel()
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.5]))
    return (lo + hi) / 2.0, max(hi - lo, 1e-3)


def _code_item(code: tuple[str, str, str]) -> Dataset:
    """One item of a Code Sequence (Code Sequence Macro: value, scheme, meaning)."""
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def _sources_per_slice(info: dict[str, Any], positions: np.ndarray, normal: np.ndarray) -> list[list[dict[str, Any]]]:
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


def _add_source_references(ds: Dataset, sources: list[dict[str, Any]], source_series_uid: str) -> None:
    """Source Image Sequence and the matching Referenced Series Sequence (same study) of one slice."""
    if not sources or not source_series_uid:
        return
    images, instances = [], []
    for inst in sources:
        image = Dataset()
        image.ReferencedSOPClassUID = inst["sop_class_uid"]
        image.ReferencedSOPInstanceUID = inst["sop_instance_uid"]
        image.PurposeOfReferenceCodeSequence = DicomSequence([_code_item(SOURCE_PURPOSE_CODE)])
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


def _add_provenance(ds: Dataset, provenance: dict[str, Any]) -> None:
    """Store ``provenance`` as JSON text (VR UT) in the private block ``GEO_MED_SR`` of group 0x0071."""
    block = ds.private_block(PROVENANCE_GROUP, PROVENANCE_CREATOR, create=True)
    block.add_new(PROVENANCE_ELEMENT, "UT", json.dumps(provenance, sort_keys=True))


def _provenance_of(ds: Dataset) -> dict[str, Any] | None:
    """The provenance JSON of a slice header, or None when absent or not a JSON object."""
    try:
        return provenance_from_text(ds.private_block(PROVENANCE_GROUP, PROVENANCE_CREATOR)[PROVENANCE_ELEMENT].value)
    except KeyError:
        return None


def _new_dataset_without_template(meta: dict[str, Any]) -> Dataset:
    """A minimal Secondary Capture dataset (anonymous patient, new study) for non-DICOM inputs."""
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
    ds.SeriesDescription = str(meta.get("description", "") or "geo_med_sr")
    ds.SeriesNumber = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def _base_dataset(image: SpatialArray) -> tuple[Dataset, str]:
    """The dataset every slice starts from, and the source series UID ("" without a template)."""
    info = image.meta.get("dicom") if isinstance(image.meta.get("dicom"), dict) else None
    if not info or not info.get("template"):
        return _new_dataset_without_template(image.meta), ""
    ds = Dataset.from_json(info["template"])
    ds.remove_private_tags()
    for keyword in _DROPPED_ON_WRITE:
        if keyword in ds:
            delattr(ds, keyword)
    for tag in list(ds.keys()):
        if 0x6000 <= tag.group <= 0x60FF or 0x5000 <= tag.group <= 0x50FF or tag.group == 0x0002:
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


# ----------------------------------------------------------------------------- the adapter


class DicomAdapter(Adapter):
    """A folder holding one or more DICOM series of single-frame grayscale slices."""

    name = "dicom"
    is_folder = True

    @classmethod
    def can_read(cls, path: Path) -> bool:
        """True for a folder with at least one DICOM file directly inside (never raises)."""
        try:
            path = Path(path)
            if not path.is_dir():
                return False
            return any(_sniff(p) is not None for p in _folder_files(path))
        except OSError:
            return False

    @classmethod
    def can_write(cls, path: Path) -> bool:
        """True for an existing folder or a new name without a file-type suffix.

        A purely numeric suffix (``sr_v1.2``) counts as part of a folder name; ``.nii``,
        ``.nii.gz``, ``.tif``, ``.dcm`` and any other alphabetic suffix name a file.
        """
        path = Path(path)
        if path.is_dir():
            return True
        if path.exists():
            return False
        name = path.name.lower()
        suffix = Path(name).suffix
        return not name.endswith(OTHER_FORMAT_SUFFIXES) and (suffix == "" or suffix[1:].isdigit())

    @classmethod
    def read(cls, path: Path, series: str | None = None, **options: Any) -> SpatialArray:
        """Read one series of ``path`` into a SpatialArray.

        Args:
            path: folder holding the slice files (not searched recursively; files that are not
                DICOM, and DICOM objects that are not images such as DICOMDIR, are skipped).
            series: SeriesInstanceUID to read; required when the folder holds several series.
            **options: accepted for a uniform adapter interface and ignored.

        Returns:
            SpatialArray with ``array`` of shape ``(1, columns, rows, slices)`` holding
            real-world values (stored * RescaleSlope + RescaleIntercept; the stored integer
            dtype when no slice is rescaled, float32 otherwise), a centre-anchored RAS affine
            and JSON-able ``meta`` (``format``, ``dtype``, ``rescale`` when uniform, ``dicom``
            with the writer's template).

        Raises:
            InputError: no readable series, several series without ``series``, an unknown
                ``series``, unsupported images (multi-frame, colour) or a corrupt file.
            GeometryError: the slices do not form one regular, untilted grid.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise file_error(InputError, folder, "a DICOM series must be given as the folder holding its files")
        candidates = [(p, _sniff(p)) for p in _folder_files(folder)]
        candidates = [(p, kind) for p, kind in candidates if kind is not None]
        if not candidates:
            subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir())
            hint = f" (sub-folders are not searched: {', '.join(subfolders[:5])})" if subfolders else ""
            raise file_error(
                InputError, folder, f"no DICOM files found{hint}; pass the folder that holds the series' files"
            )

        forced: dict[Path, bool] = {}
        groups: dict[str, list[tuple[Path, Dataset]]] = {}
        skipped = 0
        for file, kind in candidates:
            try:
                ds = pydicom.dcmread(file, stop_before_pixels=True, force=kind == "raw")
            except Exception as exc:  # re-raised with the file name: pydicom raises many types
                reason = " ".join(str(exc).split())[:300]
                raise file_error(
                    InputError,
                    file,
                    f"not a readable DICOM file ({type(exc).__name__}: {reason}); replace or remove it",
                ) from exc
            if len(ds) == 0:
                raise file_error(
                    InputError, file, "the DICOM file holds no data elements (empty or truncated); replace or remove it"
                )
            if _is_non_image_object(ds):
                skipped += 1
                continue
            uid = str(ds.get("SeriesInstanceUID", "") or "")
            if not uid:
                raise file_error(
                    InputError,
                    file,
                    "SeriesInstanceUID is missing (incomplete or truncated file?); replace or remove it",
                )
            forced[file] = kind == "raw"
            groups.setdefault(uid, []).append((file, ds))
        if not groups:
            raise file_error(
                InputError,
                folder,
                f"no DICOM images found ({skipped} non-image DICOM objects such as DICOMDIR skipped)",
            )

        uid, items = _select_series(folder, groups, series)
        for file, ds in items:
            _check_image_kind(file, ds)
        items, lps, step = _slice_geometry(folder, items)

        rows, columns = int(items[0][1].Rows), int(items[0][1].Columns)
        stored = [_read_pixels(file, forced[file], rows, columns) for file, _ in items]
        storage = np.result_type(*[s.dtype for s in stored])
        pairs = [_rescale_pair(ds) for _, ds in items]
        identity = all(p == (1.0, 0.0) for p in pairs)
        out_dtype = storage if identity else np.dtype(np.float32)
        volume = np.empty((1, columns, rows, len(items)), dtype=out_dtype)
        for k, (pixels, (slope, inter)) in enumerate(zip(stored, pairs)):
            if identity:
                volume[0, :, :, k] = pixels.T
            else:
                volume[0, :, :, k] = (pixels.T.astype(np.float64) * slope + inter).astype(np.float32)

        first = items[0][1]
        description = str(first.get("SeriesDescription", "") or "")
        meta: dict[str, Any] = {
            "format": "dicom",
            "dtype": storage.name,
            "description": description,
            "dicom": {
                "template": _strip_template(first).to_json_dict(suppress_invalid_tags=True),
                "series_uid": uid,
                "series_description": description,
                "modality": str(first.get("Modality", "") or ""),
                "sop_class_uid": _sop_class(first),
                "slice_thickness": _optional_float(first, "SliceThickness"),
                "slice_spacing": step,
                "source_files": len(items),
                "source_instances": _source_instances(items),
            },
        }
        if all(p == pairs[0] for p in pairs):
            meta["rescale"] = [float(pairs[0][0]), float(pairs[0][1])]
        return SpatialArray(array=volume, affine=geometry.lps_to_ras(lps), meta=meta)

    @classmethod
    def write(cls, image: SpatialArray, path: Path, series_description_suffix: str = " SR", **ignored: Any) -> None:
        """Write ``image`` as a new derived DICOM series, one file per slice.

        Args:
            image: one 3D volume, ``array`` of shape ``(1, columns, rows, slices)``, RAS affine.
                With ``meta["dicom"]["template"]`` (from :meth:`read`) the series keeps the
                source's patient, study, frame of reference and SOP class; without it a
                Secondary Capture series with an anonymous patient and a new study is made.
            path: an existing, empty folder (the I/O layer's temporary folder).
            series_description_suffix: appended to the source's SeriesDescription.
            **ignored: options meant for other adapters.

        Raises:
            OutputError: the image is not one 3D volume, its in-plane axes are not
                perpendicular, or ``path`` is not an empty folder.
        """
        folder = Path(path)
        if image.spatial_dims != 3 or image.num_channels != 1:
            raise file_error(
                OutputError,
                folder,
                f"DICOM output needs one 3D volume (1 channel, 3 spatial axes), got {image.num_channels} channel(s)"
                f" and {image.spatial_dims} spatial axes; write NIfTI (.nii.gz) instead",
            )
        if not folder.is_dir() or any(folder.iterdir()):
            raise file_error(OutputError, folder, "the DICOM writer needs an existing empty folder")

        lps = geometry.ras_to_lps(image.affine)
        col_vec, row_vec, slice_vec = lps[:3, 0], lps[:3, 1], lps[:3, 2]
        col_spacing, row_spacing = float(np.linalg.norm(col_vec)), float(np.linalg.norm(row_vec))
        row_dir, col_dir = col_vec / col_spacing, row_vec / row_spacing
        if abs(float(row_dir @ col_dir)) > 1e-4:
            raise file_error(
                OutputError,
                folder,
                "the image's first two axes are not perpendicular; DICOM slices cannot represent a sheared in-plane grid; write NIfTI instead",
            )
        normal = np.cross(row_dir, col_dir)
        slice_spacing = abs(float(slice_vec @ normal))
        if slice_spacing <= 0:
            raise file_error(
                OutputError,
                folder,
                "the slice axis lies within the slice planes; the affine cannot be written as DICOM",
            )

        values = np.asarray(image.array[0])
        storage, own_dtype = _storage_dtype(image.meta, values)
        rescale = image.meta.get("rescale")
        if own_dtype and isinstance(rescale, (list, tuple)) and len(rescale) == 2:
            slope, inter = float(rescale[0]), float(rescale[1])
        else:
            slope, inter = rescale_for(values, storage)
        raw = cast_to_dtype(values, storage, slope, inter).astype(storage.newbyteorder("<"), copy=False)
        center, width = _window(values)

        base, source_uid = _base_dataset(image)
        info = image.meta.get("dicom") if isinstance(image.meta.get("dicom"), dict) else {}
        old_thickness, old_spacing = info.get("slice_thickness"), info.get("slice_spacing")
        if old_thickness and old_spacing:
            thickness = float(old_thickness) * slice_spacing / float(old_spacing)
        else:
            thickness = slice_spacing

        now = datetime.datetime.now()
        today, time_now = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
        try:
            series_number = int(base.get("SeriesNumber", 0) or 0) + 1000
        except (TypeError, ValueError):
            series_number = 1000
        description = (str(base.get("SeriesDescription", "") or "") + series_description_suffix)[:64]
        derivation = f"super-resolved by geo_med_sr {__version__}"
        if source_uid:
            derivation += f" from series {source_uid}"
        derivation += f"; grid {'x'.join(str(n) for n in image.spatial_shape)} voxels of {col_spacing:.4g}x{row_spacing:.4g}x{slice_spacing:.4g} mm"

        base.SeriesInstanceUID = generate_uid()
        base.SeriesNumber = series_number
        base.SeriesDescription = description
        base.SeriesDate, base.SeriesTime = today, time_now
        base.ContentDate, base.ContentTime = today, time_now
        base.InstanceCreationDate, base.InstanceCreationTime = today, time_now
        base.ImageType = ["DERIVED", "SECONDARY"]
        base.DerivationDescription = derivation[:1024]
        base.DerivationCodeSequence = DicomSequence([_code_item(DERIVATION_CODE)])
        if image.meta.get("provenance") is not None:
            _add_provenance(base, image.meta["provenance"])
        base.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
        base.PixelSpacing = [_ds(row_spacing), _ds(col_spacing)]
        base.SliceThickness = _ds(thickness)
        base.SpacingBetweenSlices = _ds(slice_spacing)
        base.Rows, base.Columns = values.shape[1], values.shape[0]
        base.SamplesPerPixel = 1
        if base.get("PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2"):
            base.PhotometricInterpretation = "MONOCHROME2"
        base.BitsAllocated, base.BitsStored, base.HighBit = 16, 16, 15
        base.PixelRepresentation = 1 if storage.kind == "i" else 0
        base.RescaleSlope, base.RescaleIntercept = _ds(slope), _ds(inter)
        base.WindowCenter, base.WindowWidth = _ds(center), _ds(width)

        digits = max(4, len(str(values.shape[2])))
        positions = lps[:3, 3] + np.outer(
            np.arange(values.shape[2], dtype=np.float64), lps[:3, 2]
        )  # (slices, 3) LPS mm
        sources = _sources_per_slice(info or {}, positions, normal)
        for k in range(values.shape[2]):
            ds = copy.deepcopy(base)
            sop_uid = generate_uid()
            ds.SOPInstanceUID = sop_uid
            ds.InstanceNumber = k + 1
            position = positions[k]
            ds.ImagePositionPatient = [_ds(v) for v in position]
            _add_source_references(ds, sources[k], source_uid)
            ds.SliceLocation = _ds(float(position @ normal))
            ds.PixelData = np.ascontiguousarray(raw[:, :, k].T).tobytes()
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
            meta.MediaStorageSOPInstanceUID = sop_uid
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
            meta.ImplementationVersionName = f"GEOMEDSR_{__version__}"[:16]
            ds.file_meta = meta
            ds.save_as(os.fspath(folder / f"IM_{k + 1:0{digits}d}.dcm"), enforce_file_format=True)

    @classmethod
    def read_provenance(cls, path: Path) -> dict[str, Any] | None:
        """The provenance JSON stored in the first DICOM file of the folder ``path`` (header only).

        Returns None when ``path`` is not a folder, holds no DICOM file, the file is unreadable
        (corrupt, partial) or has no ``GEO_MED_SR`` private block.
        """
        folder = Path(path)
        try:
            files = _folder_files(folder) if folder.is_dir() else []
        except OSError:
            return None
        for file in files:
            kind = _sniff(file)
            if kind is None:
                continue
            try:
                ds = pydicom.dcmread(file, stop_before_pixels=True, force=kind == "raw")
            except Exception:  # pydicom raises many types for corrupt or partial files: no provenance
                return None
            return _provenance_of(ds)
        return None

    @classmethod
    def describe(cls, image: SpatialArray) -> dict[str, Any]:
        """Series UID, description, modality, number of slices and slice thickness."""
        info = image.meta.get("dicom") if isinstance(image.meta.get("dicom"), dict) else {}
        shape = image.spatial_shape
        return {
            "series UID": info.get("series_uid", ""),
            "series description": info.get("series_description", image.meta.get("description", "")),
            "modality": info.get("modality", ""),
            "slices": shape[-1] if shape else 0,
            "slice thickness (mm)": info.get("slice_thickness"),
        }


ADAPTERS.add("dicom", DicomAdapter)
