"""DICOM through the whole tool: geometry oracle (DICOM in -> DICOM out, DICOM -> NIfTI), errors."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from cli_fixtures import assert_clean_failure, run_cli
from conftest import shared_path, smooth_volume
from dicom_fixtures import make_synthetic_series, read_headers

from geo_med_sr import geometry, io
from geo_med_sr.degrade import block_average
from geo_med_sr.upscale.config import SRConfig
from geo_med_sr.upscale.pipeline import super_resolve


def sitk_geometry_ras(folder) -> tuple[np.ndarray, tuple[int, ...]]:
    """Affine (centre-anchored, RAS) and size of a DICOM series as SimpleITK reads it."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    img = reader.Execute()
    direction = np.array(img.GetDirection()).reshape(3, 3)
    lps = geometry.compose_affine(direction, img.GetSpacing(), img.GetOrigin())
    return geometry.lps_to_ras(lps), img.GetSize()


def _lr_series(tmp_path, hr_shape, scale):
    """An HR synthetic series, its block average written as an LR DICOM series."""
    values = smooth_volume(hr_shape, dtype=np.uint16)
    hr_affine, _ = make_synthetic_series(tmp_path / "hr", shape=hr_shape, spacing=(0.7, 0.9, 1.6), values=values)
    hr = io.read(tmp_path / "hr")
    np.testing.assert_allclose(hr.affine, hr_affine, atol=1e-6)
    lr = block_average(hr, scale)
    io.write(lr, tmp_path / "lr")
    return hr, tmp_path / "lr"


@pytest.mark.parametrize("scale", [(2, 2, 2), (3, 3, 3), (1, 1, 4)])
@pytest.mark.parametrize("lr_shape", [(5, 4, 3), (6, 5, 2)])
@pytest.mark.parametrize("method", ["nearest", "bspline"])
def test_dicom_in_dicom_out_returns_the_original_grid(tmp_path, scale, lr_shape, method):
    hr_shape = tuple(n * s for n, s in zip(lr_shape, scale))
    hr, lr_folder = _lr_series(tmp_path, hr_shape, scale)
    config = SRConfig().updated(model={"method": method})
    super_resolve(lr_folder, tmp_path / "sr", ",".join(map(str, scale)), config, progress=False)

    affine, size = sitk_geometry_ras(tmp_path / "sr")
    assert size == hr_shape
    assert geometry.affine_difference_in_voxels(hr.affine, affine) <= 1e-5  # DS strings keep ~1e-6 mm
    ours = io.read(tmp_path / "sr")
    assert ours.spatial_shape == hr_shape
    assert geometry.affine_difference_in_voxels(hr.affine, ours.affine) <= 1e-5

    lr_headers, sr_headers = read_headers(lr_folder), read_headers(tmp_path / "sr")
    assert len(sr_headers) == hr_shape[2]
    assert len({h.SeriesInstanceUID for h in sr_headers}) == 1
    assert sr_headers[0].SeriesInstanceUID != lr_headers[0].SeriesInstanceUID
    assert not {h.SOPInstanceUID for h in sr_headers} & {h.SOPInstanceUID for h in lr_headers}
    assert len({h.SOPInstanceUID for h in sr_headers}) == len(sr_headers)
    assert {h.StudyInstanceUID for h in sr_headers} == {lr_headers[0].StudyInstanceUID}
    assert {h.PatientID for h in sr_headers} == {lr_headers[0].PatientID}
    # DERIVED\\SECONDARY + the source's values 3 and 4 (issue 13: dciodvfy needs value 3 for MR)
    assert all(list(h.ImageType) == ["DERIVED", "SECONDARY", *list(lr_headers[0].ImageType)[2:4]] for h in sr_headers)
    assert all(h.SeriesDescription.endswith(" SR") for h in sr_headers)


def test_dicom_in_nifti_out(tmp_path):
    hr, lr_folder = _lr_series(tmp_path, (8, 6, 8), (2, 2, 2))
    result = super_resolve(
        lr_folder, tmp_path / "sr.nii.gz", 2, SRConfig().updated(model={"method": "linear"}), progress=False
    )
    out = io.read(result.output)
    assert out.spatial_shape == (8, 6, 8)
    assert geometry.affine_difference_in_voxels(hr.affine, out.affine) <= 1e-6
    assert out.meta["dtype"] == "uint16"


@pytest.mark.slow
def test_real_series_round_trip_through_block_average(tmp_path):
    real = shared_path("dicom", "mr_t1_fl2d_sag_HFS")
    image = io.read(real)
    assert image.spatial_shape == (256, 256, 35)
    lr = block_average(image, (2, 2, 1))
    io.write(lr, tmp_path / "lr")
    super_resolve(
        tmp_path / "lr", tmp_path / "sr", "2,2,1", SRConfig().updated(model={"method": "bspline"}), progress=False
    )
    affine, size = sitk_geometry_ras(tmp_path / "sr")
    ref_affine, _ = sitk_geometry_ras(real)
    assert size == (256, 256, 35)
    assert geometry.affine_difference_in_voxels(ref_affine, affine) <= 1e-5
    headers = read_headers(tmp_path / "sr")
    source = pydicom.dcmread(next(real.iterdir()), stop_before_pixels=True)
    assert {h.StudyInstanceUID for h in headers} == {source.StudyInstanceUID}
    assert headers[0].SeriesInstanceUID != source.SeriesInstanceUID
    assert list(headers[0].ImageType) == ["DERIVED", "SECONDARY", *list(source.ImageType)[2:4]]
    assert float(headers[0].SpacingBetweenSlices) == pytest.approx(4.8, abs=1e-4)
    assert [float(v) for v in headers[0].PixelSpacing] == pytest.approx([1.015625, 1.015625], abs=1e-6)


def test_two_series_without_series_option(tmp_path, capsys):
    folder = tmp_path / "mixed"
    make_synthetic_series(folder, description="first", series_uid="1.2.826.0.1.3680043.8.498.1")
    make_synthetic_series(folder, description="second", series_uid="1.2.826.0.1.3680043.8.498.2", seed=3)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "upscale", folder, out, "--scale", "2", "--method", "linear")
    assert_clean_failure(code, err, folder, out, "--series")
    assert "1.2.826.0.1.3680043.8.498.1" in err and "1.2.826.0.1.3680043.8.498.2" in err and "second" in err
    code, _, _ = run_cli(
        capsys,
        "upscale",
        folder,
        out,
        "--scale",
        "2",
        "--method",
        "linear",
        "--series",
        "1.2.826.0.1.3680043.8.498.2",
        "--quiet",
    )
    assert code == 0 and io.read(out).spatial_shape == (24, 20, 12)


def test_series_with_a_missing_slice(tmp_path, capsys):
    folder = tmp_path / "gappy"
    make_synthetic_series(folder, shape=(8, 8, 6), missing=(3,))
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli(capsys, "upscale", folder, out, "--scale", "2", "--method", "linear")
    assert_clean_failure(code, err, folder, out, "missing")


def test_info_on_a_dicom_series(tmp_path, capsys):
    make_synthetic_series(tmp_path / "s", shape=(8, 7, 5), description="knee")
    code, out, _ = run_cli(capsys, "info", tmp_path / "s")
    assert code == 0
    for word in ("dicom", "(8, 7, 5)", "orientation", "knee", "uint16"):
        assert word in out
