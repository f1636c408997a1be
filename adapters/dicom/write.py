"""Writing a derived series: the series-level attributes, then one file per slice.

A written series is new (new SeriesInstanceUID and SOPInstanceUIDs; same study, frame of
reference and patient as the source when there is a template), derived (ImageType
``DERIVED\\SECONDARY\\<source value 3 or OTHER>[\\<source value 4>]``, a Derivation Description
and Code Sequence), and holds one Explicit VR Little Endian file per slice, named
``IM_0001.dcm``, ``IM_0002.dcm``, ... by InstanceNumber. InstanceNumber runs in the same
spatial direction as the source's did, and SliceLocation follows the source's sign convention
(``meta["dicom"]["instance_direction"]`` and ``["slice_location_sign"]``, +1 without a source:
numbers grow and locations are ``position . normal`` along the slice normal).
"""

from __future__ import annotations

import copy
import datetime
import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from geo_med_sr import __version__
from geo_med_sr.adapters.dicom.geometry import SliceGrid
from geo_med_sr.adapters.dicom.header import ds_text
from geo_med_sr.adapters.dicom.pixels import StoredPixels
from geo_med_sr.adapters.dicom.provenance import add_provenance
from geo_med_sr.adapters.dicom.references import DERIVATION_CODE, code_item
from geo_med_sr.errors import OutputError, file_error
from geo_med_sr.spatial import SpatialArray

#: General Equipment attributes that describe the source's equipment (moved to Contributing Equipment).
EQUIPMENT_KEYWORDS = ("Manufacturer", "ManufacturerModelName", "DeviceSerialNumber", "StationName", "SoftwareVersions")
#: (CodeValue, CodingSchemeDesignator, CodeMeaning) of the source's equipment (CID 7005).
ACQUISITION_EQUIPMENT_CODE = ("109101", "DCM", "Acquisition Equipment")


def check_output(image: SpatialArray, folder: Path) -> None:
    """Refuse an image that is not one 3D volume, or a ``folder`` that is not an existing empty folder.

    Raises:
        OutputError: naming ``folder``.
    """
    if image.spatial_dims != 3 or image.num_channels != 1:
        raise file_error(
            OutputError,
            folder,
            f"DICOM output needs one 3D volume (1 channel, 3 spatial axes), got {image.num_channels} channel(s)"
            f" and {image.spatial_dims} spatial axes; write NIfTI (.nii.gz) instead",
        )
    if not folder.is_dir() or any(folder.iterdir()):
        raise file_error(OutputError, folder, "the DICOM writer needs an existing empty folder")


def output_thickness(info: dict[str, Any], slice_spacing: float) -> float:
    """SliceThickness (mm) of the output: the source's thickness scaled like its slice spacing, else the spacing."""
    old_thickness, old_spacing = info.get("slice_thickness"), info.get("slice_spacing")
    if old_thickness and old_spacing:
        return float(old_thickness) * slice_spacing / float(old_spacing)
    return slice_spacing


def derivation_text(source_uid: str, shape: tuple[int, ...], grid: SliceGrid) -> str:
    """DerivationDescription: tool, source series and the written grid (voxels and mm)."""
    derivation = f"super-resolved by geo_med_sr {__version__}"
    if source_uid:
        derivation += f" from series {source_uid}"
    row_spacing, col_spacing = (float(v) for v in grid.pixel_spacing)
    derivation += (
        f"; grid {'x'.join(str(n) for n in shape)} voxels of"
        f" {col_spacing:.4g}x{row_spacing:.4g}x{grid.slice_spacing:.4g} mm"
    )
    return derivation


def derived_image_type(source: Any) -> list[str]:
    """``DERIVED\\SECONDARY\\<source's value 3, else OTHER>`` plus the source's value 4 when it has one."""
    values = [] if source is None else ([source] if isinstance(source, str) else [str(v) for v in source])
    out = ["DERIVED", "SECONDARY", values[2] if len(values) > 2 and values[2] else "OTHER"]
    if len(values) > 3 and values[3]:
        out.append(values[3])
    return out


def set_equipment(base: Dataset) -> None:
    """General Equipment of a derived series: this tool made the instances; the scanner contributed.

    The source's equipment (Manufacturer, model, serial number, station, software) moves into
    Contributing Equipment Sequence (purpose "Acquisition Equipment", DCM 109101). Readers that
    tune themselves to a vendor (dcm2niix's Siemens slice timing from CSA headers, which are not
    copied) then no longer treat the derived slices as that vendor's acquisition.
    """
    item = Dataset()
    for keyword in EQUIPMENT_KEYWORDS:
        if base.get(keyword):
            setattr(item, keyword, base.get(keyword))
        if keyword in base:
            delattr(base, keyword)
    if item.get("Manufacturer"):
        item.PurposeOfReferenceCodeSequence = DicomSequence([code_item(ACQUISITION_EQUIPMENT_CODE)])
        previous = list(base.get("ContributingEquipmentSequence", []))
        base.ContributingEquipmentSequence = DicomSequence([*previous, item])
    base.Manufacturer = "geo_med_sr"
    base.ManufacturerModelName = "geo_med_sr"
    base.SoftwareVersions = __version__


def set_series_attributes(base: Dataset, suffix: str, derivation: str, provenance: dict[str, Any] | None) -> None:
    """A new series in ``base``: UID, number (+1000), description (+ ``suffix``), dates, derivation, provenance."""
    now = datetime.datetime.now()
    today, time_now = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
    try:
        series_number = int(base.get("SeriesNumber", 0) or 0) + 1000
    except (TypeError, ValueError):
        series_number = 1000
    base.SeriesInstanceUID = generate_uid()
    base.SeriesNumber = series_number
    base.SeriesDescription = (str(base.get("SeriesDescription", "") or "") + suffix)[:64]
    base.SeriesDate, base.SeriesTime = today, time_now
    base.ContentDate, base.ContentTime = today, time_now
    base.InstanceCreationDate, base.InstanceCreationTime = today, time_now
    base.ImageType = derived_image_type(base.get("ImageType"))
    set_equipment(base)
    base.DerivationDescription = derivation[:1024]
    base.DerivationCodeSequence = DicomSequence([code_item(DERIVATION_CODE)])
    if provenance is not None:
        add_provenance(base, provenance)


def set_image_attributes(
    base: Dataset,
    grid: SliceGrid,
    thickness: float,
    shape: tuple[int, ...],
    pixels: StoredPixels,
    window: dict[str, Any] | None = None,
) -> None:
    """Image Plane and Image Pixel attributes shared by every slice of a ``(columns, rows, slices)`` volume."""
    base.ImageOrientationPatient = [ds_text(v) for v in grid.orientation]
    base.PixelSpacing = [ds_text(v) for v in grid.pixel_spacing]
    base.SliceThickness = ds_text(thickness)
    base.SpacingBetweenSlices = ds_text(grid.slice_spacing)
    base.Rows, base.Columns = shape[1], shape[0]
    base.SamplesPerPixel = 1
    if base.get("PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2"):
        base.PhotometricInterpretation = "MONOCHROME2"
    base.BitsAllocated, base.BitsStored, base.HighBit = 16, 16, 15
    base.PixelRepresentation = 1 if pixels.storage.kind == "i" else 0
    base.RescaleSlope, base.RescaleIntercept = ds_text(pixels.slope), ds_text(pixels.intercept)
    if not pixels.kept and "RescaleType" in base:
        del base.RescaleType  # it described the source's own rescale
    if "RescaleType" not in base and base.SOPClassUID != MRImageStorage:
        base.RescaleType = "HU" if base.SOPClassUID == CTImageStorage else "US"
    set_window(base, window, pixels)


def set_window(base: Dataset, window: dict[str, Any] | None, pixels: StoredPixels) -> None:
    """WindowCenter/Width: the source's series window (real-world units stay true), else computed from the values.

    Args:
        window: ``meta["dicom"]["window"]`` (``center``, ``width`` lists, ``explanation``), or None.
    """
    for keyword in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation"):
        if keyword in base:
            delattr(base, keyword)
    if window and window.get("center") and len(window["center"]) == len(window.get("width") or []):
        centers, widths = [ds_text(v) for v in window["center"]], [ds_text(v) for v in window["width"]]
        base.WindowCenter = centers if len(centers) > 1 else centers[0]
        base.WindowWidth = widths if len(widths) > 1 else widths[0]
        explanation = [str(v) for v in window.get("explanation") or []]
        if len(explanation) == len(centers):
            base.WindowCenterWidthExplanation = explanation if len(explanation) > 1 else explanation[0]
        return
    if "VOILUTFunction" in base:
        del base.VOILUTFunction
    base.WindowCenter, base.WindowWidth = ds_text(pixels.center), ds_text(pixels.width)


def slice_file_name(instance: int, count: int) -> str:
    """``IM_0001.dcm`` for InstanceNumber 1 of a ``count``-slice series (more digits when ``count`` needs them)."""
    return f"IM_{instance:0{max(4, len(str(count)))}d}.dcm"


def instance_numbers(positions: np.ndarray, normal: np.ndarray, direction: int) -> np.ndarray:
    """InstanceNumber of each slice ``(N,)``: 1..N growing along ``direction * normal``.

    Args:
        positions: ``(N, 3)`` ImagePositionPatient of the slices, in index order (LPS mm).
        normal: ``(3,)`` unit slice normal (LPS).
        direction: +1 or -1: the direction the source's InstanceNumbers ran along the normal.
    """
    along = direction * (positions @ normal)
    numbers = np.empty(len(along), dtype=np.int64)
    numbers[np.argsort(along, kind="stable")] = np.arange(1, len(along) + 1)
    return numbers


def slice_dataset(base: Dataset, instance: int, position: np.ndarray, location: float, raw: np.ndarray) -> Dataset:
    """One slice: a copy of ``base`` with a new SOPInstanceUID, its number, position and pixels.

    Args:
        base: the series-level dataset.
        instance: its InstanceNumber (1-based).
        position: ``(3,)`` ImagePositionPatient (LPS mm).
        location: SliceLocation (mm).
        raw: ``(columns, rows)`` stored values of the slice.
    """
    ds = copy.deepcopy(base)
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = int(instance)
    ds.ImagePositionPatient = [ds_text(v) for v in position]
    ds.SliceLocation = ds_text(location)
    ds.PixelData = np.ascontiguousarray(raw.T).tobytes()
    return ds


def user_folder(folder: Path) -> Path:
    """The output folder the user named for the I/O layer's temporary ``.<name>.partial-*`` folder, else ``folder``."""
    name = folder.name
    if name.startswith(".") and ".partial-" in name:
        return folder.parent / name[1 : name.index(".partial-")]
    return folder


def system_reason(exc: BaseException) -> tuple[str, int | None]:
    """The system's reason for a failed write (``strerror``, one line) and its errno.

    pydicom re-raises an error met while writing an element as a new exception of the same type
    whose text embeds the traceback (``With tag ... got exception: ...``) and which has no errno;
    the original ``OSError`` is its ``__cause__``. This walks ``exc``'s chain to the first
    ``OSError`` with an errno; without one it is the first line of ``exc``'s text (never a traceback).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            return current.strerror or os.strerror(current.errno), current.errno
        current = current.__cause__ or current.__context__
    lines = str(exc).strip().splitlines()
    return (lines[0].strip() if lines else type(exc).__name__), None


def save_slice(ds: Dataset, path: Path) -> None:
    """Save one slice as a DICOM Part 10 file (Explicit VR Little Endian) at ``path``.

    Raises:
        OutputError: naming the output folder, when the file cannot be written (disk full,
            permissions, ...), with the system's reason.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"GEOMEDSR_{__version__}"[:16]
    ds.file_meta = meta
    try:
        ds.save_as(os.fspath(path), enforce_file_format=True)
    except OSError as exc:
        reason, code = system_reason(exc)
        hint = "free some space" if code in (errno.ENOSPC, errno.EDQUOT) else "check the folder"
        raise file_error(
            OutputError,
            user_folder(path.parent),
            f"cannot write DICOM slice {path.name}: {reason}; {hint} and run again",
        ) from exc
