"""DICOM outputs that other tools trust (issue 13): IOD, geometry, pixel storage, numbering, identity, errors.

Unit-level and fast: every test writes a small series with :class:`DicomAdapter` and reads it back
with pydicom (applying RescaleSlope/Intercept exactly as MRtrix/GDCM do) or SimpleITK. The real
clients (dciodvfy, dcm2niix, GDCM, DCMTK) run in ``tests/adapters/test_dicom_clients.py``.
"""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import oblique_affine
from dicom_fixtures import make_synthetic_series, read_headers
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.uid import CTImageStorage, MRImageStorage, SecondaryCaptureImageStorage

from geo_med_sr import geometry, io
from geo_med_sr.adapters.dicom import DicomAdapter
from geo_med_sr.errors import OutputError
from geo_med_sr.spatial import SpatialArray

SHA_A, SHA_B = "ab" * 32, "cd" * 32


def nifti_image(values: np.ndarray, dtype: str = "float32", affine: np.ndarray | None = None, **meta) -> SpatialArray:
    """A SpatialArray as the pipeline hands a NIfTI input's output to the writer (``(1, X, Y, Z)`` values)."""
    info = {"sform_code": 1, "qform_code": 1, "xyz_units": "mm", "t_units": "sec", "descrip": "", "scaled": False}
    base = {"format": "nifti", "dtype": dtype, "description": "from nifti", "nifti": info}
    return SpatialArray(values, oblique_affine() if affine is None else affine, meta={**base, **meta})


def write(image: SpatialArray, tmp_path: Path, name: str = "out", **options) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    DicomAdapter.write(image, folder, **options)
    return folder


def real_world(ds: pydicom.Dataset) -> np.ndarray:
    """Stored * slope + intercept as MRtrix/GDCM compute it (signedness from PixelRepresentation), ``(rows, cols)``."""
    dtype = "<i2" if int(ds.PixelRepresentation) == 1 else "<u2"
    raw = np.frombuffer(ds.PixelData, dtype=dtype).reshape(int(ds.Rows), int(ds.Columns)).astype(np.float64)
    return raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def volume_of(folder: Path) -> tuple[np.ndarray, list[pydicom.Dataset]]:
    """``(X, Y, Z)`` real-world values in slice-index order (by position along the normal) and the headers."""
    headers = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    iop = np.array([float(v) for v in headers[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    headers.sort(key=lambda ds: float(np.array([float(v) for v in ds.ImagePositionPatient]) @ normal))
    return np.stack([real_world(ds).T for ds in headers], axis=2), headers


def sitk_image(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def background_volume(shape=(9, 8, 6), seed=0) -> np.ndarray:
    """Interpolated-looking float values (not whole numbers) in [0, 900] with a background of exact zeros."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(1.0, 900.0, size=shape) + 0.37
    values[:2] = 0.0
    return values[None].astype(np.float32)


# ----------------------------------------------------------------------------- 1: the IOD carries the geometry


def test_nifti_as_mr_is_placed_by_gdcm_and_has_every_mr_attribute(tmp_path: Path) -> None:
    image = nifti_image(background_volume())
    out = write(image, tmp_path, modality="MR", input_sha256=SHA_A)
    img = sitk_image(out)
    lps = geometry.ras_to_lps(image.affine)
    np.testing.assert_allclose(img.GetOrigin(), lps[:3, 3], atol=1e-5)  # SC: GDCM gave (0, 0, 0) and spacing 1
    np.testing.assert_allclose(img.GetSpacing(), image.spacing, atol=1e-6)
    np.testing.assert_allclose(np.array(img.GetDirection()).reshape(3, 3), geometry.direction(lps), atol=1e-6)
    assert sitk.GetArrayFromImage(img)[:, :, :2].max() == 0  # background 0 reads 0 through GDCM

    for ds in read_headers(out):
        assert ds.SOPClassUID == MRImageStorage and ds.file_meta.MediaStorageSOPClassUID == MRImageStorage
        assert ds.Modality == "MR"
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "OTHER"]
        assert (ds.ScanningSequence, ds.SequenceVariant) == ("RM", "NONE")  # Type 1: research mode, none
        for keyword in ("ScanOptions", "MRAcquisitionType", "EchoTime", "RepetitionTime", "EchoTrainLength"):
            assert keyword in ds  # Type 2: present, empty when unknown
        for keyword in ("PatientPosition", "Laterality", "PositionReferenceIndicator", "ReferringPhysicianName"):
            assert keyword in ds
        assert (int(ds.SamplesPerPixel), ds.PhotometricInterpretation, int(ds.BitsAllocated)) == (1, "MONOCHROME2", 16)
        assert "SliceThickness" in ds and "PixelSpacing" in ds and "ImageOrientationPatient" in ds


def test_nifti_as_ct_has_the_ct_image_module(tmp_path: Path) -> None:
    values = background_volume() - 1000.0  # HU-like, negative values
    out = write(nifti_image(values, dtype="int16"), tmp_path, modality="ct")
    ds = read_headers(out)[0]
    assert ds.SOPClassUID == CTImageStorage and ds.Modality == "CT"
    assert "KVP" in ds and "AcquisitionNumber" in ds
    assert ds.RescaleType == "HU"


def test_secondary_capture_keeps_image_plane_and_its_required_attributes(tmp_path: Path) -> None:
    out = write(nifti_image(background_volume()), tmp_path, cog=True, overview_levels=3)  # options of others: ignored
    for ds in read_headers(out):
        assert ds.SOPClassUID == SecondaryCaptureImageStorage and ds.Modality == "OT"
        assert ds.ConversionType == "WSD"
        assert ds.RescaleType == "US"  # Type 1C with RescaleSlope in SC (dciodvfy error before)
        assert "PatientOrientation" in ds and "Laterality" in ds
        assert "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds


@pytest.mark.parametrize("modality", ["PET", "XX"])
def test_unknown_modality_is_refused(tmp_path: Path, modality: str) -> None:
    with pytest.raises(OutputError, match="unknown DICOM modality") as info:
        write(nifti_image(background_volume()), tmp_path, modality=modality)
    assert "\n" not in str(info.value) and str(tmp_path / "out") in str(info.value)


def test_relabelling_an_mr_source_as_ct_is_refused(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")
    image = DicomAdapter.read(tmp_path / "s")
    with pytest.raises(OutputError, match="the source series is MR"):
        write(image, tmp_path, modality="CT")
    assert read_headers(write(image, tmp_path, "mr", modality="MR"))[0].SOPClassUID == MRImageStorage
    assert read_headers(write(image, tmp_path, "sc", modality="OT"))[0].SOPClassUID == SecondaryCaptureImageStorage


# ----------------------------------------------------------------------------- 2: pixel storage


def test_integer_source_writes_slope_1_intercept_0_and_background_0(tmp_path: Path) -> None:
    values = background_volume() - 300.0  # an int16 source interpolated: floats, negative values
    values[:, :2] = 0.0
    out = write(nifti_image(values, dtype="int16"), tmp_path, modality="MR")
    back, headers = volume_of(out)
    assert {(float(ds.RescaleSlope), float(ds.RescaleIntercept), int(ds.PixelRepresentation)) for ds in headers} == {
        (1.0, 0.0, 1)
    }
    np.testing.assert_array_equal(back, np.rint(values[0]))  # cast to the int16 source dtype
    assert np.all(back[:2] == 0)  # MRtrix read the background 0 as 4667 with slope 0.07 / intercept 1995
    assert np.all(sitk.GetArrayFromImage(sitk_image(out)).transpose(2, 1, 0)[:2] == 0)


def test_uint8_source_is_stored_with_slope_1(tmp_path: Path) -> None:
    values = np.clip(background_volume() / 4.0, 0, 255)  # interpolated uint8 data: fractional values
    out = write(nifti_image(values, dtype="uint8"), tmp_path)
    back, headers = volume_of(out)
    ds = headers[0]
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept), int(ds.PixelRepresentation)) == (1.0, 0.0, 0)
    assert int(ds.BitsAllocated) == 16
    np.testing.assert_array_equal(back, np.rint(values[0]))


@pytest.mark.parametrize("shift", [0.0, -450.0])
def test_float_values_map_zero_to_stored_zero(tmp_path: Path, shift: float) -> None:
    values = background_volume() + shift
    values[:, :2] = 0.0
    out = write(nifti_image(values, dtype="float32"), tmp_path)
    back, headers = volume_of(out)
    ds = headers[0]
    peak = float(np.abs(values).max())
    signed = shift < 0
    assert float(ds.RescaleIntercept) == 0.0
    assert int(ds.PixelRepresentation) == int(signed)
    assert float(ds.RescaleSlope) == pytest.approx(peak / (32767 if signed else 65535), rel=1e-12)
    assert np.all(back[:2] == 0.0)
    assert np.max(np.abs(back - values[0])) <= float(ds.RescaleSlope) / 2 * (1 + 1e-9)


def test_source_rescale_is_kept_even_for_float_output(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s", slope=0.5, intercept=-100.0, dtype="int16")
    image = DicomAdapter.read(tmp_path / "s")
    # what the pipeline hands over for --float32: the values are floats off the source's grid
    hr = image.with_array(image.array + 0.3, meta_update={"dtype": "float32"})
    back, headers = volume_of(write(hr, tmp_path))
    assert {(float(ds.RescaleSlope), float(ds.RescaleIntercept), int(ds.PixelRepresentation)) for ds in headers} == {
        (0.5, -100.0, 1)
    }
    np.testing.assert_allclose(back, np.rint((image.array[0] + 0.3 + 100.0) / 0.5) * 0.5 - 100.0)


@settings(max_examples=25, deadline=None)
@given(
    low=st.floats(-5000, 5000),
    span=st.floats(1e-3, 1e5),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from(["float32", "int16", "uint16", "int32"]),
)
def test_every_written_value_reads_back_within_half_a_step(tmp_path_factory, low, span, seed, dtype) -> None:
    rng = np.random.default_rng(seed)
    values = (low + span * rng.random((1, 4, 3, 2))).astype(np.float32)
    values[0, 0, 0, 0] = 0.0
    folder = tmp_path_factory.mktemp("h")
    DicomAdapter.write(nifti_image(values, dtype=dtype), folder)
    back, headers = volume_of(folder)
    slope, inter = float(headers[0].RescaleSlope), float(headers[0].RescaleIntercept)
    expected = values[0].astype(np.float64)
    if dtype != "float32":  # an integer dtype: the values are cast to it (rounded, clipped to its range)
        info = np.iinfo(dtype)
        expected = np.clip(np.rint(expected), info.min, info.max)
    assert back[0, 0, 0] == 0.0
    assert inter == 0.0
    if slope == 1.0:
        np.testing.assert_array_equal(back, np.rint(expected))
    else:
        assert np.max(np.abs(back - expected)) <= slope / 2 * (1 + 1e-6)


# ----------------------------------------------------------------------------- 3: DICOM -> DICOM


def test_image_type_keeps_the_source_values_3_and_4(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")  # ORIGINAL\PRIMARY\M\ND
    out = write(DicomAdapter.read(tmp_path / "s"), tmp_path)
    assert {tuple(ds.ImageType) for ds in read_headers(out)} == {("DERIVED", "SECONDARY", "M", "ND")}


def _edit_series(folder: Path, edit) -> None:
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(path)


@pytest.mark.parametrize("forward", [False, True])
@pytest.mark.parametrize("location_sign", [1, -1])
def test_numbering_and_slice_location_follow_the_source(tmp_path: Path, forward: bool, location_sign: int) -> None:
    make_synthetic_series(tmp_path / "s", shape=(6, 5, 4))  # InstanceNumber runs against the normal

    def edit(ds):
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        along = float(np.array([float(v) for v in ds.ImagePositionPatient]) @ np.cross(iop[:3], iop[3:]))
        if forward:
            ds.InstanceNumber = 5 - int(ds.InstanceNumber)
        ds.SliceLocation = f"{location_sign * along:.6f}"

    _edit_series(tmp_path / "s", edit)
    image = DicomAdapter.read(tmp_path / "s")
    hr = image.with_array(np.repeat(image.array, 2, axis=3), scale=(1, 1, 2))
    _, headers = volume_of(write(hr, tmp_path))  # slice-index order, along +normal
    numbers = [int(ds.InstanceNumber) for ds in headers]
    assert numbers == (list(range(1, 9)) if forward else list(range(8, 0, -1)))
    for ds in headers:
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        along = float(np.array([float(v) for v in ds.ImagePositionPatient]) @ np.cross(iop[:3], iop[3:]))
        assert float(ds.SliceLocation) == pytest.approx(location_sign * along, abs=1e-5)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.dcm")) == [f"IM_{n:04d}.dcm" for n in range(1, 9)]
    assert pydicom.dcmread(tmp_path / "out" / "IM_0001.dcm").InstanceNumber == 1


def test_window_and_its_explanation_are_kept(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")  # WindowCenter 500, WindowWidth 1000 on every slice
    _edit_series(tmp_path / "s", lambda ds: setattr(ds, "WindowCenterWidthExplanation", "BRAIN"))
    image = DicomAdapter.read(tmp_path / "s")
    for ds in read_headers(write(image.with_array(image.array * 0.5 + 7.25), tmp_path)):
        assert (float(ds.WindowCenter), float(ds.WindowWidth), ds.WindowCenterWidthExplanation) == (500, 1000, "BRAIN")


def test_per_slice_timing_is_dropped_and_series_timing_kept(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")

    def edit(ds):
        ds.AcquisitionTime, ds.AcquisitionDateTime, ds.TriggerTime = "101501.25", "20240102101501.25", "12.5"
        ds.SeriesTime, ds.AcquisitionDate = "101400", "20240102"
        ds.Manufacturer = "SIEMENS"
        ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x29, "FD", [0.0, 52.5, 105.0])

    _edit_series(tmp_path / "s", edit)
    for ds in read_headers(write(DicomAdapter.read(tmp_path / "s"), tmp_path)):
        for keyword in ("AcquisitionTime", "AcquisitionDateTime", "TriggerTime"):
            assert keyword not in ds
        assert not any(elem.tag.group in (0x0019, 0x0029) for elem in ds)
        assert ds.StudyTime == "101500" and ds.AcquisitionDate == "20240102"
        assert "SeriesTime" in ds and "ContentTime" in ds
        # this tool made the instances; the scanner is the contributing acquisition equipment
        assert ds.Manufacturer == "geo_med_sr"
        assert ds.ContributingEquipmentSequence[0].Manufacturer == "SIEMENS"
        assert ds.ContributingEquipmentSequence[0].PurposeOfReferenceCodeSequence[0].CodeValue == "109101"


# ----------------------------------------------------------------------------- 4: disk full


@pytest.mark.parametrize("name", ["out", ".out.partial-host-12-abc"])
def test_disk_full_is_an_output_error_naming_the_folder(tmp_path: Path, monkeypatch, name: str) -> None:
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", full)
    with pytest.raises(OutputError) as info:
        write(nifti_image(background_volume()), tmp_path, name)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "out")) and ".partial-" not in message
    assert "No space left on device" in message and "\n" not in message


# ----------------------------------------------------------------------------- 5: one slice


@pytest.mark.parametrize(
    ("drop", "spacing", "source"),
    [
        ((), 3.0, "SpacingBetweenSlices"),
        (("SpacingBetweenSlices",), 2.0, "SliceThickness"),
        (("SpacingBetweenSlices", "SliceThickness"), 1.0, "assumed"),
    ],
)
def test_single_slice_spacing_says_where_it_came_from(tmp_path: Path, drop, spacing, source) -> None:
    make_synthetic_series(tmp_path / "s", shape=(5, 4, 1), spacing=(0.7, 0.6, 3.0), slice_thickness=2.0)
    _edit_series(tmp_path / "s", lambda ds: [delattr(ds, k) for k in drop])
    image = DicomAdapter.read(tmp_path / "s")
    assert image.spacing[2] == pytest.approx(spacing)
    assert image.meta["dicom"]["slice_spacing_source"] == source
    assert image.meta["dicom"]["slice_spacing_assumed"] is True
    assert "one slice" in DicomAdapter.describe(image)["slice spacing"]


def test_a_stack_measures_its_spacing(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")
    info = DicomAdapter.read(tmp_path / "s").meta["dicom"]
    assert (info["slice_spacing_source"], info["slice_spacing_assumed"]) == ("ImagePositionPatient", False)


# ----------------------------------------------------------------------------- 6: provenance


def test_read_provenance_skips_a_first_file_that_is_not_ours(tmp_path: Path) -> None:
    out = write(nifti_image(background_volume(), provenance={"tool": "geo_med_sr", "n": 1}), tmp_path)
    make_synthetic_series(tmp_path / "other", shape=(3, 3, 1))
    foreign = next((tmp_path / "other").glob("*.dcm"))
    (out / "000_added_by_someone.dcm").write_bytes(foreign.read_bytes())
    (out / "0000_broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00")
    assert io.read_provenance(out) == {"tool": "geo_med_sr", "n": 1}


# ----------------------------------------------------------------------------- identity


def test_identity_of_a_nifti_input_comes_from_its_digest(tmp_path: Path) -> None:
    image = nifti_image(background_volume())
    a1, a2 = (read_headers(write(image, tmp_path, n, input_sha256=SHA_A))[0] for n in ("a1", "a2"))
    b = read_headers(write(image, tmp_path, "b", input_sha256=SHA_B))[0]
    assert a1.PatientID == "GMS" + SHA_A[:16].upper() != b.PatientID
    assert a1.StudyInstanceUID == a2.StudyInstanceUID != b.StudyInstanceUID  # several outputs: one study
    assert a1.FrameOfReferenceUID == a2.FrameOfReferenceUID
    assert a1.SeriesInstanceUID != a2.SeriesInstanceUID
    assert "GEOMEDSR" not in {a1.PatientID, b.PatientID}


def test_patient_overrides_and_template_identity(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "t", patient_id="PAT42")
    template = read_headers(tmp_path / "t")[0]
    image = nifti_image(background_volume())
    ds = read_headers(write(image, tmp_path, "a", template=tmp_path / "t", modality="MR"))[0]
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate"):
        assert ds.get(keyword) == template.get(keyword)
    assert ds.FrameOfReferenceUID == template.FrameOfReferenceUID  # NIfTI in scanner coordinates (sform code 1)
    assert ds.SeriesInstanceUID != template.SeriesInstanceUID

    aligned = nifti_image(background_volume())
    aligned.meta["nifti"] = {**aligned.meta["nifti"], "sform_code": 4, "qform_code": 0}  # MNI: another world
    ds = read_headers(write(aligned, tmp_path, "b", template=tmp_path / "t", patient_id="X1", patient_name="Doe^J"))[0]
    assert (ds.PatientID, str(ds.PatientName), ds.StudyInstanceUID) == ("X1", "Doe^J", template.StudyInstanceUID)
    assert ds.FrameOfReferenceUID != template.FrameOfReferenceUID
