"""Slice thickness: estimated from the data on synthetic volumes of known thickness, given, or from DICOM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import oblique_affine, write_nifti
from scipy.ndimage import gaussian_filter

from geo_med_sr.degrade import SliceProfile, block_average_array
from geo_med_sr.errors import ConfigError
from geo_med_sr.slice_profile import estimate_thickness, resample_lines
from geo_med_sr.upscale.pipeline import super_resolve


def _isotropic(shape=(80, 80, 160), sigma=2.0, seed=0) -> np.ndarray:
    field = gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma, mode="wrap")
    return (field - field.min()) / np.ptp(field) * 900 + 100  # all foreground, positive


def _thick(hr: np.ndarray, step: int, thickness: float) -> np.ndarray:
    """Thick slices along z made by the project's own slice-profile model (not by the estimator's resampler)."""
    model = SliceProfile((1, 1, step), 3, thickness=thickness)
    with torch.no_grad():
        return model(torch.from_numpy(hr)[None, None].float())[0, 0].double().numpy()


def test_resample_lines_equals_the_block_average():
    lines = np.random.default_rng(1).normal(size=(5, 24))
    np.testing.assert_allclose(resample_lines(lines, 4.0, 4.0), block_average_array(lines[None], (1, 4))[0])


def test_resample_lines_fractional_box_by_hand():
    line = np.arange(10, dtype=float)  # pixel j holds j on [j, j+1)
    # box [0, 2.5): (0 + 1 + 0.5 * 2) / 2.5; the next starts at 3.5: [3.5, 6): (0.5*3 + 4 + 5) / 2.5
    np.testing.assert_allclose(resample_lines(line[None], 3.5, 2.5)[0, :2], [2.0 / 2.5, 10.5 / 2.5])


@pytest.mark.parametrize("seed", [0, 1])
def test_estimate_on_synthetic_volumes_of_known_thickness(seed):
    """Slices every 4 mm, 2 mm (gap), 4 mm (contiguous), 6 or 8 mm (overlap) thick: the estimates are in that
    order and each within 40 % (the precision measured over random fields; README), overlap within 10 %."""
    hr = _isotropic(seed=seed)
    truths = (2.0, 4.0, 6.0, 8.0)
    estimates = [estimate_thickness(_thick(hr, 4, t), 2, (1.0, 1.0, 4.0)) for t in truths]
    assert estimates == sorted(estimates), estimates
    for truth, estimate in zip(truths, estimates):
        assert abs(estimate - truth) <= (0.1 if truth > 4 else 0.4) * truth, (truth, estimates)


def test_estimate_along_another_axis_and_spacing():
    """The thick axis may be any axis, the in-plane pixels need not be 1 mm: thickness in mm either way."""
    hr = _isotropic((160, 72, 72), seed=2)
    lr = np.moveaxis(_thick(np.moveaxis(hr, 0, 2).copy(), 3, 3.0), 2, 0)  # 3 pixels thick, every 3, along axis 0
    estimate = estimate_thickness(lr, 0, (3 * 0.8, 0.8, 0.8))  # 0.8 mm pixels: 2.4 mm slices
    assert abs(estimate - 2.4) <= 0.24, estimate


def test_no_structure_or_too_small_gives_nan():
    assert np.isnan(estimate_thickness(np.zeros((16, 16, 8)), 2, (1.0, 1.0, 4.0)))
    tiny = _thick(_isotropic((16, 16, 60), seed=4), 4, 8.0)  # 16-pixel lines: too short for an 8 mm box every 4 mm
    assert np.isnan(estimate_thickness(tiny, 2, (1.0, 1.0, 4.0)))


def _volume(tmp_path, thickness=4.0):
    tmp_path.mkdir(exist_ok=True)
    lr = _thick(_isotropic((48, 40, 96), seed=3), 4, thickness).astype(np.int16)
    return write_nifti(tmp_path / "thick.nii.gz", lr, oblique_affine(spacing=(1.0, 1.0, 4.0)))


def test_pipeline_records_where_the_thickness_came_from(tmp_path):
    src = _volume(tmp_path, 6.0)
    config = {"model": {"method": "self", "steps": 2}, "inference": {"patch_size": 16}}
    estimated = super_resolve(src, tmp_path / "a.nii.gz", "1,1,4", config, progress=False).provenance
    profile = estimated["slice_profile"]
    assert profile["source"] == "estimated" and abs(profile["thickness_mm"] - 6.0) <= 0.6
    assert profile["slice_spacing_mm"] == 4.0 and profile["thickness_hr_px"] == pytest.approx(profile["thickness_mm"])
    assert profile["estimated_mm"] == profile["thickness_mm"]
    contiguous = super_resolve(_volume(tmp_path / "c", 4.0), tmp_path / "c.nii.gz", "1,1,4", config, progress=False)
    profile = contiguous.provenance["slice_profile"]
    assert profile["thickness_mm"] == 4.0 and "contiguous slices assumed" in profile["source"]
    assert abs(profile["estimated_mm"] - 4.0) <= 1.0
    given = super_resolve(src, tmp_path / "b.nii.gz", "1,1,4", config, progress=False, slice_thickness=3.0).provenance
    assert given["slice_profile"] == {
        "thickness_mm": 3.0,
        "slice_spacing_mm": 4.0,
        "source": "given (--slice-thickness)",
        "thickness_hr_px": 3.0,
    }


def test_slice_thickness_refused_where_it_means_nothing(tmp_path):
    src = _volume(tmp_path)
    with pytest.raises(ConfigError, match="applies to --method self"):
        super_resolve(src, tmp_path / "c.nii.gz", "1,1,4", {"model": {"method": "bspline"}}, slice_thickness=4.0)
    with pytest.raises(ConfigError, match="expected a finite length in mm > 0"):
        super_resolve(
            src, tmp_path / "d.nii.gz", "1,1,4", {"model": {"method": "self", "steps": 1}}, slice_thickness=-1
        )
    assert not (tmp_path / "c.nii.gz").exists() and not (tmp_path / "d.nii.gz").exists()
