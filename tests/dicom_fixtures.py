"""Synthetic DICOM series for tests: real MR Image Storage files written with pydicom.

Import from tests with ``from dicom_fixtures import make_synthetic_series`` (the tests folder
is on ``sys.path`` through pytest's default "prepend" import mode).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

#: RAS = diag(-1, -1, 1) * LPS, written out here so the fixture does not reuse the package.
_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def _rotation(axis: str, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def oblique_iop(about_z_deg: float = 20.0, about_x_deg: float = 10.0) -> tuple[float, ...]:
    """ImageOrientationPatient of an axial plane rotated about z, then about x (LPS)."""
    rot = _rotation("x", about_x_deg) @ _rotation("z", about_z_deg)
    return tuple(float(v) for v in (*rot[:, 0], *rot[:, 1]))


def _ds(value: float) -> str:
    value = float(value)
    if value == 0.0:
        return "0"
    return repr(value) if len(repr(value)) <= 16 else format_number_as_ds(value)


def default_values(shape: Sequence[int], dtype: str = "uint16") -> np.ndarray:
    """A non-symmetric integer pattern of shape ``(X, Y, Z)`` that reveals any axis swap or flip."""
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    pattern = (7 * x + 31 * y + 257 * z + (x * y) % 5) % 4000
    if np.dtype(dtype).kind == "i":
        pattern = pattern - 1500
    return pattern.astype(dtype)


def make_synthetic_series(
    folder: str | Path,
    shape: Sequence[int] = (12, 10, 6),
    spacing: Sequence[float] = (0.8, 0.9, 2.5),
    iop: Sequence[float] | None = None,
    origin: Sequence[float] = (-30.5, 20.25, 15.0),
    dtype: str = "uint16",
    series_uid: str | None = None,
    study_uid: str | None = None,
    description: str = "synthetic",
    slope: float = 1.0,
    intercept: float = 0.0,
    missing: Sequence[int] = (),
    tilt_deg: float = 0.0,
    values: np.ndarray | None = None,
    slice_offsets: Mapping[int, float] | None = None,
    slice_thickness: float | None = None,
    patient_id: str = "SYN001",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Write a single-frame MR Image Storage series into ``folder`` (created if needed).

    Slice ``k`` lies at ``origin + k * spacing[2] * normal`` (LPS, plus ``tilt_deg`` of gantry
    tilt along the column direction and ``slice_offsets[k]`` mm along the normal). File names
    are shuffled and InstanceNumber runs backwards, so a reader must sort by position.

    Args:
        folder: output folder; other files in it are left alone.
        shape: ``(columns, rows, slices)``.
        spacing: ``(column spacing, row spacing, slice step)`` in mm, i.e. along index axes 0, 1, 2.
        iop: ImageOrientationPatient (LPS); default an oblique plane (20 deg about z, 10 about x).
        origin: ImagePositionPatient of slice 0 (LPS mm).
        dtype: stored dtype, "uint16" or "int16".
        series_uid, study_uid: UIDs; new ones when None.
        description: SeriesDescription.
        slope, intercept: RescaleSlope / RescaleIntercept written to every slice (tags omitted
            for 1 / 0).
        missing: slice indices not written (a gap in the stack).
        tilt_deg: gantry tilt in degrees (slices shifted along the column direction).
        values: stored values of shape ``(X, Y, Z)``; default :func:`default_values`.
        slice_offsets: extra shift in mm along the normal per slice index (uneven / duplicate).
        slice_thickness: SliceThickness; default ``spacing[2]``.
        patient_id: PatientID.
        seed: seed of the file-name shuffle.

    Returns:
        ``(affine, expected)``: the ``(4, 4)`` centre-anchored RAS affine of the full grid, and
        the expected array of shape ``(1, X, Y, Z)`` (real-world values; the stored dtype when
        slope/intercept are 1/0, float32 otherwise).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shape = tuple(int(n) for n in shape)
    stored = default_values(shape, dtype) if values is None else np.asarray(values).astype(dtype)
    if stored.shape != shape:
        raise ValueError(f"values of shape {stored.shape} do not match shape {shape}")
    iop = np.asarray(oblique_iop() if iop is None else iop, dtype=np.float64)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    step_vec = spacing[2] * normal + spacing[2] * np.tan(np.deg2rad(tilt_deg)) * col_dir
    origin = np.asarray(origin, dtype=np.float64)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_uid = generate_uid()
    rescaled = slope != 1.0 or intercept != 0.0
    offsets = dict(slice_offsets or {})
    rng = np.random.default_rng([seed, zlib.crc32(series_uid.encode())])
    written = [k for k in range(shape[2]) if k not in set(missing)]
    names: list[str] = []
    while len(names) < len(written):  # random names: their order says nothing about positions
        name = f"{int(rng.integers(0, 2**48)):012x}.dcm"
        if name not in names and not (folder / name).exists():
            names.append(name)

    for name, k in zip(names, written):
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate, ds.StudyTime = "20240102", "101500"
        ds.Modality = "MR"
        ds.Manufacturer = "geo_med_sr tests"
        ds.StudyDescription = "synthetic study"
        ds.SeriesDescription = description
        ds.PatientName = "Test^Synthetic"
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19800101"
        ds.PatientSex = "O"
        ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType = "GR", "SP", "2D"
        ds.SliceThickness = _ds(spacing[2] if slice_thickness is None else slice_thickness)
        ds.SpacingBetweenSlices = _ds(spacing[2])
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = 7
        ds.InstanceNumber = shape[2] - k
        ds.FrameOfReferenceUID = frame_uid
        position = origin + k * step_vec + offsets.get(k, 0.0) * normal
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in iop]
        ds.SliceLocation = _ds(float(position @ normal))
        ref = Dataset()
        ref.ReferencedSOPClassUID = MRImageStorage
        ref.ReferencedSOPInstanceUID = generate_uid()
        ds.ReferencedImageSequence = DicomSequence([ref])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = shape[1], shape[0]
        ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if np.dtype(dtype).kind == "i" else 0
        if rescaled:
            ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(intercept)
        ds.WindowCenter, ds.WindowWidth = "500", "1000"
        ds.add_new((0x0029, 0x0010), "LO", "GEOMEDSR TEST")
        ds.add_new((0x0029, 0x1010), "OB", b"\x01\x02" * 700)
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).astype(np.dtype(dtype).newbyteorder("<")).tobytes()
        ds.save_as(folder / name, enforce_file_format=True)

    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing[0]
    lps[:3, 1] = col_dir * spacing[1]
    lps[:3, 2] = step_vec
    lps[:3, 3] = origin
    expected = stored[None]
    if rescaled:
        expected = (stored[None].astype(np.float64) * slope + intercept).astype(np.float32)
    return _FLIP @ lps, expected


def read_headers(folder: str | Path) -> list[pydicom.Dataset]:
    """Every ``*.dcm`` header in ``folder`` (without pixel data), sorted by InstanceNumber."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(Path(folder).glob("*.dcm"))]
    return sorted(headers, key=lambda ds: int(ds.InstanceNumber))


def wait_for_echo(peer, timeout: float = 30.0, interval: float = 0.05, alive=None) -> None:
    """Until ``peer`` (a :class:`geo_med_sr.pacs.net.Peer`: a node starting) answers C-ECHO.

    Args:
        alive: a callable that says whether the process serving ``peer`` still runs (checked between tries,
            so a node that died is reported at once instead of after ``timeout``).
    """
    import time

    from geo_med_sr.errors import InputError
    from geo_med_sr.pacs import dimse

    deadline = time.monotonic() + timeout
    while True:
        try:
            dimse.echo(peer, "TEST")
            return
        except InputError:
            if time.monotonic() > deadline or (alive is not None and not alive()):
                raise
            time.sleep(interval)
