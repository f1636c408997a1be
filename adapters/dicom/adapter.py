"""The DICOM adapter class: the declared :class:`~geo_med_sr.adapters.base.Adapter` interface.

Each method is a short sequence of steps from the modules of this package: :mod:`.scan` and
:mod:`.geometry` and :mod:`.pixels` and :mod:`.meta` to read, :mod:`.geometry`, :mod:`.pixels`,
:mod:`.template`, :mod:`.references` and :mod:`.write` to write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from geo_med_sr.adapters.base import Adapter
from geo_med_sr.adapters.dicom.detect import folder_files, sniff
from geo_med_sr.adapters.dicom.geometry import series_geometry, single_slice_step, slice_grid
from geo_med_sr.adapters.dicom.meta import dicom_info, series_meta
from geo_med_sr.adapters.dicom.pixels import encode_volume, read_volume
from geo_med_sr.adapters.dicom.provenance import read_folder_provenance
from geo_med_sr.adapters.dicom.references import add_source_references, sources_per_slice
from geo_med_sr.adapters.dicom.scan import check_image_kind, scan_folder, select_series
from geo_med_sr.adapters.dicom.template import base_dataset
from geo_med_sr.adapters.dicom.write import (
    check_output,
    derivation_text,
    instance_numbers,
    output_thickness,
    save_slice,
    set_image_attributes,
    set_series_attributes,
    slice_dataset,
    slice_file_name,
)
from geo_med_sr.geometry import lps_to_ras
from geo_med_sr.inference.protocols import ImageSource
from geo_med_sr.spatial import SpatialArray

#: output names that belong to other adapters (a DICOM output is a folder without suffix).
OTHER_FORMAT_SUFFIXES = (".nii", ".nii.gz", ".tif", ".tiff", ".img", ".hdr", ".mha", ".mhd", ".nrrd", ".png", ".jpg")


def spacing_line(info: dict[str, Any]) -> str:
    """``describe``'s slice spacing: mm and where it came from (one slice: not measured, said so)."""
    spacing = info.get("slice_spacing")
    if spacing is None:
        return ""
    source = info.get("slice_spacing_source", "ImagePositionPatient")
    if source == "ImagePositionPatient":
        return f"{float(spacing):.4g} mm"
    if source == "assumed":
        return f"{float(spacing):.4g} mm (assumed: one slice without SpacingBetweenSlices or SliceThickness)"
    return f"{float(spacing):.4g} mm (from {source}: one slice, not measured)"


class DicomAdapter(Adapter):
    """A folder holding one or more DICOM series of single-frame grayscale slices."""

    name = "dicom"
    domain = "medical"
    spatial_dims = 3
    is_folder = True
    reads_windows = False
    writes_windows = False
    band_selection = False

    @classmethod
    def can_read(cls, path: Path) -> bool:
        """True for a folder with at least one DICOM file directly inside (never raises)."""
        try:
            path = Path(path)
            if not path.is_dir():
                return False
            return any(sniff(p) is not None for p in folder_files(path))
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
            with the writer's template). A one-slice series takes its slice spacing from
            SpacingBetweenSlices, else SliceThickness, else 1.0 mm, and records it
            (``dicom["slice_spacing_source"]``, ``dicom["slice_spacing_assumed"]``).

        Raises:
            InputError: no readable series, several series without ``series``, an unknown
                ``series``, unsupported images (multi-frame, colour) or a corrupt file.
            GeometryError: the slices do not form one regular, untilted grid.
        """
        folder = Path(path)
        groups, forced = scan_folder(folder)
        uid, items = select_series(folder, groups, series)
        for file, ds in items:
            check_image_kind(file, ds)
        items, lps, step = series_geometry(folder, items)
        volume, storage, pairs = read_volume(items, forced)
        source = "ImagePositionPatient" if len(items) > 1 else single_slice_step(items[0][1])[1]
        meta = series_meta(uid, items, storage, pairs, step, source)
        return SpatialArray(array=volume, affine=lps_to_ras(lps), meta=meta)

    @classmethod
    def write(
        cls,
        image: SpatialArray,
        path: Path,
        series_description_suffix: str = " SR",
        modality: str | None = None,
        template: Path | str | None = None,
        patient_id: str | None = None,
        patient_name: str | None = None,
        input_sha256: str | None = None,
        **ignored: Any,
    ) -> None:
        """Write ``image`` as a new derived DICOM series, one file per slice.

        Args:
            image: one 3D volume, ``array`` of shape ``(1, columns, rows, slices)`` of real-world
                values, RAS affine. With ``meta["dicom"]["template"]`` (from :meth:`read`) the
                series keeps the source's patient, study, frame of reference and SOP class;
                without it the patient and study are derived from ``input_sha256``.
            path: an existing, empty folder (the I/O layer's temporary folder).
            series_description_suffix: appended to the source's SeriesDescription.
            modality: the IOD: "MR" (MR Image Storage), "CT" (CT Image Storage) or "OT"
                (Secondary Capture); None: the source's class, Secondary Capture for a
                non-DICOM input. Only MR/CT carry the geometry to GDCM/ITK readers.
            template: a DICOM series folder whose patient and study identity the series takes
                (and its frame of reference, for a NIfTI input in scanner coordinates).
            patient_id, patient_name: override the patient identity.
            input_sha256: the input's SHA-256 hex digest: PatientID ``GMS<16 hex>`` and a
                deterministic study for a non-DICOM input.
            **ignored: options meant for other adapters.

        Raises:
            OutputError: the image is not one 3D volume, its in-plane axes are not
                perpendicular, ``path`` is not an empty folder, an unknown or relabelling
                ``modality``, or a slice cannot be written (disk full: the system's reason).
            InputError: the ``template`` folder holds no readable DICOM series.
        """
        folder = Path(path)
        check_output(image, folder)
        values = np.asarray(image.array[0])  # (columns, rows, slices) real-world values
        grid = slice_grid(image.affine, values.shape[2], folder)
        pixels = encode_volume(values, image.meta)
        info = dicom_info(image.meta)
        base, source_uid = base_dataset(
            image.meta,
            folder,
            modality=modality,
            template=None if template is None else Path(template),
            patient_id=patient_id,
            patient_name=patient_name,
            input_sha256=input_sha256,
        )
        derivation = derivation_text(source_uid, image.spatial_shape, grid)
        set_series_attributes(base, series_description_suffix, derivation, image.meta.get("provenance"))
        set_image_attributes(
            base, grid, output_thickness(info, grid.slice_spacing), values.shape, pixels, info.get("window")
        )
        sources = sources_per_slice(info, grid.positions, grid.normal)
        numbers = instance_numbers(grid.positions, grid.normal, int(info.get("instance_direction", 1) or 1))
        location_sign = int(info.get("slice_location_sign", 1) or 1)
        for k in range(values.shape[2]):
            position = grid.positions[k]
            location = location_sign * float(position @ grid.normal)
            ds = slice_dataset(base, int(numbers[k]), position, location, pixels.raw[:, :, k])
            add_source_references(ds, sources[k], source_uid)
            save_slice(ds, folder / slice_file_name(int(numbers[k]), values.shape[2]))

    @classmethod
    def read_provenance(cls, path: Path) -> dict[str, Any] | None:
        """The provenance JSON stored in the first of our DICOM files of the folder ``path`` (headers only).

        Files that are not ours (unreadable, or without a ``GEO_MED_SR`` private block) are
        skipped; None when no file (of the first 16) carries provenance.
        """
        return read_folder_provenance(path)

    @classmethod
    def describe(cls, image: SpatialArray | ImageSource) -> dict[str, Any]:
        """Series UID, description, modality, number of slices, slice thickness and spacing (and its source).

        Args:
            image: a SpatialArray or an opened source (uses only ``shape``, ``affine``, ``meta``).
        """
        info = dicom_info(image.meta)
        shape = tuple(image.shape[1:])
        return {
            "series UID": info.get("series_uid", ""),
            "series description": info.get("series_description", image.meta.get("description", "")),
            "modality": info.get("modality", ""),
            "slices": shape[-1] if shape else 0,
            "slice thickness (mm)": info.get("slice_thickness"),
            "slice spacing": spacing_line(info),
        }
