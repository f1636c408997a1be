"""Tests of the DICOM series adapter: geometry against the fixture and SimpleITK, refusals, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_fixtures import make_synthetic_series, read_headers
from pydicom.uid import MediaStorageDirectoryStorage, SecondaryCaptureImageStorage

from geo_med_sr import geometry
from geo_med_sr.adapters.dicom import DicomAdapter
from geo_med_sr.errors import GeometryError, InputError, OutputError
from geo_med_sr.spatial import SpatialArray

REAL_SERIES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "dicom" / "mr_t1_fl2d_sag_HFS"
FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def sitk_read(folder: Path, series_uid: str | None = None) -> tuple[np.ndarray, np.ndarray, sitk.Image]:
    """Read a series with SimpleITK; returns its RAS centre affine, the (z, y, x) array and the image."""
    reader = sitk.ImageSeriesReader()
    files = (
        reader.GetGDCMSeriesFileNames(str(folder), series_uid)
        if series_uid
        else reader.GetGDCMSeriesFileNames(str(folder))
    )
    reader.SetFileNames(files)
    img = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) * np.array(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    return FLIP @ lps, sitk.GetArrayFromImage(img), img


def by_slice_index(headers: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """Headers sorted along their slice normal (index order of a grid whose slice axis runs along +normal)."""

    def along(ds: pydicom.Dataset) -> float:
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        return float(np.array([float(v) for v in ds.ImagePositionPatient]) @ np.cross(iop[:3], iop[3:]))

    return sorted(headers, key=along)


def expected_image_type(source: pydicom.Dataset) -> list[str]:
    """DERIVED\\SECONDARY\\<source value 3 or OTHER>[\\<source value 4>] (the policy of issue 13)."""
    values = list(source.get("ImageType", []))
    return ["DERIVED", "SECONDARY", values[2] if len(values) > 2 else "OTHER", *values[3:4]]


def empty_folder(tmp_path: Path, name: str = "out") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


# ----------------------------------------------------------------------------- reading


@pytest.mark.parametrize("dtype", ["uint16", "int16"])
def test_read_oblique_series_geometry_values_and_dtype(tmp_path: Path, dtype: str) -> None:
    affine, values = make_synthetic_series(tmp_path / "s", dtype=dtype)
    image = DicomAdapter.read(tmp_path / "s")

    assert image.array.shape == (1, 12, 10, 6)
    assert image.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(image.array, values)
    np.testing.assert_allclose(image.affine, affine, atol=1e-6, rtol=0)
    np.testing.assert_allclose(image.spacing, [0.8, 0.9, 2.5], atol=1e-9)

    sitk_affine, sitk_array, _ = sitk_read(tmp_path / "s")
    np.testing.assert_allclose(image.affine, sitk_affine, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(image.array[0], sitk_array.transpose(2, 1, 0))


def test_read_meta_is_json_and_template_is_clean(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s", description="t1 oblique", slice_thickness=2.0)
    image = DicomAdapter.read(tmp_path / "s")
    meta = json.loads(json.dumps(image.meta))
    assert meta["format"] == "dicom"
    assert meta["dtype"] == "uint16"
    assert meta["rescale"] == [1.0, 0.0]
    assert meta["description"] == "t1 oblique"
    info = meta["dicom"]
    assert info["series_description"] == "t1 oblique"
    assert info["slice_thickness"] == pytest.approx(2.0)
    assert info["source_files"] == 6
    template = info["template"]
    assert "7FE00010" not in template  # pixel data
    assert not any(int(tag[:4], 16) % 2 for tag in template)  # private tags
    assert pydicom.Dataset.from_json(template).SeriesInstanceUID == info["series_uid"]


def test_read_rescaled_series_gives_float32_real_world_values(tmp_path: Path) -> None:
    _, values = make_synthetic_series(tmp_path / "s", slope=0.5, intercept=-100.0)
    image = DicomAdapter.read(tmp_path / "s")
    assert image.array.dtype == np.float32
    np.testing.assert_allclose(image.array, values, atol=1e-4)
    assert image.array.min() < 0  # the intercept was applied
    assert image.meta["dtype"] == "uint16"
    assert image.meta["rescale"] == [0.5, -100.0]


def test_read_ignores_non_dicom_files_and_dicomdir(tmp_path: Path) -> None:
    affine, values = make_synthetic_series(tmp_path / "s")
    (tmp_path / "s" / "README.txt").write_text("notes about the scan\n")
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dicomdir = pydicom.Dataset()
    dicomdir.file_meta = meta
    dicomdir.FileSetID = "TEST"
    dicomdir.save_as(tmp_path / "s" / "DICOMDIR", enforce_file_format=True)
    image = DicomAdapter.read(tmp_path / "s")
    np.testing.assert_array_equal(image.array, values)
    np.testing.assert_allclose(image.affine, affine, atol=1e-6)


def test_two_series_need_a_choice(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    uid_a, uid_b = "1.2.3.4.5.1", "1.2.3.4.5.2"
    make_synthetic_series(folder, series_uid=uid_a, description="first", seed=1)
    affine_b, values_b = make_synthetic_series(
        folder, shape=(8, 9, 4), series_uid=uid_b, description="second", seed=2, dtype="int16"
    )

    with pytest.raises(InputError) as info:
        DicomAdapter.read(folder)
    message = str(info.value)
    assert f"{uid_a} (first, 6 files)" in message
    assert f"{uid_b} (second, 4 files)" in message
    assert "--series" in message
    assert "\n" not in message

    image = DicomAdapter.read(folder, series=uid_b)
    np.testing.assert_array_equal(image.array, values_b)
    np.testing.assert_allclose(image.affine, affine_b, atol=1e-6)

    with pytest.raises(InputError) as info:
        DicomAdapter.read(folder, series="9.9.9")
    assert "9.9.9" in str(info.value) and uid_a in str(info.value) and uid_b in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"missing": (2,)}, "missing slice(s): 1 slice(s) missing (1 between"),
        ({"missing": (2, 3), "shape": (12, 10, 8)}, "2 slice(s) missing (2 between"),
        ({"slice_offsets": {3: 0.4}}, "uneven slice spacing (min 2.1, max 2.9 mm"),
        ({"slice_offsets": {3: -2.5}}, "duplicate slice position"),
        ({"tilt_deg": 5.0}, "gantry tilt / sheared stack of 5.000 degrees"),
        (
            {"slice_offsets": {k: 0.01 * k * k for k in range(12)}, "shape": (6, 5, 12), "spacing": (1, 1, 1.0)},
            "uneven slice spacing",
        ),
    ],
)
def test_irregular_stacks_are_refused(tmp_path: Path, kwargs: dict, expected: str) -> None:
    make_synthetic_series(tmp_path / "s", **kwargs)
    with pytest.raises(GeometryError) as info:
        DicomAdapter.read(tmp_path / "s")
    message = str(info.value)
    assert expected in message
    assert message.startswith(str(tmp_path / "s"))
    assert "\n" not in message


def test_missing_slice_message_says_where(tmp_path: Path) -> None:
    make_synthetic_series(
        tmp_path / "s", missing=(2,), spacing=(1.0, 1.0, 2.0), iop=(1, 0, 0, 0, 1, 0), origin=(0, 0, 10.0)
    )
    with pytest.raises(GeometryError, match=r"between 12\.000 and 16\.000 mm"):
        DicomAdapter.read(tmp_path / "s")


def test_sheared_stack_with_a_shifted_slice_is_refused(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")
    # the fixture numbers instances backwards: InstanceNumber 3 is slice k = 3, inside the stack
    path = next(p for p in (tmp_path / "s").glob("*.dcm") if int(pydicom.dcmread(p).InstanceNumber) == 3)
    ds = pydicom.dcmread(path)
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    ds.ImagePositionPatient = [
        float(v) for v in ipp + 0.3 * np.array([float(v) for v in ds.ImageOrientationPatient[:3]])
    ]
    ds.save_as(path)
    with pytest.raises(GeometryError, match="sheared stack: slices are not stacked on a straight line"):
        DicomAdapter.read(tmp_path / "s")


def test_slowly_drifting_spacing_is_refused(tmp_path: Path) -> None:
    # every step is within 1 % of the median, but the positions bend away from a regular grid
    make_synthetic_series(
        tmp_path / "s", shape=(4, 3, 40), spacing=(1.0, 1.0, 1.0), slice_offsets={k: 2.5e-4 * k * k for k in range(40)}
    )
    with pytest.raises(GeometryError, match="positions drift up to"):
        DicomAdapter.read(tmp_path / "s")


def test_single_slice_uses_spacing_between_slices(tmp_path: Path) -> None:
    affine, values = make_synthetic_series(tmp_path / "s", shape=(5, 4, 1), spacing=(0.7, 0.6, 3.0))
    image = DicomAdapter.read(tmp_path / "s")
    np.testing.assert_allclose(image.affine, affine, atol=1e-6)
    np.testing.assert_array_equal(image.array, values)


def test_mixed_orientations_are_refused(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")
    path = sorted((tmp_path / "s").glob("*.dcm"))[0]
    ds = pydicom.dcmread(path)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.save_as(path)
    with pytest.raises(GeometryError, match="ImageOrientationPatient"):
        DicomAdapter.read(tmp_path / "s")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [({"NumberOfFrames": 2}, "multi-frame"), ({"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB"}, "colour")],
)
def test_multiframe_and_colour_are_refused(tmp_path: Path, edit: dict, expected: str) -> None:
    make_synthetic_series(tmp_path / "s")
    path = sorted((tmp_path / "s").glob("*.dcm"))[0]
    ds = pydicom.dcmread(path)
    for key, value in edit.items():
        setattr(ds, key, value)
    ds.save_as(path)
    with pytest.raises(InputError, match=expected):
        DicomAdapter.read(tmp_path / "s")


def test_empty_folder_and_text_only_folder_are_refused(tmp_path: Path) -> None:
    folder = empty_folder(tmp_path, "empty")
    with pytest.raises(InputError, match="no DICOM files"):
        DicomAdapter.read(folder)
    (folder / "notes.txt").write_text("hello\n")
    with pytest.raises(InputError, match="no DICOM files"):
        DicomAdapter.read(folder)
    assert not DicomAdapter.can_read(folder)


@pytest.mark.parametrize("keep", [0.6, 0.95, 300])
def test_truncated_file_is_named(tmp_path: Path, keep: float) -> None:
    make_synthetic_series(tmp_path / "s")
    path = sorted((tmp_path / "s").glob("*.dcm"))[3]
    data = path.read_bytes()
    size = int(len(data) * keep) if keep < 1 else int(keep)
    path.write_bytes(data[:size])
    with pytest.raises(InputError) as info:
        DicomAdapter.read(tmp_path / "s")
    assert path.name in str(info.value)
    assert "\n" not in str(info.value)


def test_can_read_and_can_write(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")
    assert DicomAdapter.can_read(tmp_path / "s")
    assert not DicomAdapter.can_read(tmp_path / "missing")
    assert not DicomAdapter.can_read(sorted((tmp_path / "s").glob("*.dcm"))[0])
    assert DicomAdapter.can_write(tmp_path / "sr_series")
    assert DicomAdapter.can_write(tmp_path / "s")
    assert DicomAdapter.can_write(tmp_path / "sr_v1.2")
    for name in ("out.nii", "out.nii.gz", "out.tif", "out.tiff", "out.dcm", "out.NII.GZ"):
        assert not DicomAdapter.can_write(tmp_path / name)


def test_describe(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s", series_uid="1.2.3.9", description="desc", slice_thickness=2.0)
    lines = DicomAdapter.describe(DicomAdapter.read(tmp_path / "s"))
    assert lines["series UID"] == "1.2.3.9"
    assert lines["series description"] == "desc"
    assert lines["modality"] == "MR"
    assert lines["slices"] == 6
    assert lines["slice thickness (mm)"] == pytest.approx(2.0)


# ----------------------------------------------------------------------------- writing


def check_written_series(source_folder: Path, out: Path, image: SpatialArray, provenance: dict | None = None) -> None:
    """Geometry (SimpleITK and our reader), values and the DICOM identity rules of a written series.

    ``provenance``: the JSON-round-tripped provenance every slice must carry in its private
    block; with None the slices must hold no private element at all.
    """
    lps = geometry.ras_to_lps(image.affine)
    _, sitk_array, img = sitk_read(out)
    np.testing.assert_allclose(img.GetSpacing(), image.spacing, atol=1e-5)
    np.testing.assert_allclose(img.GetOrigin(), lps[:3, 3], atol=1e-5)
    np.testing.assert_allclose(np.array(img.GetDirection()).reshape(3, 3), geometry.direction(lps), atol=1e-5)

    back = DicomAdapter.read(out)
    assert geometry.affine_difference_in_voxels(image.affine, back.affine) < 1e-6
    np.testing.assert_array_equal(back.array, image.array)
    np.testing.assert_allclose(sitk_array.transpose(2, 1, 0), image.array[0], atol=1e-3)

    source = read_headers(source_folder)
    written = read_headers(out)
    assert len(written) == image.spatial_shape[2]
    assert len({ds.SeriesInstanceUID for ds in written}) == 1
    assert written[0].SeriesInstanceUID != source[0].SeriesInstanceUID
    sops = [ds.SOPInstanceUID for ds in written]
    assert len(set(sops)) == len(sops)
    assert not set(sops) & {ds.SOPInstanceUID for ds in source}
    for ds in written:
        assert ds.StudyInstanceUID == source[0].StudyInstanceUID
        assert ds.FrameOfReferenceUID == source[0].FrameOfReferenceUID
        assert ds.PatientID == source[0].PatientID
        assert ds.PatientName == source[0].PatientName
        assert ds.SOPClassUID == source[0].SOPClassUID
        assert list(ds.ImageType) == expected_image_type(source[0])
        assert ds.SeriesDescription == source[0].SeriesDescription + " SR"
        assert "geo_med_sr" in ds.DerivationDescription
        assert "ReferencedImageSequence" not in ds
        private = {(elem.tag.group, elem.tag.element): elem for elem in ds if elem.tag.is_private}
        if provenance is None:
            assert private == {}
        else:
            assert sorted(private) == [(0x0071, 0x0010), (0x0071, 0x1001)]
            assert private[(0x0071, 0x0010)].value == "GEO_MED_SR"
            assert private[(0x0071, 0x1001)].VR == "UT" and json.loads(private[(0x0071, 0x1001)].value) == provenance
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    # InstanceNumber runs along the normal in the source's direction (the fixture's runs backwards)
    source_rising = float(np.array([float(v) for v in source[-1].ImagePositionPatient]) @ lps[:3, 2]) > float(
        np.array([float(v) for v in source[0].ImagePositionPatient]) @ lps[:3, 2]
    )
    ordered = by_slice_index(written)
    numbers = [int(ds.InstanceNumber) for ds in ordered]
    n = len(ordered)
    assert numbers == (list(range(1, n + 1)) if source_rising or n == 1 else list(range(n, 0, -1)))
    for k, ds in enumerate(ordered):
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], (lps @ [0, 0, k, 1])[:3], atol=1e-6)
        np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [image.spacing[1], image.spacing[0]], atol=1e-9)
        assert float(ds.SpacingBetweenSlices) == pytest.approx(image.spacing[2], abs=1e-9)
        assert (int(ds.Rows), int(ds.Columns)) == (image.spatial_shape[1], image.spatial_shape[0])
        # the source's series window (real-world units) stays true: kept (issue 13); a scanner's
        # per-slice auto-windows become their median
        centers, widths = ([float(h.get(key)) for h in source] for key in ("WindowCenter", "WindowWidth"))
        assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (np.median(centers), np.median(widths))


def test_write_round_trip(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s", slice_thickness=2.0)
    image = DicomAdapter.read(tmp_path / "s")
    out = empty_folder(tmp_path)
    DicomAdapter.write(image, out)
    check_written_series(tmp_path / "s", out, image)
    for ds in read_headers(out):
        assert float(ds.SliceThickness) == pytest.approx(2.0)
        assert int(ds.SeriesNumber) == 1007


def test_write_rescaled_series_round_trips_exactly(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s", slope=0.5, intercept=-100.0, dtype="int16")
    image = DicomAdapter.read(tmp_path / "s")
    out = empty_folder(tmp_path)
    DicomAdapter.write(image, out, series_description_suffix=" x2")
    back = DicomAdapter.read(out)
    np.testing.assert_array_equal(back.array, image.array)
    ds = read_headers(out)[0]
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept), int(ds.PixelRepresentation)) == (0.5, -100.0, 1)
    assert ds.SeriesDescription == "synthetic x2"


def test_write_upscaled_grid(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s", slice_thickness=2.0)
    image = DicomAdapter.read(tmp_path / "s")
    hr = image.with_array(np.repeat(image.array, 2, axis=3), scale=(1, 1, 2))
    out = empty_folder(tmp_path)
    DicomAdapter.write(hr, out)

    _, _, img = sitk_read(out)
    np.testing.assert_allclose(img.GetSpacing(), [0.8, 0.9, 1.25], atol=1e-5)
    expected_origin = geometry.ras_to_lps(geometry.scale_affine(image.affine, (1, 1, 2)))[:3, 3]
    np.testing.assert_allclose(img.GetOrigin(), expected_origin, atol=1e-5)
    # the origin moved a quarter of an LR slice back along the slice axis
    lr_origin = geometry.ras_to_lps(image.affine)[:3, 3]
    np.testing.assert_allclose(np.linalg.norm(np.array(img.GetOrigin()) - lr_origin), 2.5 / 4, atol=1e-5)
    check_written_series(tmp_path / "s", out, hr)
    for ds in read_headers(out):
        assert float(ds.SliceThickness) == pytest.approx(1.0)


def test_write_float_values_without_template(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(-300.0, 1200.7, size=(1, 9, 7, 5)).astype(np.float32)
    affine, _ = make_synthetic_series(tmp_path / "unused", shape=(9, 7, 5))
    image = SpatialArray(values, affine, meta={"format": "nifti", "dtype": "float32", "description": "from nifti"})
    out = empty_folder(tmp_path)
    DicomAdapter.write(image, out)

    written = read_headers(out)
    slope = float(written[0].RescaleSlope)
    assert 0 < slope < 1
    back = DicomAdapter.read(out)
    assert np.max(np.abs(back.array - values)) <= slope / 2 + 1e-4
    assert geometry.affine_difference_in_voxels(image.affine, back.affine) < 1e-6
    sitk_affine, _, _ = sitk_read(out)
    np.testing.assert_allclose(sitk_affine, image.affine, atol=1e-5)
    assert len({ds.StudyInstanceUID for ds in written}) == 1
    for ds in written:
        assert ds.SOPClassUID == SecondaryCaptureImageStorage
        assert ds.Modality == "OT"
        assert ds.PatientName == "ANONYMOUS"
        assert ds.PatientID.startswith("GMS") and len(ds.PatientID) == 19  # never a shared constant
        assert ds.SeriesDescription == "from nifti SR"


def test_write_refuses_what_dicom_cannot_hold(tmp_path: Path) -> None:
    affine, values = make_synthetic_series(tmp_path / "s")
    two_channels = SpatialArray(np.concatenate([values, values]), affine)
    with pytest.raises(OutputError, match="one 3D volume"):
        DicomAdapter.write(two_channels, empty_folder(tmp_path, "a"))
    flat = SpatialArray(values[:, :, :, 0], np.eye(3))
    with pytest.raises(OutputError, match="one 3D volume"):
        DicomAdapter.write(flat, empty_folder(tmp_path, "b"))
    with pytest.raises(OutputError, match="empty folder"):
        DicomAdapter.write(SpatialArray(values, affine), tmp_path / "s")


# ----------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_series_read_and_round_trip(tmp_path: Path) -> None:
    if not REAL_SERIES.is_dir():
        pytest.skip("../shared/data/dicom not present: real-data test needs the shared sample data")
    image = DicomAdapter.read(REAL_SERIES)
    assert image.spatial_shape == (256, 256, 35)
    np.testing.assert_allclose(image.spacing, [1.015625, 1.015625, 4.8], atol=1e-4)
    assert image.meta["dicom"]["source_files"] == 35
    json.dumps(image.meta)
    sitk_affine, sitk_array, _ = sitk_read(REAL_SERIES)
    np.testing.assert_allclose(image.affine, sitk_affine, atol=1e-4)
    np.testing.assert_array_equal(image.array[0], sitk_array.transpose(2, 1, 0))

    out = empty_folder(tmp_path)
    DicomAdapter.write(image, out)
    check_written_series(REAL_SERIES, out, image)


# ----------------------------------------------------------------------------- hand-offs: provenance, references

PROVENANCE = {
    "tool": "geo_med_sr 0.1.0",
    "method": "edsr",
    "scale": (1, 1, 2),
    "normalization": {"kind": "percentile", "low": [12.5], "high": (3900.0,)},
    "request": {"input_sha256": "cd" * 32, "scale": [1, 1, 2], "series": None, "config": {"halo": 8}},
    "note": "2",
    "unicode": "Jürgen µm",
}
EXPECTED_PROVENANCE = json.loads(json.dumps(PROVENANCE))


def source_by_slice(folder: Path) -> list[pydicom.Dataset]:
    """Source headers indexed by slice position k (the fixture numbers instances n - k)."""
    headers = read_headers(folder)
    return sorted(headers, key=lambda ds: -int(ds.InstanceNumber))


def test_read_records_the_source_instances_in_slice_order(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")
    instances = DicomAdapter.read(tmp_path / "s").meta["dicom"]["source_instances"]
    source = source_by_slice(tmp_path / "s")
    assert [i["sop_instance_uid"] for i in instances] == [ds.SOPInstanceUID for ds in source]
    assert {i["sop_class_uid"] for i in instances} == {pydicom.uid.MRImageStorage}
    assert [i["position"] for i in instances] == [[float(v) for v in ds.ImagePositionPatient] for ds in source]


def test_write_stores_provenance_in_every_slice_and_reads_it_back(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s", slice_thickness=2.0)
    image = DicomAdapter.read(tmp_path / "s")
    hr = image.with_array(np.repeat(image.array, 2, axis=3), scale=(1, 1, 2), meta_update={"provenance": PROVENANCE})
    out = empty_folder(tmp_path)
    DicomAdapter.write(hr, out)
    check_written_series(tmp_path / "s", out, hr, provenance=EXPECTED_PROVENANCE)
    assert DicomAdapter.read_provenance(out) == EXPECTED_PROVENANCE


def test_written_slices_reference_their_source_slices(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")
    image = DicomAdapter.read(tmp_path / "s")
    source = source_by_slice(tmp_path / "s")
    for scale, name in ((1, "same"), (2, "x2")):
        hr = image.with_array(np.repeat(image.array, scale, axis=3), scale=(1, 1, scale))
        out = empty_folder(tmp_path, name)
        DicomAdapter.write(hr, out)
        written = by_slice_index(read_headers(out))
        assert len(written) == 6 * scale
        for k, ds in enumerate(written):
            src = source[k // scale]  # the source slice whose slab holds this slice's centre
            assert len(ds.SourceImageSequence) == 1
            item = ds.SourceImageSequence[0]
            assert (item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID) == (src.SOPClassUID, src.SOPInstanceUID)
            purpose = item.PurposeOfReferenceCodeSequence[0]
            assert (purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning) == (
                "121322",
                "DCM",
                "Source image for image processing operation",
            )
            assert len(ds.ReferencedSeriesSequence) == 1
            series = ds.ReferencedSeriesSequence[0]
            assert series.SeriesInstanceUID == src.SeriesInstanceUID != ds.SeriesInstanceUID
            assert [
                (r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID) for r in series.ReferencedInstanceSequence
            ] == [(src.SOPClassUID, src.SOPInstanceUID)]
            code = ds.DerivationCodeSequence[0]
            assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
                "113085",
                "DCM",
                "Spatial resampling",
            )
            assert (ds.StudyInstanceUID, ds.FrameOfReferenceUID, ds.PatientID) == (
                src.StudyInstanceUID,
                src.FrameOfReferenceUID,
                src.PatientID,
            )
            assert list(ds.ImageType)[0] == "DERIVED"
            assert "StudiesContainingOtherReferencedInstancesSequence" not in ds


def test_a_slice_at_the_midpoint_of_two_source_slices_references_both(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")
    image = DicomAdapter.read(tmp_path / "s")
    source = source_by_slice(tmp_path / "s")
    shifted = np.array(image.affine)
    shifted[:3, 3] += 0.5 * image.affine[:3, 2]  # half a slice along the slice axis
    out = empty_folder(tmp_path)
    DicomAdapter.write(SpatialArray(image.array[:, :, :, :5], shifted, meta=image.meta), out)
    for k, ds in enumerate(by_slice_index(read_headers(out))):
        refs = [item.ReferencedSOPInstanceUID for item in ds.SourceImageSequence]
        assert refs == [source[k].SOPInstanceUID, source[k + 1].SOPInstanceUID]
        assert [r.ReferencedSOPInstanceUID for r in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence] == refs


def test_series_without_a_dicom_source_has_no_references(tmp_path: Path) -> None:
    affine, values = make_synthetic_series(tmp_path / "unused", shape=(5, 4, 3))
    image = SpatialArray(
        values.astype(np.float32), affine, meta={"format": "nifti", "dtype": "float32", "provenance": PROVENANCE}
    )
    out = empty_folder(tmp_path)
    DicomAdapter.write(image, out)
    for ds in read_headers(out):
        assert "SourceImageSequence" not in ds and "ReferencedSeriesSequence" not in ds
    assert DicomAdapter.read_provenance(out) == EXPECTED_PROVENANCE


def test_source_references_of_the_template_are_not_copied(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")
    image = DicomAdapter.read(tmp_path / "s")
    old = pydicom.Dataset()
    old.SeriesInstanceUID = "1.2.3.4"
    image.meta["dicom"]["template"]["00081115"] = {"vr": "SQ", "Value": [old.to_json_dict()]}
    image.meta["dicom"]["source_instances"] = []
    out = empty_folder(tmp_path)
    DicomAdapter.write(image, out)
    assert all("ReferencedSeriesSequence" not in ds and "SourceImageSequence" not in ds for ds in read_headers(out))


def test_read_provenance_is_none_without_a_block_or_a_series(tmp_path: Path) -> None:
    make_synthetic_series(tmp_path / "s")
    assert DicomAdapter.read_provenance(tmp_path / "s") is None  # a source series: private tags, not ours
    assert DicomAdapter.read_provenance(empty_folder(tmp_path)) is None
    assert DicomAdapter.read_provenance(tmp_path / "missing") is None
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "readme.txt").write_text("no DICOM here")
    assert DicomAdapter.read_provenance(tmp_path / "text") is None
    ds = read_headers(tmp_path / "s")[0]
    ds.private_block(0x0071, "GEO_MED_SR", create=True).add_new(0x01, "UT", "{not json")
    (tmp_path / "bad").mkdir()
    ds.save_as(tmp_path / "bad" / "IM_0001.dcm", enforce_file_format=True)
    assert DicomAdapter.read_provenance(tmp_path / "bad") is None
