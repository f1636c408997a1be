"""Normalisers own their exact inverse; casting rounds and clips, never wraps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geo_med_sr.dtypes import cast_to_dtype, rescale_for
from geo_med_sr.errors import ConfigError, InputError
from geo_med_sr.normalize import build_normalizer

values = arrays(np.float32, (2, 6, 5), elements=st.floats(-3000, 3000, width=32))


@settings(max_examples=50, deadline=None)
@given(
    values,
    st.sampled_from(
        [
            ("percentile", {}),
            ("percentile", {"lower": 5, "upper": 95}),
            ("window", {"level": 40, "width": 400}),
            ("fixed", {"scale": 2.75e-5, "offset": -0.2}),
            ("none", {}),
        ]
    ),
)
def test_inverse_is_exact_and_stats_are_json(x, spec):
    name, params = spec
    norm = build_normalizer(name, **params)
    stats = norm.fit(x)
    stats = json.loads(json.dumps(stats))  # survives a JSON round trip
    y = norm.forward(x, stats)
    assert y.dtype == np.float32
    np.testing.assert_allclose(norm.inverse(y, stats), x, atol=1e-3 + 1e-6 * np.abs(x).max())


def test_percentile_uses_valid_voxels_only_and_does_not_modify_input():
    x = np.zeros((1, 10, 10), np.float32)
    x[0, :5] = 100.0
    x[0, 5:] = np.linspace(0, 1, 50).reshape(5, 10)
    valid = np.zeros((10, 10), bool)
    valid[5:] = True
    before = x.copy()
    stats = build_normalizer("percentile", lower=0, upper=100).fit(x, valid)
    assert stats["offset"] == [0.0] and stats["width"] == [pytest.approx(1.0)]
    np.testing.assert_array_equal(x, before)


def test_normalizer_errors():
    with pytest.raises(ConfigError, match="lower < upper"):
        build_normalizer("percentile", lower=90, upper=10)
    with pytest.raises(ConfigError, match="did you mean 'percentile'"):
        build_normalizer("percentil")
    with pytest.raises(InputError, match="no valid voxels"):
        build_normalizer("percentile").fit(np.ones((1, 3, 3)), np.zeros((3, 3), bool))


def test_cast_rounds_and_clips_without_wraparound():
    out = cast_to_dtype(np.array([-5.0, 0.4, 0.6, 254.5, 300.0, np.nan]), "uint8")
    np.testing.assert_array_equal(out, [0, 0, 1, 254, 255, 0])  # rint: 254.5 -> 254 (half to even)
    out16 = cast_to_dtype(np.array([-40000.0, 40000.0]), "int16")
    np.testing.assert_array_equal(out16, [-32768, 32767])
    scaled = cast_to_dtype(np.array([0.0, 6.48, 6.48 * 300]), "uint8", slope=6.48)
    np.testing.assert_array_equal(scaled, [0, 1, 255])


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, 20, elements=st.floats(-1e5, 1e5)), st.sampled_from(["int16", "uint16"]))
def test_rescale_for_fits_the_range(x, dtype):
    slope, inter = rescale_for(x, dtype)
    raw = cast_to_dtype(x, dtype, slope, inter)
    np.testing.assert_allclose(raw * slope + inter, x, atol=slope / 2 + 1e-9 * np.abs(x).max() + 1e-9)


def test_fixed_scale_maps_reflectance():
    norm = build_normalizer("fixed", scale=1e-4, offset=0.0)
    x = np.array([[[0.0, 10000.0]]], np.float32)
    np.testing.assert_allclose(norm.forward(x, norm.fit(x)), [[[0.0, 1.0]]], atol=1e-7)


@pytest.mark.parametrize("dtype,slope,inter", [("int16", 1.0, 0.0), ("uint8", 0.5, -3.0), ("float32", 1.0, 0.0)])
def test_cast_in_chunks_equals_one_pass(monkeypatch, dtype, slope, inter):
    """Casting in bounded chunks (any volume size) gives exactly the values of one whole-array pass."""
    from geo_med_sr import dtypes

    rng = np.random.default_rng(3)
    values = rng.normal(0, 400, size=(1, 13, 7, 5)).astype(np.float32)
    values[0, 3, 2, 1], values[0, 4, 0, 0] = np.nan, 1e9
    lo, hi = dtypes.storage_range(dtype)
    raw = (values.astype(np.float64) - inter) / slope
    if np.dtype(dtype).kind in "iu":
        raw = np.nan_to_num(np.rint(raw), nan=0.0, posinf=hi, neginf=lo)
    expected = np.clip(raw, lo, hi).astype(dtype)
    monkeypatch.setattr(dtypes, "CAST_CHUNK", 37)  # not a divisor of the size: a short last chunk
    out = dtypes.cast_to_dtype(values, dtype, slope, inter)
    assert out.dtype == np.dtype(dtype) and out.shape == values.shape
    np.testing.assert_array_equal(out, expected)
