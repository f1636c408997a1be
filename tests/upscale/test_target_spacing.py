"""upscale --target-spacing: the whole factor per axis whose output spacing is closest to the target."""

from __future__ import annotations

import numpy as np
import pytest
from cli_fixtures import run_cli
from conftest import oblique_affine, smooth_volume, write_nifti
from geotiff_fixtures import make_geotiff
from hypothesis import given
from hypothesis import strategies as st

from geo_med_sr import io
from geo_med_sr.errors import ConfigError, ScaleError
from geo_med_sr.geometry import affine_difference_in_voxels, scale_affine
from geo_med_sr.scale import MAX_FACTOR, factors_for_spacing
from geo_med_sr.upscale.pipeline import super_resolve


@pytest.mark.parametrize(
    "spacing,target,expected",
    [
        ((1.02, 1.02, 4.8), 1.0, (1, 1, 5)),  # the example: 0.96 mm beats 1.2 mm
        ((0.5, 0.5, 3.0), 1.0, (1, 1, 3)),  # finer than the target already: factor 1
        ((1.0, 1.0, 5.0), 1.0, (1, 1, 5)),
        ((0.9, 0.9, 6.0), 0.9, (1, 1, 7)),  # 0.857 beats 1.0
        ((2.0, 2.0, 3.0), 1.2, (2, 2, 3)),  # 2.0/2 = 1.0 (0.2 off) beats 2.0 (0.8); 3.0/3 = 1.0 beats 1.5
    ],
)
def test_examples(spacing, target, expected):
    assert factors_for_spacing(spacing, target) == expected


@given(
    st.lists(st.floats(0.1, 12.0), min_size=1, max_size=3),
    st.floats(0.4, 3.0),
)
def test_choice_is_the_best_whole_factor(spacing, target):
    """No other factor 1..MAX_FACTOR brings any axis closer to the target (brute-force oracle)."""
    try:
        factors = factors_for_spacing(spacing, target)
    except ScaleError:
        assert any(min(range(1, 200), key=lambda k: abs(d / k - target)) > MAX_FACTOR for d in spacing)
        return
    for d, k in zip(spacing, factors):
        best = min(abs(d / c - target) for c in range(1, MAX_FACTOR + 1))
        assert abs(d / k - target) <= best + 1e-12


@pytest.mark.parametrize("target", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_targets_are_refused(target):
    with pytest.raises(ScaleError, match="target-spacing"):
        factors_for_spacing((1.0, 1.0, 4.0), target)


def test_upscale_picks_and_records_the_factors(tmp_path, capsys):
    """An oblique 1.02 x 1.02 x 4.8 mm volume with --target-spacing 1 -> 1,1,5: the output grid is the input's
    scaled by exactly those factors, the choice is printed and in the provenance."""
    affine = oblique_affine(spacing=(1.02, 1.02, 4.8))
    src = write_nifti(tmp_path / "thick.nii.gz", smooth_volume((12, 10, 6)), affine)
    code, out, err = run_cli(
        capsys, "upscale", str(src), str(tmp_path / "sr.nii.gz"), "--target-spacing", "1", "--method", "bspline"
    )
    assert code == 0, err
    assert "target spacing 1 mm: 1.02 x 1.02 x 4.8 mm -> scale 1,1,5 (1.02 x 1.02 x 0.96 mm)" in out
    result = io.read(tmp_path / "sr.nii.gz")
    assert result.spatial_shape == (12, 10, 30)
    assert affine_difference_in_voxels(scale_affine(affine, (1, 1, 5)), result.affine) <= 1e-6
    prov = super_resolve(src, tmp_path / "b.nii.gz", target_spacing=1.0, config={"model": {"method": "bspline"}})
    assert prov.provenance["target_spacing"]["scale"] == [1, 1, 5]
    assert np.allclose(prov.provenance["target_spacing"]["output_mm"], (1.02, 1.02, 0.96))


def test_refusals(tmp_path, capsys):
    src = write_nifti(tmp_path / "v.nii.gz", smooth_volume((8, 8, 4)), oblique_affine(spacing=(1.0, 1.0, 3.0)))
    with pytest.raises(ConfigError, match="one of them"):
        super_resolve(src, tmp_path / "o.nii.gz", "1,1,3", target_spacing=1.0)
    with pytest.raises(ConfigError, match="one of them"):
        super_resolve(src, tmp_path / "o.nii.gz")
    tif, _ = make_geotiff(tmp_path / "s.tif", width=16, height=16)
    code, _, err = run_cli(capsys, "upscale", str(tif), str(tmp_path / "o.tif"), "--target-spacing", "5")
    assert code == 2 and "--target-spacing is for NIfTI/DICOM volumes" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.tif").exists()
