"""Rigid registration of a guide to a thick target, and the guide resampled onto a target grid."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import oblique_affine, shared_path, smooth_volume

from geo_med_sr.degrade import block_average
from geo_med_sr.errors import InputError
from geo_med_sr.guidance import (
    Registration,
    check_coverage,
    check_finer,
    check_registration,
    foreground,
    identity_registration,
    register_rigid,
    resample_guide,
)
from geo_med_sr.guidance.registration import inside_fraction
from geo_med_sr.spatial import SpatialArray

STROKE = ("mri", "multicontrast", "stroke_cstar")


def _rotation(axis, degrees: float) -> np.ndarray:
    """``(3, 3)`` rotation by ``degrees`` about the unit vector along ``axis`` (Rodrigues)."""
    u = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    a = np.deg2rad(degrees)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def _rigid(axis, degrees: float, about, shift) -> np.ndarray:
    """``(4, 4)`` world map: rotation about the point ``about``, then a translation by ``shift`` (mm)."""
    out = np.eye(4)
    out[:3, :3] = _rotation(axis, degrees)
    out[:3, 3] = np.asarray(about) - out[:3, :3] @ np.asarray(about) + np.asarray(shift)
    return out


def _errors(matrix: np.ndarray, truth: np.ndarray, target: SpatialArray) -> tuple[float, float]:
    """(mm, deg): the largest distance between ``matrix`` and ``truth`` at the corners of the bounding
    box of the target's foreground, and the angle of the rotation between them."""
    index = np.argwhere(foreground(target.array[0]))
    low, high = index.min(axis=0), index.max(axis=0)
    corners = np.array(np.meshgrid(*[[low[a], high[a]] for a in range(3)], indexing="ij")).reshape(3, -1)
    points = target.affine @ np.vstack([corners, np.ones(corners.shape[1])])
    mm = float(np.linalg.norm((matrix @ points - truth @ points)[:3], axis=0).max())
    relative = matrix[:3, :3] @ truth[:3, :3].T
    deg = float(np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1))))
    return mm, deg


def _centre(target: SpatialArray) -> np.ndarray:
    """World point (mm) of the centre of the target's foreground."""
    return (target.affine @ np.append(np.argwhere(foreground(target.array[0])).mean(axis=0), 1.0))[:3]


def _known(target: SpatialArray) -> np.ndarray:
    """The test's rigid motion: 3 deg about an oblique axis through the brain centre, then 2 mm."""
    shift = 2.0 * np.array([1.2, -1.0, 1.2]) / np.linalg.norm([1.2, -1.0, 1.2])
    return _rigid((1.0, 2.0, -1.5), 3.0, _centre(target), shift)


@pytest.fixture(scope="module")
def stroke() -> dict[str, SpatialArray]:
    """The stroke_cstar T1w and T2w (124 x 160 x 140, 1 mm, one oblique affine, co-registered by their provider)."""
    nib = pytest.importorskip("nibabel")
    out = {}
    for name in ("T1w", "T2w"):
        image = nib.load(str(shared_path(*STROKE, f"{name}_brain_1mm_iso.nii.gz")))
        out[name] = SpatialArray(np.asarray(image.dataobj, dtype=np.float32)[None], image.affine)
    return out


def _moved(image: SpatialArray, matrix: np.ndarray) -> SpatialArray:
    """``image`` whose anatomy sits at ``matrix`` applied to its old place: only the affine changes."""
    return SpatialArray(image.array, matrix @ image.affine)


def _thick(image: SpatialArray, axis: int) -> SpatialArray:
    """``image`` block-averaged 4x along ``axis`` (the exact thick grid: scale_affine by 1/4)."""
    factor = [1, 1, 1]
    factor[axis] = 4
    return block_average(image, factor)


# ----------------------------------------------------------------------------- real data


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("thick_axis", [0, 2])
def test_registration_recovers_a_known_rigid_motion(stroke, thick_axis):
    target = _thick(stroke["T2w"], thick_axis)
    known = _known(target)

    # the same contrast: the truth is exactly the known motion
    same = register_rigid(target, _moved(stroke["T2w"], known))
    mm, deg = _errors(same.matrix, known, target)
    assert mm <= 0.3 and deg <= 0.3, (mm, deg)

    # the T1w guide: the pair's own alignment (measured, m0) composed with the known motion
    m0 = register_rigid(target, stroke["T1w"])
    moved = _moved(stroke["T1w"], known)
    reg = register_rigid(target, moved)
    mm, deg = _errors(reg.matrix, known @ m0.matrix, target)
    assert mm <= 0.3 and deg <= 0.3, (mm, deg)
    # the provider's co-registration of T1w and T2w is good to about half a millimetre (0.2 deg)
    mm, deg = _errors(m0.matrix, np.eye(4), target)
    assert mm <= 1.0 and deg <= 0.5, (mm, deg)

    assert reg.converged and reg.overlap >= 0.99 and reg.metric < reg.metric_start
    check_registration(reg)
    check_coverage(reg.overlap)
    check_finer(target.affine, thick_axis, moved.affine)
    record = reg.provenance()
    assert record["rotation_deg"] == pytest.approx(3.0, abs=0.3)
    assert record["translation_mm"] == pytest.approx(2.0, abs=0.3)


@pytest.mark.realdata
def test_registration_is_deterministic(stroke):
    target = _thick(stroke["T2w"], 2)
    guide = _moved(stroke["T1w"], _known(target))
    first, second = register_rigid(target, guide), register_rigid(target, guide)
    assert first.matrix.tobytes() == second.matrix.tobytes()
    assert (first.metric, first.iterations, first.stop) == (second.metric, second.iterations, second.stop)


# ----------------------------------------------------------------------------- synthetic registration


def _phantom(shape=(40, 36, 32)) -> np.ndarray:
    """A textured ellipsoid on a zero background, ``shape`` float32."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    inside = np.linalg.norm((grid - np.array(shape) / 2 + 0.5) / (0.42 * np.array(shape)), axis=-1) <= 1
    return np.where(inside, smooth_volume(shape, seed=3, dtype=np.float32) + 200, 0).astype(np.float32)


def test_registration_that_hits_its_iteration_limit_has_not_converged():
    guide = SpatialArray(_phantom()[None], oblique_affine(spacing=(1.0, 1.0, 1.0)))
    target = _thick(guide, 2)
    shifted = _moved(guide, _rigid((0, 0, 1), 0.0, (0, 0, 0), (1.5, -1.0, 0.8)))
    reg = register_rigid(target, shifted, iterations=1)
    assert not reg.converged and "Maximum number of iterations" in reg.stop
    with pytest.raises(InputError, match="did not converge .*Maximum number of iterations"):
        check_registration(reg)
    again = register_rigid(target, shifted, iterations=1)
    assert again.matrix.tobytes() == reg.matrix.tobytes()


def test_registration_refuses_a_target_without_anatomy_or_not_3d():
    guide = SpatialArray(_phantom()[None], np.eye(4))
    with pytest.raises(InputError, match="no anatomy"):
        register_rigid(SpatialArray(np.zeros((1, 8, 8, 4), np.float32), np.eye(4)), guide)
    with pytest.raises(InputError, match="3D volume"):
        register_rigid(SpatialArray(np.ones((1, 8, 8), np.float32), np.eye(3)), guide)


def test_inside_fraction_counts_the_anatomy_that_lands_in_the_guide():
    guide = SpatialArray(np.zeros((1, 10, 10, 10), np.float32), np.eye(4))
    mask = np.zeros((10, 10, 10), dtype=bool)
    mask[2:8, 2:8, 2:8] = True
    assert inside_fraction(mask, np.eye(4), np.eye(4), guide) == 1.0
    shift = np.eye(4)
    shift[0, 3] = 5.0  # target voxels x = 2..7 land at guide x = 7..12: 7, 8, 9 inside
    assert inside_fraction(mask, np.eye(4), shift, guide) == pytest.approx(0.5)
    assert inside_fraction(np.zeros_like(mask), np.eye(4), np.eye(4), guide) == 0.0


# ----------------------------------------------------------------------------- resampling


@pytest.fixture
def guide() -> SpatialArray:
    """A smooth oblique anisotropic guide of odd shape (13, 10, 9)."""
    return SpatialArray(smooth_volume((13, 10, 9), dtype=np.float32)[None], oblique_affine())


def _index_map(shift=(0.0, 0.0, 0.0), permutation=(0, 1, 2), flips=(), shape=(13, 10, 9)) -> np.ndarray:
    """``(4, 4)`` map from an output index to a guide index: permuted axes, reversed axes, then a shift."""
    out = np.zeros((4, 4))
    out[3, 3] = 1.0
    for a, b in enumerate(permutation):  # guide axis a reads output axis b
        out[a, b] = 1.0
    for a in flips:
        out[a, :3] *= -1.0
        out[a, 3] = shape[a] - 1
    out[:3, 3] += shift
    return out


def test_resample_onto_the_guides_own_grid_returns_its_values(guide):
    values, inside = resample_guide(guide, identity_registration(), guide.affine, guide.spatial_shape)
    assert values.dtype == np.float32 and values.shape == guide.spatial_shape and values.flags.c_contiguous
    assert inside.dtype == bool and inside.all()
    np.testing.assert_allclose(values, guide.array[0], atol=1e-3 * np.ptp(guide.array))


@pytest.mark.parametrize(
    "permutation,flips", [((1, 0, 2), ()), ((2, 0, 1), ()), ((0, 1, 2), (0,)), ((0, 1, 2), (1, 2))]
)
def test_resample_onto_permuted_or_reversed_axes_permutes_or_reverses_the_values(guide, permutation, flips):
    shape = tuple(guide.spatial_shape[b] for b in np.argsort(permutation))
    index_map = _index_map(permutation=permutation, flips=flips, shape=guide.spatial_shape)
    values, inside = resample_guide(guide, identity_registration(), guide.affine @ index_map, shape)
    expected = guide.array[0]
    for a in flips:
        expected = np.flip(expected, axis=a)
    expected = np.transpose(expected, np.argsort(permutation))
    assert inside.all()
    np.testing.assert_allclose(values, expected, atol=1e-3 * np.ptp(guide.array))


def test_a_whole_voxel_translation_is_a_numpy_shift(guide):
    steps = np.array([2, -1, 3])
    matrix = np.eye(4)
    matrix[:3, 3] = guide.affine[:3, :3] @ steps  # the anatomy sits 2, -1, 3 guide voxels further on
    values, inside = resample_guide(
        guide, Registration(matrix, None, None, 0, "", True, 1.0), guide.affine, (13, 10, 9)
    )
    n = np.array(guide.spatial_shape)
    region = tuple(slice(max(0, -s), min(m, m - s)) for s, m in zip(steps, n))
    source = tuple(slice(max(0, s), min(m, m + s)) for s, m in zip(steps, n))
    expected_inside = np.zeros(guide.spatial_shape, dtype=bool)
    expected_inside[region] = True
    np.testing.assert_array_equal(inside, expected_inside)
    np.testing.assert_allclose(values[region], guide.array[0][source], atol=1e-3 * np.ptp(guide.array))
    assert not values[~inside].any()


def test_resample_onto_a_shifted_grid_masks_what_lies_outside_the_guide(guide):
    shift = np.array([2.25, -1.4, 0.7])  # output index i sits at guide index i + shift
    shape = (15, 13, 8)
    values, inside = resample_guide(guide, identity_registration(), guide.affine @ _index_map(shift), shape)
    expected = np.ones(shape, dtype=bool)
    for a, (s, n) in enumerate(zip(shift, guide.spatial_shape)):
        g = np.arange(shape[a]) + s
        ok = (g >= -0.5) & (g <= n - 0.5)
        expected &= ok.reshape([-1 if b == a else 1 for b in range(3)])
    np.testing.assert_array_equal(inside, expected)
    assert 0 < inside.sum() < inside.size
    assert not values[~inside].any()
    low, high = guide.array.min(), guide.array.max()
    assert values[inside].min() >= low and values[inside].max() <= high


def test_resample_clips_the_bspline_overshoot_to_the_guides_range():
    step = np.zeros((12, 8, 8), dtype=np.float32)
    step[6:] = 100.0  # a sharp edge: a cubic B-spline rings on both sides of it
    image = SpatialArray(step[None], np.eye(4))
    half = np.eye(4)
    half[0, 3] = 0.5
    values, inside = resample_guide(image, identity_registration(), half, (11, 8, 8))
    assert inside.all() and values.min() == 0.0 and values.max() == 100.0
    assert 0.0 < values[5, 4, 4] < 100.0  # the edge itself, half way


def test_resample_refuses_a_grid_that_is_not_3d(guide):
    with pytest.raises(InputError, match="3D"):
        resample_guide(guide, identity_registration(), np.eye(3), (4, 4))


def test_registration_refuses_a_guide_that_does_not_overlap_the_target():
    guide = SpatialArray(_phantom()[None], oblique_affine(spacing=(1.0, 1.0, 1.0)))
    far = _moved(guide, _rigid((0, 0, 1), 0.0, (0, 0, 0), (1000.0, 0.0, 0.0)))
    with pytest.raises(InputError, match="failed in ITK: .*do not sufficiently overlap") as err:
        register_rigid(_thick(guide, 2), far)
    assert "0x" not in str(err.value) and "\n" not in str(err.value)
