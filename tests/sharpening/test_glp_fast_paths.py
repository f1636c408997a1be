"""GLP's fast paths equal the plain formulas they replace: banded products, the low-pass composed tap by tap,
footprint-only area weights, shared normal equations (issue 26: GLP at the cost of bicubic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_med_sr.multires import (
    Weights,
    apply_banded,
    apply_separable,
    area_weights,
    cubic_weights,
    fine_positions,
    fold,
    gaussian_weights,
)
from geo_med_sr.sharpening.methods import GLP_RIDGE, fit_glp
from geo_med_sr.sharpening.scene import MTF_NYQUIST_GAIN, GroupInputs, glp_weights
from geo_med_sr.sharpening.wald import _untouched


def composed_glp_weights(idx: np.ndarray, n_out: int, ratio: int, offset: float) -> Weights:
    """The MTF-GLP low-pass as three dense maps multiplied (what :func:`glp_weights` computes tap by tap)."""
    up = cubic_weights(fine_positions(idx, ratio, offset), None)
    coarse = np.arange(up.lo, up.hi)
    decimate = cubic_weights(offset + (coarse + 0.5) * ratio - 0.5, n_out)
    sigma = ratio * math.sqrt(-2.0 * math.log(MTF_NYQUIST_GAIN)) / math.pi
    mtf = gaussian_weights(np.arange(decimate.lo, decimate.hi), n_out, sigma)
    return up.compose(decimate).compose(mtf)


def dense(w: Weights, n: int) -> np.ndarray:
    """``w`` as a matrix over the whole axis ``[0, n)``."""
    out = np.zeros((w.matrix.shape[0], n))
    out[:, w.lo : w.hi] = w.matrix
    return out


@pytest.mark.parametrize("ratio", [2, 3, 6])
@pytest.mark.parametrize("offset", [0.0, 0.5, -0.5, 1.25])
@pytest.mark.parametrize("box", [(0, 40), (-13, 31), (17, 75), (-50, 3)])
def test_glp_weights_are_the_three_maps_composed(ratio, offset, box):
    n = 40  # windows inside, across either border (mirrored) and longer than the axis
    idx = fold(np.arange(*box), n)
    got, want = glp_weights(idx, n, ratio, offset), composed_glp_weights(idx, n, ratio, offset)
    np.testing.assert_allclose(dense(got, n), dense(want, n), rtol=0, atol=1e-15)
    assert want.lo <= got.lo and got.hi <= want.hi  # reads no more of the guides than before


@given(st.sampled_from([1.0, 2.0, 3.0, 6.0, 1.5, 0.5, 4 / 3]), st.floats(0.0, 3.0), st.integers(1, 40))
@settings(max_examples=60, deadline=None)
def test_area_weights_are_the_dense_footprint_formula_bit_for_bit(q, offset, n_out):
    n_in = int(np.ceil(offset + q * n_out + 1e-9)) + 1
    starts = offset + q * np.arange(n_out)
    lo, hi = max(0, math.floor(starts[0] + 1e-9)), min(n_in, math.ceil(starts[-1] + q - 1e-9))
    edges = np.arange(lo, hi + 1, dtype=np.float64)
    left = np.maximum(starts[:, None], edges[None, :-1])
    right = np.minimum(starts[:, None] + q, edges[None, 1:])
    w = area_weights(n_out, q, offset, n_in)
    assert w.lo == lo
    np.testing.assert_array_equal(w.matrix, np.clip(right - left, 0.0, None) / q)


@pytest.mark.parametrize("rows", [1, 5, 16, 128])
def test_apply_banded_equals_apply_separable(rows):
    rng = np.random.default_rng(rows)
    n = 90
    wx = glp_weights(fold(np.arange(-9, 60), n), n, 3, 0.5)  # mirrored at the border
    wy = area_weights(20, 2.5, 0.75, 52)
    wy = Weights(np.vstack([wy.matrix[:7], np.zeros((3, wy.matrix.shape[1])), wy.matrix[7:]]), wy.lo)  # zero rows
    values = rng.random((3, wx.matrix.shape[1], wy.matrix.shape[1])) * 4000 - 1000
    got = apply_banded(values, wx, wy, rows)
    assert got.shape == (3, 69, 23)
    np.testing.assert_allclose(got, apply_separable(values, wx, wy), rtol=1e-13, atol=1e-10)
    np.testing.assert_array_equal(got[:, :, 7:10], 0.0)
    with pytest.raises(ValueError):
        apply_banded(values[:, 1:], wx, wy)


def test_untouched_is_the_dense_count_of_invalid_pixels():
    rng = np.random.default_rng(3)
    wx, wy = area_weights(30, 2.0, 0.5, 62).matrix, area_weights(21, 3.0, 0.0, 63).matrix
    for share in (0.0, 0.01, 0.2):
        valid = rng.random((wx.shape[1], wy.shape[1])) >= share
        want = ((wx > 0).astype(float) @ (~valid).astype(float) @ (wy > 0).astype(float).T) == 0
        np.testing.assert_array_equal(_untouched(wx, valid, wy), want)


def per_band_fit(pairs) -> np.ndarray:
    """The GLP gains band by band, each from its own copy of the valid detail (the formula fit_glp shares)."""
    t, g = pairs[0][0].up.shape[0], pairs[0][0].detail.shape[0]
    a, y = np.zeros((t, g, g)), np.zeros((t, g))
    for inputs, label, valid in pairs:
        for b in range(t):
            keep = valid[b] & inputs.valid[b]
            d = inputs.detail[:, keep].T
            a[b] += d.T @ d
            y[b] += d.T @ (label[b] - inputs.up[b])[keep]
    ridge = [GLP_RIDGE * max(float(np.trace(a[b])) / g, 1e-12) for b in range(t)]
    return np.stack([np.linalg.solve(a[b] + ridge[b] * np.eye(g), y[b]) for b in range(t)])


def test_fit_glp_equals_the_per_band_normal_equations():
    rng = np.random.default_rng(5)
    pairs = []
    for shape in [(17, 23), (9, 12)]:
        t, g = 5, 3
        detail = rng.normal(size=(g, *shape))
        up = rng.normal(size=(t, *shape)) * 100 + 1000
        label = up + np.einsum("tg,gxy->txy", rng.normal(size=(t, g)), detail) + rng.normal(size=(t, *shape))
        partial = rng.random(shape) > 0.3
        inputs_valid = np.stack([np.ones(shape, bool), np.ones(shape, bool), partial, partial, rng.random(shape) > 0.5])
        valid = np.ones((t, *shape), bool)
        valid[4, :2] = False  # the label's own gaps
        inputs = GroupInputs(up, rng.normal(size=(g, *shape)), np.zeros((0, *shape)), inputs_valid, detail)
        pairs.append((inputs, label, valid))
    np.testing.assert_allclose(fit_glp(iter(pairs)), per_band_fit(pairs), rtol=1e-10, atol=1e-12)
