"""Geometry rules of DESIGN §3: exact, property-tested."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from conftest import oblique_affine
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_med_sr import geometry
from geo_med_sr.errors import ConfigError
from geo_med_sr.scale import as_scale

angles = st.tuples(*[st.floats(-180, 180)] * 3)
spacings = st.tuples(*[st.floats(0.2, 5.0)] * 3)
scales = st.tuples(*[st.integers(1, 5)] * 3)


@settings(max_examples=60, deadline=None)
@given(angles, spacings, scales)
def test_field_of_view_corners_are_kept(ang, sp, s):
    """The outer corners of the first and last voxels land on the same world points."""
    a = oblique_affine(sp, ang)
    shape = np.array([7, 4, 5])
    hr = geometry.scale_affine(a, s)
    for lr_corner, hr_corner in ((-0.5 * np.ones(3), -0.5 * np.ones(3)), (shape - 0.5, shape * np.array(s) - 0.5)):
        np.testing.assert_allclose(a @ np.r_[lr_corner, 1], hr @ np.r_[hr_corner, 1], atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(angles, spacings, scales)
def test_block_centres_average_to_lr_centre(ang, sp, s):
    """The mean of the ``s`` HR centres inside LR voxel i is the LR centre (no (s-1)/2 shift)."""
    a = oblique_affine(sp, ang)
    hr = geometry.scale_affine(a, s)
    i = np.array([2, 3, 1])
    block = np.stack(
        np.meshgrid(*[np.arange(ii * si, ii * si + si) for ii, si in zip(i, s)], indexing="ij"), -1
    ).reshape(-1, 3)
    world = (hr[:3, :3] @ block.T).T + hr[:3, 3]
    np.testing.assert_allclose(world.mean(0), a[:3, :3] @ i + a[:3, 3], atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(angles, spacings, scales)
def test_scale_then_inverse_is_identity_and_spacing_divides(ang, sp, s):
    a = oblique_affine(sp, ang)
    hr = geometry.scale_affine(a, s)
    np.testing.assert_allclose(geometry.scale_affine(hr, [1 / v for v in s]), a, atol=1e-9)
    np.testing.assert_allclose(geometry.spacing(hr), np.array(sp) / np.array(s), rtol=1e-12)
    np.testing.assert_allclose(geometry.direction(hr), geometry.direction(a), atol=1e-12)
    expected_origin = geometry.origin(a) - geometry.direction(a) @ (
        np.array(sp) * (np.array(s) - 1) / (2 * np.array(s))
    )
    np.testing.assert_allclose(geometry.origin(hr), expected_origin, atol=1e-9)


def test_keeping_the_origin_is_detected_as_wrong():
    """The common wrong answer (origin kept) is half an LR voxel off at x2: the oracle must see it."""
    a = oblique_affine()
    right = geometry.scale_affine(a, 2)
    wrong = right.copy()
    wrong[:3, 3] = a[:3, 3]
    assert geometry.affine_difference_in_voxels(right, right) == 0
    assert geometry.affine_difference_in_voxels(right, wrong) == pytest.approx(0.5, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(angles, spacings)
def test_corner_centre_and_lps_conversions_invert(ang, sp):
    a = oblique_affine(sp, ang)
    np.testing.assert_allclose(geometry.centre_to_corner(geometry.corner_to_centre(a)), a, atol=1e-12)
    np.testing.assert_allclose(geometry.ras_to_lps(geometry.lps_to_ras(a)), a)
    assert geometry.orientation_code(a) == "".join(nib.aff2axcodes(a))


def test_scale_validation():
    with pytest.raises(ConfigError, match="positive"):
        as_scale([1, 0, 2], 3, whole=False)
    with pytest.raises(ConfigError, match="3 spatial axes"):
        as_scale([1, 2], 3, whole=False)
    with pytest.raises(ConfigError, match="whole number"):
        geometry.scaled_shape((5,), (0.5,))
