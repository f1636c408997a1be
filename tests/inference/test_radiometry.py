"""Nodata fill is local (tile-invariant); re-masking never lets nodata into valid pixels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_med_sr.inference.arrays import ArraySource
from geo_med_sr.inference.radiometry import Radiometry, fill_invalid, sample_valid_values
from geo_med_sr.inference.threads import BackgroundWorker, prefetch
from geo_med_sr.normalize import build_normalizer


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 4), st.integers(0, 2**31 - 1))
def test_fill_depends_only_on_pixels_within_radius(radius, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 24, 24)).astype(np.float32)
    valid = rng.random((24, 24)) > 0.6
    out = fill_invalid(x, valid, radius)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[:, valid], x[:, valid])
    # change everything farther than `radius` from pixel (12, 12): its value must not change
    x2, valid2 = x.copy(), valid.copy()
    far = np.ones((24, 24), bool)
    far[12 - radius : 13 + radius, 12 - radius : 13 + radius] = False
    x2[:, far] = rng.normal(size=(2, int(far.sum())))
    valid2[far] = rng.random(int(far.sum())) > 0.5
    np.testing.assert_allclose(fill_invalid(x2, valid2, radius)[:, 12, 12], out[:, 12, 12], atol=1e-6)


def test_fill_uses_valid_neighbours():
    x = np.zeros((1, 5, 5), np.float32)
    x[0, :, :2] = 7.0
    valid = np.zeros((5, 5), bool)
    valid[:, :2] = True
    out = fill_invalid(x, valid, 2)
    np.testing.assert_allclose(out[0, :, 2:4], 7.0, rtol=1e-6)
    np.testing.assert_allclose(out[0, :, 4], 0.0)  # beyond the radius: fill value


def test_after_remasks_and_nudges_clashes():
    norm = build_normalizer("none")
    rad = Radiometry(norm, norm.fit(np.zeros((1, 1))), out_dtype=np.uint8, nodata=0.0)
    y = np.array([[[0.2, 5.0], [300.0, -3.0]]], np.float32)
    valid = np.array([[True, True], [True, False]])
    np.testing.assert_array_equal(rad.after(y, valid), [[[1, 5], [255, 0]]])


def test_sampled_statistics_are_bounded_and_use_valid_pixels():
    x = np.arange(2 * 300 * 300, dtype=np.float32).reshape(2, 300, 300)
    valid = np.ones((300, 300), bool)
    valid[:, :150] = False
    values = sample_valid_values(ArraySource(x, valid), max_pixels=40_000, window=50)
    assert values.shape[0] == 2 and 0 < values.shape[1] <= 40_000
    assert np.all(values[0] % 300 >= 150)


def test_background_errors_reach_the_caller():
    def boom():
        yield 1
        raise RuntimeError("reader failed")

    with pytest.raises(RuntimeError, match="reader failed"):
        list(prefetch(boom(), depth=2))
    seen = []

    def write(item):
        if item == 3:
            raise OSError("disk full")
        seen.append(item)

    with pytest.raises(OSError, match="disk full"):
        with BackgroundWorker(write, depth=2) as worker:
            for i in range(6):
                worker.submit(i)
    assert seen == [0, 1, 2]
