"""The guide checks: foreground, finer along the thick axis, coverage, registration, same study."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from conftest import oblique_affine, shared_path
from dicom_fixtures import make_synthetic_series

from geo_med_sr import io
from geo_med_sr.errors import ConfigError, InputError
from geo_med_sr.guidance import (
    MIN_COVERAGE,
    Registration,
    check_coverage,
    check_finer,
    check_registration,
    check_same_study,
    foreground,
    identity_registration,
)


def _ball(shape=(40, 36, 30), radius=12.0, centre=None) -> np.ndarray:
    """Bool mask of a ball in a volume of ``shape`` (voxel units)."""
    centre = np.array(shape) / 2 - 0.5 if centre is None else np.asarray(centre)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return np.linalg.norm(grid - centre, axis=-1) <= radius


def _brain(shape=(40, 36, 30)) -> tuple[np.ndarray, np.ndarray]:
    """A stripped "brain": zero background, tissue ~100-160, a dark (5) ventricle inside. Returns (values, ball)."""
    rng = np.random.default_rng(0)
    ball = _ball(shape)
    values = np.where(ball, rng.uniform(100.0, 160.0, shape), 0.0)
    values[_ball(shape, radius=4.0)] = 5.0  # dark CSF enclosed by tissue (below the threshold): filled
    return values.astype(np.float32), ball


# ----------------------------------------------------------------------------- foreground


def test_foreground_of_stripped_data_is_the_nonzero_anatomy_with_enclosed_dark_parts():
    values, ball = _brain()
    values[2, 2, 2] = 150.0  # a lone bright voxel: speckle
    mask = foreground(values)
    assert mask.dtype == bool and mask.shape == values.shape
    np.testing.assert_array_equal(mask, ball)


def test_foreground_of_unstripped_data_leaves_the_noise_out():
    values, ball = _brain()
    rng = np.random.default_rng(1)
    sigma = 4.0  # Rician background noise, as a magnitude image has
    noisy = np.hypot(values + rng.normal(0, sigma, values.shape), rng.normal(0, sigma, values.shape))
    mask = foreground(noisy)
    assert (mask & ball).sum() / ball.sum() > 0.99
    assert (mask & ~ball).sum() / ball.sum() < 0.01


def test_foreground_without_anatomy_is_empty_and_ignores_nan():
    assert not foreground(np.zeros((5, 6, 7))).any()
    assert not foreground(np.full((5, 6, 7), np.nan)).any()
    values, ball = _brain()
    values[0, 0, :] = np.nan
    np.testing.assert_array_equal(foreground(values), ball)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 5)])
def test_foreground_refuses_other_than_2d_or_3d(shape):
    with pytest.raises(InputError, match="2D or 3D"):
        foreground(np.ones(shape))


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["T1w", "T2w", "FLAIR"])
def test_foreground_of_real_stripped_brains_keeps_the_brain(name):
    path = shared_path("mri", "multicontrast", "stroke_cstar", f"{name}_brain_1mm_iso.nii.gz")
    values = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
    brain = values > 0  # skull-stripped: the brain is exactly the positive voxels
    mask = foreground(values)
    assert (mask & brain).sum() / brain.sum() > 0.93  # Otsu on the positive values keeps 21 % of the T2w
    assert (mask & ~brain).sum() / brain.sum() < 0.01


# ----------------------------------------------------------------------------- finer


def _affine(spacing, rotation=None) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = (np.eye(3) if rotation is None else rotation) @ np.diag(spacing)
    out[:3, 3] = (-80.0, -90.0, -40.0)
    return out


def _about_x(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def test_check_finer_accepts_an_isotropic_guide_and_a_guide_thick_across_the_thick_axis():
    target = _affine((1.0, 1.0, 4.0))
    check_finer(target, 2, _affine((1.0, 1.0, 1.0)))
    check_finer(target, 2, _affine((3.0, 1.0, 1.0)))  # sagittal 3 mm slices: 1 mm along the target's z
    check_finer(target, 2, _affine((1.0, 1.0, 3.0), _about_x(45.0)))  # 45 deg oblique: 0.71 + 2.12 = 2.83 mm


def test_check_finer_refuses_a_guide_as_thick_as_the_target():
    with pytest.raises(InputError, match=r"extends 4\.00 mm .* 4\.00 mm apart"):
        check_finer(_affine((1.0, 1.0, 4.0)), 2, _affine((1.0, 1.0, 4.0)))


def test_check_finer_refuses_an_oblique_guide_whose_voxels_reach_across_the_slice():
    # 45 deg about x: a voxel of (1, 2, 4) mm projects to 2 * 0.707 + 4 * 0.707 = 4.24 mm along the target's z
    with pytest.raises(InputError, match=r"extends 4\.24 mm .* 4\.00 mm apart"):
        check_finer(_affine((1.0, 1.0, 4.0)), 2, _affine((1.0, 2.0, 4.0), _about_x(45.0)))


def test_check_finer_follows_an_oblique_target_thick_axis():
    target = oblique_affine(spacing=(0.9, 1.1, 5.0))
    check_finer(target, 2, oblique_affine(spacing=(1.0, 1.0, 4.5)))  # same axes: 4.5 < 5
    with pytest.raises(InputError, match="thick axis 2"):
        check_finer(target, 2, oblique_affine(spacing=(1.0, 1.0, 5.5)))


def test_check_finer_refuses_an_axis_the_target_lacks():
    with pytest.raises(ConfigError, match="thick axis 3"):
        check_finer(np.eye(4), 3, np.eye(4))


# ----------------------------------------------------------------------------- coverage


def test_check_coverage_names_the_percentage():
    check_coverage(0.95)
    check_coverage(MIN_COVERAGE)
    with pytest.raises(InputError, match=r"covers only 63\.2 % of the target's anatomy \(at least 90 % needed\)"):
        check_coverage(0.632)
    with pytest.raises(InputError):
        check_coverage(float("nan"))


def test_check_coverage_refuses_a_bad_minimum():
    with pytest.raises(ConfigError, match="minimum coverage"):
        check_coverage(0.9, minimum=1.5)


# ----------------------------------------------------------------------------- registration


def _registration(**changes) -> Registration:
    fields = {
        "matrix": np.eye(4),
        "metric": -0.78,
        "metric_start": -0.52,
        "iterations": 45,
        "stop": "Step too small after 14 iterations.",
        "converged": True,
        "overlap": 1.0,
    }
    fields.update(changes)
    return Registration(**fields)


def test_check_registration_accepts_a_converged_one_and_the_identity():
    check_registration(_registration())
    check_registration(identity_registration())


def test_check_registration_refuses_one_that_did_not_converge():
    stop = "RegularStepGradientDescentOptimizerv4: Maximum number of iterations (3) exceeded."
    with pytest.raises(InputError, match=r"did not converge after 9 iterations .*Maximum number of iterations") as err:
        check_registration(_registration(converged=False, stop=stop, iterations=9))
    assert "metric -0.7800" in str(err.value) and "\n" not in str(err.value)


def test_check_registration_refuses_a_matrix_that_is_not_finite_and_a_small_overlap():
    matrix = np.eye(4)
    matrix[0, 3] = np.nan
    with pytest.raises(InputError, match="not finite"):
        check_registration(_registration(matrix=matrix))
    with pytest.raises(InputError, match=r"covers only 31\.0 %"):
        check_registration(_registration(overlap=0.31))


def test_registration_measures_and_records_itself():
    angle = np.deg2rad(3.0)
    matrix = np.eye(4)
    matrix[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    matrix[:3, 3] = (1.0, 2.0, 2.0)
    reg = _registration(matrix=matrix)
    assert reg.rotation_deg() == pytest.approx(3.0)
    assert reg.translation_mm((0.0, 0.0, 0.0)) == pytest.approx(3.0)
    record = json.loads(json.dumps(reg.provenance()))
    assert record["rotation_deg"] == pytest.approx(3.0) and record["translation_mm"] == pytest.approx(3.0)
    assert record["converged"] is True and np.allclose(record["matrix"], matrix, atol=1e-6)
    assert not reg.matrix.flags.writeable
    assert identity_registration().provenance()["rotation_deg"] == 0.0


# ----------------------------------------------------------------------------- same study


def _dicom_meta(patient: str, study: str) -> dict:
    """The part of a DICOM series' meta that check_same_study reads (see the real one below)."""
    template = {"00100020": {"vr": "LO", "Value": [patient]}, "0020000D": {"vr": "UI", "Value": [study]}}
    return {"format": "dicom", "dicom": {"template": template}}


def test_check_same_study_reads_the_tags_a_real_dicom_series_keeps(tmp_path):
    make_synthetic_series(tmp_path / "t2", patient_id="P1", study_uid="1.2.826.0.1.1")
    make_synthetic_series(tmp_path / "t1", patient_id="P2", study_uid="1.2.826.0.1.2")
    target, guide = io.open_source(tmp_path / "t2").meta, io.open_source(tmp_path / "t1").meta
    with pytest.raises(InputError, match=r"PatientID 'P1' \(target\) vs 'P2' \(guide\).*--allow-other-study"):
        check_same_study(target, guide, allow=False)
    assert check_same_study(target, guide, allow=True) == ["PatientID", "StudyInstanceUID"]
    assert check_same_study(target, io.open_source(tmp_path / "t2").meta, allow=False) == []


def test_check_same_study_names_only_the_differing_tag():
    with pytest.raises(InputError, match=r"StudyInstanceUID '1\.2\.3' \(target\) vs '1\.2\.4' \(guide\)") as err:
        check_same_study(_dicom_meta("P1", "1.2.3"), _dicom_meta("P1", "1.2.4"), allow=False)
    assert "PatientID" not in str(err.value)
    assert check_same_study(_dicom_meta("P1", "1.2.3"), _dicom_meta("P1", "1.2.4"), allow=True) == ["StudyInstanceUID"]
    assert check_same_study(_dicom_meta("P1", "1.2.3"), _dicom_meta("P1", "1.2.3"), allow=False) == []


def test_check_same_study_ignores_non_dicom_inputs_and_empty_tags():
    assert check_same_study({"format": "nifti"}, _dicom_meta("P1", "1.2.3"), allow=False) == []
    assert check_same_study(_dicom_meta("P1", "1.2.3"), {}, allow=False) == []
    assert check_same_study(_dicom_meta("", "1.2.3"), _dicom_meta("P2", "1.2.3"), allow=False) == []
