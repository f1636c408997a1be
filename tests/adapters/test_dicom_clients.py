"""Real DICOM clients on our outputs (issue 13): dciodvfy, dcm2niix, GDCM (gdcminfo), DCMTK (dcmdump).

Outputs are made with the real command line (``geo-med-sr upscale IN OUT --scale 1,1,2 --method
linear``) from (a) the real MR series of the shared data, (b) a synthetic oblique MR series; and
(c) a NIfTI volume written as MR Image Storage with ``io.write(..., modality="MR")`` (the CLI flag
``--modality`` is the lead's; this test calls the writer directly until it exists). Each test
skips with the package to install when its program is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import oblique_affine, shared_path, write_nifti
from dicom_fixtures import make_synthetic_series

from geo_med_sr import geometry, io
from geo_med_sr.cli.main import main
from geo_med_sr.spatial import SpatialArray

SCALE = (1, 1, 2)
INSTALL = {
    "dciodvfy": "apt-get install dicom3tools",
    "dcm2niix": "apt-get install dcm2niix",
    "gdcminfo": "apt-get install libgdcm-tools",
    "dcmdump": "apt-get install dcmtk",
}


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} not installed ({INSTALL[program]})")
    return path


def upscale(src: Path, out: Path) -> Path:
    assert (
        main(["upscale", str(src), str(out), "--scale", ",".join(map(str, SCALE)), "--method", "linear", "--quiet"])
        == 0
    )
    return out


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, tuple[Path | None, Path, np.ndarray]]:
    """name -> (input folder or None, output folder, expected RAS centre affine of the output)."""
    root = tmp_path_factory.mktemp("clients")
    made: dict[str, tuple[Path | None, Path, np.ndarray]] = {}
    affine, _ = make_synthetic_series(root / "syn", shape=(12, 10, 6))
    made["synthetic"] = (root / "syn", upscale(root / "syn", root / "syn_sr"), geometry.scale_affine(affine, SCALE))

    values = np.zeros((14, 11, 9), np.float32)
    values[3:11, 2:9, 1:8] = np.linspace(10.5, 870.25, 8 * 7 * 7).reshape(8, 7, 7)  # background exactly 0
    nii = write_nifti(root / "in.nii.gz", values, oblique_affine())
    image = io.read(nii)
    io.write(image, root / "nii_mr", modality="MR", input_sha256="ef" * 32)
    made["nifti"] = (None, root / "nii_mr", image.affine)
    return made


@pytest.fixture(scope="module")
def real_output(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    real = shared_path("dicom", "mr_t1_fl2d_sag_HFS")
    out = upscale(real, tmp_path_factory.mktemp("real") / "sr")
    return real, out, geometry.scale_affine(io.read(real).affine, SCALE)


def cases(outputs, real_output, which: str):
    return real_output if which == "real" else outputs[which]


def dciodvfy_errors(files: list[Path]) -> set[str]:
    """Normalised "Error" lines of dciodvfy over ``files`` (numbers and values stripped)."""
    errors = set()
    for file in files:
        proc = subprocess.run([need("dciodvfy"), str(file)], capture_output=True, text=True, timeout=60)
        for line in (proc.stdout + proc.stderr).splitlines():
            if line.startswith("Error"):
                errors.add(re.sub(r"<[^<>]*=.*?>|\d+(\.\d+)?", "#", line.strip()))
    return errors


def sample(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return [files[0], files[len(files) // 2], files[-1]]


@pytest.mark.slow
@pytest.mark.parametrize("which", ["real", "synthetic", "nifti"])
def test_dciodvfy_reports_no_new_error(outputs, real_output, which) -> None:
    need("dciodvfy")
    src, out, _ = cases(outputs, real_output, which)
    ours = dciodvfy_errors(sample(out))
    theirs = dciodvfy_errors(sample(src)) if src is not None else set()
    assert ours - theirs == set(), f"dciodvfy errors on our output only: {sorted(ours - theirs)}"
    if src is None:
        assert ours == set()


def dcm2niix(folder: Path, tmp: Path) -> tuple[nib.Nifti1Image, str]:
    tmp.mkdir()
    proc = subprocess.run(
        [need("dcm2niix"), "-z", "n", "-b", "n", "-f", "out", "-o", str(tmp), str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (nii,) = sorted(tmp.glob("*.nii"))
    return nib.load(str(nii)), proc.stdout + proc.stderr


@pytest.mark.parametrize("which", ["real", "synthetic", "nifti"])
def test_dcm2niix_reads_our_grid_without_slice_timing_warnings(outputs, real_output, which, tmp_path) -> None:
    need("dcm2niix")
    _, out, expected = cases(outputs, real_output, which)
    img, log = dcm2niix(out, tmp_path / "n")
    assert not re.search(r"slice tim|bogus|multiband", log, re.IGNORECASE), log
    # compare world coordinates, not raw matrices: dcm2niix may flip/permute axes
    relation = np.linalg.inv(expected) @ img.affine
    perm = np.round(relation)
    assert (
        sorted(np.abs(perm[:3, :3]).sum(axis=0)) == [1, 1, 1] and np.abs(perm[:3, :3]).sum(axis=1).tolist() == [1] * 3
    )
    np.testing.assert_allclose(expected @ perm, img.affine, atol=1e-3)  # mm: voxel centres coincide
    shape = io.read(out).spatial_shape
    assert sorted(img.shape[:3]) == sorted(shape)


@pytest.mark.slow
def test_gdcm_reports_origin_spacing_and_intensities_of_mr_from_nifti(outputs) -> None:
    gdcminfo = need("gdcminfo")
    _, out, expected = outputs["nifti"]
    lps = geometry.ras_to_lps(expected)
    spacing = np.linalg.norm(expected[:3, :3], axis=0)
    origins = []
    for file in sorted(out.glob("*.dcm")):
        text = subprocess.run([gdcminfo, str(file)], capture_output=True, text=True, timeout=60).stdout
        origin = re.search(r"^Origin:\s*\(([^)]*)\)", text, re.MULTILINE)
        pixel = re.search(r"^Spacing:\s*\(([^)]*)\)", text, re.MULTILINE)
        assert origin and pixel, text
        origins.append([float(v) for v in origin.group(1).split(",")])
        np.testing.assert_allclose([float(v) for v in pixel.group(1).split(",")][:2], spacing[:2], atol=1e-5)
        assert re.search(
            r"^MediaStorage is 1\.2\.840\.10008\.5\.1\.4\.1\.1\.4 \[MR Image Storage\]", text, re.MULTILINE
        )
    expected_origins = [lps[:3, 3] + k * lps[:3, 2] for k in range(len(origins))]
    np.testing.assert_allclose(sorted(map(tuple, origins)), sorted(map(tuple, expected_origins)), atol=1e-4)

    import SimpleITK as sitk  # GDCM's reading of the pixels, with the rescale applied

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(out)))
    img = reader.Execute()
    np.testing.assert_allclose(img.GetOrigin(), lps[:3, 3], atol=1e-4)
    np.testing.assert_allclose(img.GetSpacing(), spacing, atol=1e-5)
    values = sitk.GetArrayFromImage(img).transpose(2, 1, 0)
    source = io.read(out).array[0]
    assert np.all(values[:3] == 0) and np.all(source[:3] == 0)  # background 0 reads 0
    np.testing.assert_allclose(values, source, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["real", "synthetic", "nifti"])
def test_dcmdump_parses_every_file(outputs, real_output, which) -> None:
    dcmdump = need("dcmdump")
    _, out, _ = cases(outputs, real_output, which)
    files = sorted(out.glob("*.dcm"))
    proc = subprocess.run([dcmdump, "-q", *map(str, files)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not re.search(r"^E: ", proc.stderr, re.MULTILINE), proc.stderr[-2000:]
    assert proc.stdout.count("# Dicom-File-Format") == len(files)


def test_nifti_source_identity_is_unique(outputs) -> None:
    import pydicom

    _, out, _ = outputs["nifti"]
    ds = pydicom.dcmread(next(out.glob("*.dcm")), stop_before_pixels=True)
    assert ds.PatientID == "GMS" + ("ef" * 8).upper()
    assert isinstance(io.read(out), SpatialArray)
