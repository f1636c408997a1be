"""Writing a derived series: the series-level attributes, then one file per slice.

A written series is new (new SeriesInstanceUID and SOPInstanceUIDs; same study, frame of
reference and patient as the source when there is a template), derived (ImageType ``["DERIVED",
"SECONDARY"]``, a Derivation Description and Code Sequence), and holds one Explicit VR Little Endian
file per slice, named ``IM_0001.dcm``, ``IM_0002.dcm``, ... in slice order.
"""

from __future__ import annotations

import copy
import datetime
import os
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from ... import __version__
from ...errors import OutputError, file_error
from ...spatial import SpatialArray
from .geometry import SliceGrid
from .pixels import StoredPixels
from .provenance import add_provenance
from .references import DERIVATION_CODE, code_item


def ds_text(value: float) -> str:
    """A DS string of at most 16 characters keeping as many digits as fit."""
    value = float(value)
    if value == 0.0:
        return "0"
    text = repr(value)
    return text if len(text) <= 16 else format_number_as_ds(value)


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
    base.ImageType = ["DERIVED", "SECONDARY"]
    base.DerivationDescription = derivation[:1024]
    base.DerivationCodeSequence = DicomSequence([code_item(DERIVATION_CODE)])
    if provenance is not None:
        add_provenance(base, provenance)


def set_image_attributes(
    base: Dataset, grid: SliceGrid, thickness: float, shape: tuple[int, ...], pixels: StoredPixels
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
    base.WindowCenter, base.WindowWidth = ds_text(pixels.center), ds_text(pixels.width)


def slice_file_names(count: int) -> list[str]:
    """``IM_0001.dcm`` ... for ``count`` slices (more digits when ``count`` needs them)."""
    digits = max(4, len(str(count)))
    return [f"IM_{k + 1:0{digits}d}.dcm" for k in range(count)]


def slice_dataset(base: Dataset, k: int, position: np.ndarray, normal: np.ndarray, raw: np.ndarray) -> Dataset:
    """Slice ``k`` (0-based): a copy of ``base`` with a new SOPInstanceUID, its position and pixels.

    Args:
        base: the series-level dataset.
        k: slice index; InstanceNumber is ``k + 1``.
        position: ``(3,)`` ImagePositionPatient (LPS mm).
        normal: ``(3,)`` unit slice normal (LPS), for SliceLocation.
        raw: ``(columns, rows)`` stored values of the slice.
    """
    ds = copy.deepcopy(base)
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [ds_text(v) for v in position]
    ds.SliceLocation = ds_text(float(position @ normal))
    ds.PixelData = np.ascontiguousarray(raw.T).tobytes()
    return ds


def save_slice(ds: Dataset, path: Path) -> None:
    """Save one slice as a DICOM Part 10 file (Explicit VR Little Endian) at ``path``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"GEOMEDSR_{__version__}"[:16]
    ds.file_meta = meta
    ds.save_as(os.fspath(path), enforce_file_format=True)
