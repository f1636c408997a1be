"""Degradation models keep the geometry: no shift, exact LR affine, block average exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import oblique_affine

from geo_med_sr.degrade import BlockAverage, GaussianPSF, SliceProfile, block_average_array, build_degradation
from geo_med_sr.errors import ConfigError
from geo_med_sr.geometry import scale_affine
from geo_med_sr.spatial import SpatialArray

ALL = [
    ("blockavg", {}, (2, 3)),
    ("gaussian", {}, (2, 3)),
    ("gaussian", {"sigma": 1.3}, (4, 1)),
    ("slice", {"thickness": 3.0}, (1, 4)),
    ("slice", {"thickness": 6.0, "shape": "gaussian"}, (1, 4)),
]


def test_block_average_matches_the_exact_numpy_version():
    x = np.random.default_rng(0).normal(size=(2, 13, 10, 9)).astype(np.float32)
    out = BlockAverage((2, 3, 4), 3)(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(out, block_average_array(x, (2, 3, 4)), atol=1e-5)


@pytest.mark.parametrize("name,params,scale", ALL)
def test_no_subpixel_shift(name, params, scale):
    """A ramp stays a ramp through the same LR centres: LR value i == ramp at block centre."""
    n = 48
    cols, rows = np.meshgrid(np.arange(n, dtype=np.float64), np.arange(n, dtype=np.float64), indexing="ij")
    ramp = (0.7 * cols + 0.3 * rows)[None, None].astype(np.float32)
    lr = build_degradation(name, scale, 2, **params)(torch.from_numpy(ramp))[0, 0].numpy()
    i, j = np.meshgrid(np.arange(n // scale[0]), np.arange(n // scale[1]), indexing="ij")
    centre = 0.7 * (i * scale[0] + (scale[0] - 1) / 2) + 0.3 * (j * scale[1] + (scale[1] - 1) / 2)
    interior = (slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(lr[interior], centre[interior], atol=1e-3)


@pytest.mark.parametrize("name,params,scale", ALL)
def test_apply_gives_the_exact_lr_affine_and_preserves_the_mean(name, params, scale):
    affine = oblique_affine()[[0, 1, 3]][:, [0, 1, 3]]
    x = np.random.default_rng(1).uniform(0, 1, size=(1, 24, 24)).astype(np.float32)
    lr = build_degradation(name, scale, 2, **params).apply(SpatialArray(x, affine))
    np.testing.assert_allclose(lr.affine, scale_affine(affine, [1 / s for s in scale]))
    assert lr.spatial_shape == (24 // scale[0], 24 // scale[1])
    assert lr.array.mean() == pytest.approx(x.mean(), abs=0.02)


def test_slice_profile_with_a_gap_and_validation():
    prof = SliceProfile((1, 1, 5), 3, thickness=4.0)  # 4 mm slices every 5 mm: 1 mm gap
    w = prof.weights[2]
    assert len(w) == 5 and w[0] == w[-1] == pytest.approx(0.125) and w.sum() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="one axis"):
        SliceProfile((2, 1, 4), 3)
    with pytest.raises(ConfigError, match="did you mean"):
        build_degradation("gausian", 2, 2)


def test_gaussian_psf_blurs_more_than_block_average():
    x = torch.zeros(1, 1, 32, 32)
    x[..., 16, 16] = 1.0
    block, gauss = BlockAverage(2, 2)(x), GaussianPSF(2, 2)(x)
    assert float(gauss.max()) < float(block.max())
    assert float(gauss.sum()) * 4 == pytest.approx(1.0, abs=1e-5)  # LR = weighted means: sum scales by 1/s^2
    assert GaussianPSF(2, 2).receptive_radius >= 1 and BlockAverage(2, 2).receptive_radius == 0
