"""Guided MRI through ``super_resolve`` / ``upscale`` / ``evaluate`` (issue 27): grids, refusals, DICOM, files.

A small synthetic subject: a smooth 1 mm volume ("T2w") on an oblique grid, made 4 mm thick along one
axis by block average, and its contrast-inverted copy ("T1w") as the guide, stored in another
orientation (the same world voxels, re-indexed: no interpolation).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from cli_fixtures import run_cli
from conftest import oblique_affine, write_nifti
from dicom_fixtures import make_synthetic_series

from geo_med_sr import io, super_resolve
from geo_med_sr.errors import ConfigError, InputError
from geo_med_sr.geometry import scale_affine
from geo_med_sr.upscale.evaluate import evaluate

SHAPE = (24, 24, 24)
FACTOR = 4
STEPS = {"model": {"steps": 10}}


def phantom(shape=SHAPE, seed: int = 0) -> np.ndarray:
    """A smooth positive volume with edges (blobs of different intensities), float32."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    out = np.zeros(shape)
    for _ in range(12):
        centre = rng.uniform(3, np.array(shape) - 3)
        radius = rng.uniform(2.0, 6.0)
        out += rng.uniform(20, 80) * (np.linalg.norm(grid - centre[:, None, None, None], axis=0) < radius)
    return (out + 30.0).astype(np.float32)


def thick(values: np.ndarray, axis: int = 2) -> np.ndarray:
    shape = list(values.shape)
    shape[axis : axis + 1] = [shape[axis] // FACTOR, FACTOR]
    return values.reshape(shape).mean(axis=axis + 1).astype(np.float32)


def thick_affine(affine: np.ndarray, axis: int = 2) -> np.ndarray:
    out = affine.copy()
    out[:3, axis] *= FACTOR
    out[:3, 3] += affine[:3, axis] * (FACTOR - 1) / 2
    return out


@pytest.fixture
def subject(tmp_path):
    """``(target.nii.gz, guide.nii.gz, target affine)``: the guide re-oriented (another index order and sign)."""
    hr = phantom()
    affine = oblique_affine(spacing=(1.0, 1.0, 1.0))
    target = write_nifti(tmp_path / "t2_thick.nii.gz", thick(hr), thick_affine(affine))
    guide_img = nib.Nifti1Image((250.0 - hr).astype(np.float32), affine)
    reoriented = guide_img.as_reoriented(np.array([[2, -1], [0, 1], [1, -1]]))
    guide = write_nifti(tmp_path / "t1.nii.gz", np.asarray(reoriented.dataobj), reoriented.affine)
    return target, guide, thick_affine(affine)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_output_grid_is_the_target_grid_times_the_scale_with_a_guide_in_another_orientation(subject, tmp_path):
    target, guide, lr_affine = subject
    before = sha(guide)
    result = super_resolve(target, tmp_path / "out.nii.gz", "1,1,4", STEPS, guide=guide, guide_registered=True)
    out = io.read(result.output)
    assert out.spatial_shape == SHAPE
    # the target grid as stored (float32 in NIfTI) times the scale: voxel centres to 1e-5 mm (float32 at 40 mm)
    np.testing.assert_allclose(out.affine, scale_affine(io.read(target).affine, (1, 1, FACTOR)), rtol=0, atol=1e-5)
    np.testing.assert_allclose(io.read(target).affine, lr_affine, rtol=0, atol=1e-5)
    prov = result.provenance
    assert prov["method"] == "self" and prov["guided"] is True
    assert prov["consistency"]["degradation"] == "slice" and prov["consistency"]["iterations"] == 5
    assert prov["guide"]["anatomy_covered"] == 1.0 and prov["guide"]["output_without_guide_share"] == 0.0
    assert prov["request"]["guide"]["registered"] is True
    assert sha(guide) == before  # the guide is never written


def test_guided_self_is_reproducible_bit_for_bit(subject, tmp_path):
    target, guide, _ = subject
    a = super_resolve(target, tmp_path / "a.nii.gz", "1,1,4", STEPS, guide=guide, guide_registered=True)
    b = super_resolve(target, tmp_path / "b.nii.gz", "1,1,4", STEPS, guide=guide, guide_registered=True)
    np.testing.assert_array_equal(io.read(a.output).array, io.read(b.output).array)


def test_the_guide_changes_the_result_and_classical_methods_ignore_it(subject, tmp_path):
    target, guide, _ = subject
    guided = super_resolve(target, tmp_path / "g.nii.gz", "1,1,4", STEPS, guide=guide, guide_registered=True)
    single = super_resolve(target, tmp_path / "s.nii.gz", "1,1,4", {"model": {"method": "self", "steps": 10}})
    assert not np.array_equal(io.read(guided.output).array, io.read(single.output).array)
    classical = super_resolve(target, tmp_path / "c.nii.gz", "1,1,4", {"model": {"method": "bspline"}}, guide=guide)
    assert classical.provenance["guide"]["used"] is False
    plain = super_resolve(target, tmp_path / "p.nii.gz", "1,1,4", {"model": {"method": "bspline"}})
    np.testing.assert_array_equal(io.read(classical.output).array, io.read(plain.output).array)


def test_where_the_guide_does_not_reach_the_provenance_says_how_much(subject, tmp_path):
    target, _, lr_affine = subject
    hr = phantom()
    affine = scale_affine(lr_affine, (1, 1, FACTOR))
    part = write_nifti(tmp_path / "t1_part.nii.gz", (250.0 - hr[:, :, 2:]).astype(np.float32), affine @ _shift(2))
    result = super_resolve(target, tmp_path / "out.nii.gz", "1,1,4", STEPS, guide=part, guide_registered=True)
    guide = result.provenance["guide"]
    assert 0.9 <= guide["anatomy_covered"] <= 1.0  # the two slices it misses hold little of the phantom's anatomy
    assert guide["output_without_guide_share"] == pytest.approx(2 / 24, abs=1e-6)
    assert guide["output_without_guide_box"] == [[0, 24], [0, 24], [0, 2]]


def _shift(k: int) -> np.ndarray:
    """Index translation by ``k`` voxels along the third axis."""
    out = np.eye(4)
    out[2, 3] = k
    return out


def test_a_guide_that_misses_much_of_the_anatomy_is_refused_before_training(subject, tmp_path):
    target, _, lr_affine = subject
    affine = scale_affine(lr_affine, (1, 1, FACTOR))
    half = write_nifti(
        tmp_path / "t1_half.nii.gz", (250.0 - phantom()[:, :, 12:]).astype(np.float32), affine @ _shift(12)
    )
    with pytest.raises(InputError, match=r"^[^:]*t1_half.nii.gz: the guide covers only \d+\.\d %"):
        super_resolve(target, tmp_path / "out.nii.gz", "1,1,4", STEPS, guide=half, guide_registered=True)
    assert not (tmp_path / "out.nii.gz").exists()


def test_a_guide_not_finer_than_the_target_along_the_thick_axis_is_refused(subject, tmp_path):
    target, _, lr_affine = subject
    coarse = write_nifti(tmp_path / "t1_thick.nii.gz", thick(250.0 - phantom()), lr_affine)
    with pytest.raises(InputError, match="mm"):
        super_resolve(target, tmp_path / "out.nii.gz", "1,1,4", STEPS, guide=coarse, guide_registered=True)


@pytest.mark.parametrize(
    ("scale", "config", "kwargs", "error", "match"),
    [
        ("2", STEPS, {}, ConfigError, "one thick axis"),
        ("1,1,4", STEPS, {"guide": "no_such_guide.nii.gz"}, InputError, "does not exist"),
        ("1,1,4", {"model": {"method": "self", "budget": 5}}, {}, ConfigError, "--budget"),
    ],
)
def test_guided_requests_that_cannot_run_are_refused_in_one_line(
    subject, tmp_path, scale, config, kwargs, error, match
):
    target, guide, _ = subject
    kwargs = {"guide": guide, **kwargs}
    if kwargs["guide"] == "no_such_guide.nii.gz":
        kwargs["guide"] = tmp_path / "no_such_guide.nii.gz"
    with pytest.raises(error, match=match) as info:
        super_resolve(target, tmp_path / "out.nii.gz", scale, config, guide_registered=True, **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out.nii.gz").exists()


def test_cli_refuses_method_model_with_a_guide_and_guide_options_without_one(subject, tmp_path, capsys):
    target, guide, _ = subject
    out = tmp_path / "out.nii.gz"
    code, _, err = run_cli(
        capsys, "upscale", str(target), str(out), "--scale", "1,1,4", "--method", "model", "--guide", str(guide)
    )
    assert code == 2 and "--method model does not use a guide" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "upscale", str(target), str(out), "--scale", "1,1,4", "--guide-registered")
    assert code == 2 and "apply to --guide" in err
    assert not out.exists()


def test_the_guide_is_never_the_output(subject, tmp_path):
    target, guide, _ = subject
    with pytest.raises(Exception, match="input"):
        super_resolve(target, guide, "1,1,4", STEPS, guide=guide, guide_registered=True, overwrite=True)


def test_evaluate_restores_the_self_rows_with_the_guide(subject, tmp_path):
    _, guide, _ = subject
    hr = phantom()
    reference = write_nifti(tmp_path / "t2.nii.gz", hr, oblique_affine(spacing=(1.0, 1.0, 1.0)))
    config = {"model": {"steps": 10}}
    from geo_med_sr.upscale.config import as_config

    result = evaluate(
        reference, "1,1,4", ["bspline", "self"], config=as_config(config), guide=guide, guide_registered=True
    )
    names = [m["method"] for m in result["methods"]]
    assert names == ["bspline", "self+guide"]


def _dicom_pair(tmp_path, patient_guide: str = "SYN001", study_guide: str | None = None):
    """A thick DICOM target and a finer DICOM guide of one study (or another study/patient)."""
    hr = phantom((24, 24, 24))
    study = "1.2.826.0.1.3680043.8.498.1"
    target_dir, guide_dir = tmp_path / "t2_dicom", tmp_path / "t1_dicom"
    target_affine, _ = make_synthetic_series(
        target_dir,
        shape=(24, 24, 6),
        spacing=(1.0, 1.0, 4.0),
        values=thick(hr).round().astype("uint16"),
        study_uid=study,
        description="T2 thick",
    )
    make_synthetic_series(
        guide_dir,
        shape=(24, 24, 24),
        spacing=(1.0, 1.0, 1.0),
        origin=(-30.5, 20.25, 15.0 - 1.5),
        values=(250.0 - hr).round().astype("uint16"),
        study_uid=study_guide or study,
        patient_id=patient_guide,
        description="T1 3D",
    )
    return target_dir, guide_dir, target_affine


def test_dicom_target_and_dicom_guide_end_to_end_read_back_by_dcm2niix(tmp_path):
    target_dir, guide_dir, target_affine = _dicom_pair(tmp_path)
    out = tmp_path / "out_dicom"
    result = super_resolve(target_dir, out, "1,1,4", STEPS, guide=guide_dir, guide_registered=True)
    expected = scale_affine(target_affine, (1, 1, FACTOR))
    np.testing.assert_allclose(io.read(out).affine, expected, atol=1e-4)
    assert result.provenance["guide"]["other_study_tags"] == []
    dcm2niix = shutil.which("dcm2niix")
    if dcm2niix is None:
        pytest.skip("dcm2niix not installed (apt-get install dcm2niix)")
    (tmp_path / "n").mkdir()
    subprocess.run(
        [dcm2niix, "-z", "n", "-b", "n", "-f", "out", "-o", str(tmp_path / "n"), str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (nii,) = sorted((tmp_path / "n").glob("*.nii"))
    img = nib.load(str(nii))
    perm = np.round(np.linalg.inv(expected) @ img.affine)  # dcm2niix may flip/permute axes: the same voxel centres
    np.testing.assert_allclose(expected @ perm, img.affine, atol=1e-3)


def test_a_dicom_guide_of_another_patient_is_refused_naming_the_tags(tmp_path):
    target_dir, guide_dir, _ = _dicom_pair(tmp_path, patient_guide="OTHER01", study_guide="1.2.826.0.1.3680043.8.498.2")
    with pytest.raises(InputError, match="PatientID.*--allow-other-study|StudyInstanceUID.*--allow-other-study"):
        super_resolve(target_dir, tmp_path / "out.nii.gz", "1,1,4", STEPS, guide=guide_dir, guide_registered=True)
    result = super_resolve(
        target_dir,
        tmp_path / "out.nii.gz",
        "1,1,4",
        STEPS,
        guide=guide_dir,
        guide_registered=True,
        allow_other_study=True,
    )
    assert set(result.provenance["guide"]["other_study_tags"]) == {"PatientID", "StudyInstanceUID"}


def test_guide_channels_read_by_window_equal_the_whole_grid():
    """The output-grid guide is read window by window (raw values + mask, channels computed per read):
    every window equals the whole grid's channels cropped, bit for bit, and 0 outside the guide."""
    from geo_med_sr.inference.arrays import read_reflected
    from geo_med_sr.inference.protocols import Window
    from geo_med_sr.normalize import build_normalizer
    from geo_med_sr.upscale.guided import GuideChannels

    rng = np.random.default_rng(3)
    values = rng.uniform(0, 500, size=(9, 7, 40)).astype(np.float32)
    inside = rng.random(values.shape) > 0.2
    normalizer = build_normalizer("percentile")
    stats = normalizer.fit(values[None], inside)
    channels = GuideChannels(values, inside, normalizer, stats)
    whole = channels.whole()
    assert channels.shape == whole.shape == (2, 9, 7, 40) and whole.dtype == np.float32
    assert np.all(whole[0][~inside] == 0) and np.array_equal(whole[1], inside)
    for box in [((0, 9), (0, 7), (0, 40)), ((2, 5), (1, 7), (13, 31)), ((-2, 4), (5, 9), (30, 44))]:
        window = Window(box)
        expected = np.pad(whole, [(0, 0)] + [(4, 4)] * 3, mode="reflect")[
            (slice(None), *(slice(a + 4, b + 4) for a, b in box))
        ]
        np.testing.assert_array_equal(read_reflected(channels, window), expected)
