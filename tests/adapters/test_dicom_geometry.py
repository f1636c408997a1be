"""Property tests of the DICOM slice geometry: positions <-> affine, and the refused stacks.

The stacks are built here from first principles (a random rotation gives the row, column and
normal directions; slice ``k`` lies at ``origin + k * step * normal``), independently of the
adapter's code, and handed to the pure functions in shuffled order.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_med_sr.adapters.dicom.geometry import (
    DUPLICATE_TOLERANCE_MM,
    SliceGrid,
    slice_geometry,
    slice_grid,
)
from geo_med_sr.errors import GeometryError, OutputError
from geo_med_sr.geometry import lps_to_ras

FOLDER = "series"
ATOL = 1e-9
NUMBER = r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"


@dataclass(frozen=True)
class Stack:
    """A regular stack of slices (LPS mm) and the affine it must give."""

    rotation: np.ndarray  # (3, 3) columns: row direction, column direction, normal
    pixel_spacing: np.ndarray  # (2,) mm between rows, mm between columns
    step: float  # mm between slice planes
    origin: np.ndarray  # (3,) position of slice 0
    n: int

    @property
    def orientation(self) -> np.ndarray:
        return np.concatenate([self.rotation[:, 0], self.rotation[:, 1]])

    @property
    def normal(self) -> np.ndarray:
        return self.rotation[:, 2]

    @property
    def positions(self) -> np.ndarray:
        """``(n, 3)`` positions of the slices in slice order."""
        return self.origin + np.arange(self.n)[:, None] * (self.step * self.normal)

    @property
    def along(self) -> np.ndarray:
        """``(n,)`` positions along the normal (mm)."""
        return self.positions @ self.normal

    @property
    def lps(self) -> np.ndarray:
        """The expected ``(4, 4)`` LPS affine of index (column, row, slice)."""
        out = np.eye(4)
        out[:3, 0] = self.rotation[:, 0] * self.pixel_spacing[1]
        out[:3, 1] = self.rotation[:, 1] * self.pixel_spacing[0]
        out[:3, 2] = self.normal * self.step
        out[:3, 3] = self.origin
        return out


def rotation_from_quaternion(q: np.ndarray) -> np.ndarray:
    """The proper rotation matrix ``(3, 3)`` of a non-zero quaternion ``(w, x, y, z)``."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


unit = st.floats(-1.0, 1.0, allow_nan=False)
rotations = (
    st.tuples(unit, unit, unit, unit)
    .map(np.array)
    .filter(lambda q: np.linalg.norm(q) > 0.2)
    .map(rotation_from_quaternion)
)


@st.composite
def stacks(draw: st.DrawFn, min_slices: int = 2, max_slices: int = 12) -> Stack:
    return Stack(
        rotation=draw(rotations),
        pixel_spacing=np.array([draw(st.floats(0.1, 5.0)), draw(st.floats(0.1, 5.0))]),
        step=draw(st.floats(0.3, 10.0)),
        origin=np.array(draw(st.tuples(*[st.floats(-300.0, 300.0)] * 3))),
        n=draw(st.integers(min_slices, max_slices)),
    )


def shuffled(draw: st.DrawFn, positions: np.ndarray) -> tuple[np.ndarray, list[str], list[int]]:
    """``positions`` in a drawn order, file names naming each slice's true index, and that order."""
    perm = draw(st.permutations(range(len(positions))))
    return positions[perm], [f"slice{i:02d}.dcm" for i in perm], list(perm)


def numbers_after(prefix: str, message: str, count: int = 1) -> list[float]:
    """The ``count`` numbers that follow ``prefix`` in ``message`` (separated by words)."""
    pattern = re.escape(prefix) + r"\D*?" + r"\D+?".join([NUMBER] * count)
    found = re.search(pattern, message)
    assert found, f"{prefix!r} not followed by {count} number(s) in {message!r}"
    return [float(v) for v in found.groups()]


# ----------------------------------------------------------------------------- reading


@settings(max_examples=150, deadline=None)
@given(data=st.data(), stack=stacks())
def test_any_order_gives_the_sorted_order_and_the_same_affine(data: st.DataObject, stack: Stack) -> None:
    positions, names, perm = shuffled(data.draw, stack.positions)

    order, lps, step = slice_geometry(stack.orientation, stack.pixel_spacing, positions, names, FOLDER)

    assert [perm[i] for i in order] == list(range(stack.n))  # order sorts the given slices
    np.testing.assert_allclose(lps, stack.lps, atol=ATOL, rtol=0)
    assert step == pytest.approx(stack.step, abs=ATOL)
    _, lps_sorted, _ = slice_geometry(stack.orientation, stack.pixel_spacing, stack.positions, names, FOLDER)
    np.testing.assert_allclose(lps, lps_sorted, atol=ATOL, rtol=0)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), stack=stacks())
def test_affine_maps_slice_index_k_to_the_kth_sorted_position(data: st.DataObject, stack: Stack) -> None:
    positions, names, _ = shuffled(data.draw, stack.positions)
    order, lps, _ = slice_geometry(stack.orientation, stack.pixel_spacing, positions, names, FOLDER)
    for k in range(stack.n):
        np.testing.assert_allclose((lps @ [0, 0, k, 1])[:3], positions[order[k]], atol=ATOL, rtol=0)
        np.testing.assert_allclose((lps @ [0, 0, k, 1])[:3], stack.positions[k], atol=ATOL, rtol=0)
    # the in-plane axes step by the pixel spacing along the row and column directions
    np.testing.assert_allclose(lps[:3, 0], stack.pixel_spacing[1] * stack.rotation[:, 0], atol=ATOL, rtol=0)
    np.testing.assert_allclose(lps[:3, 1], stack.pixel_spacing[0] * stack.rotation[:, 1], atol=ATOL, rtol=0)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), stack=stacks())
def test_writer_geometry_round_trips_the_read_geometry(data: st.DataObject, stack: Stack) -> None:
    positions, names, _ = shuffled(data.draw, stack.positions)
    _, lps, step = slice_geometry(stack.orientation, stack.pixel_spacing, positions, names, FOLDER)

    grid = slice_grid(lps_to_ras(lps), stack.n, "out")

    assert isinstance(grid, SliceGrid)
    np.testing.assert_allclose(grid.orientation, stack.orientation, atol=ATOL, rtol=0)
    np.testing.assert_allclose(grid.pixel_spacing, stack.pixel_spacing, atol=ATOL, rtol=0)
    np.testing.assert_allclose(grid.normal, stack.normal, atol=ATOL, rtol=0)
    assert grid.slice_spacing == pytest.approx(step, abs=ATOL)
    assert grid.positions.shape == (stack.n, 3)
    np.testing.assert_allclose(grid.positions, stack.positions, atol=ATOL, rtol=0)
    # and the written slices read back to the same affine
    _, back, _ = slice_geometry(grid.orientation, grid.pixel_spacing, grid.positions[::-1], names, FOLDER)
    np.testing.assert_allclose(back, lps, atol=ATOL, rtol=0)


@settings(max_examples=50, deadline=None)
@given(stack=stacks(max_slices=1, min_slices=1), single_step=st.floats(-10.0, 10.0).filter(lambda v: abs(v) > 0.1))
def test_one_slice_takes_the_given_step_along_the_normal(stack: Stack, single_step: float) -> None:
    order, lps, step = slice_geometry(
        stack.orientation, stack.pixel_spacing, stack.positions, ["only.dcm"], FOLDER, single_step
    )
    assert list(order) == [0]
    assert step == pytest.approx(abs(single_step), abs=ATOL)
    np.testing.assert_allclose(lps[:3, 2], abs(single_step) * stack.normal, atol=ATOL, rtol=0)
    np.testing.assert_allclose(lps[:3, 3], stack.origin, atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------- refusals


@settings(max_examples=100, deadline=None)
@given(data=st.data(), stack=stacks())
def test_a_duplicated_position_is_refused_naming_both_files(data: st.DataObject, stack: Stack) -> None:
    j = data.draw(st.integers(0, stack.n - 1))
    positions = np.vstack([stack.positions, stack.positions[j]])
    names = [f"slice{i:02d}.dcm" for i in range(stack.n)] + ["copy.dcm"]
    perm = data.draw(st.permutations(range(stack.n + 1)))

    with pytest.raises(GeometryError) as info:
        slice_geometry(stack.orientation, stack.pixel_spacing, positions[perm], [names[i] for i in perm], FOLDER)

    message = str(info.value)
    assert message.startswith(f"{FOLDER}: duplicate slice position: 1 pair(s) of slices share a position")
    pair = re.search(r"\(e\.g\. (\S+) and (\S+) at ", message)
    assert pair and set(pair.groups()) == {f"slice{j:02d}.dcm", "copy.dcm"}
    (at,) = numbers_after(f"and {pair.group(2)} at", message)
    assert at == pytest.approx(stack.along[j], abs=1e-3)
    assert "\n" not in message


@settings(max_examples=100, deadline=None)
@given(data=st.data(), stack=stacks(min_slices=5))
def test_missing_slices_are_refused_saying_where(data: st.DataObject, stack: Stack) -> None:
    count = data.draw(st.integers(1, stack.n - 4))  # at least one regular step is left
    first = data.draw(st.integers(1, stack.n - 1 - count))  # first missing slice (never an end)
    kept = [k for k in range(stack.n) if not first <= k < first + count]
    positions, names, _ = shuffled(data.draw, stack.positions[kept])

    with pytest.raises(GeometryError) as info:
        slice_geometry(stack.orientation, stack.pixel_spacing, positions, names, FOLDER)

    message = str(info.value)
    assert message.startswith(f"{FOLDER}: missing slice(s): {count} slice(s) missing ({count} between ")
    low, high = numbers_after(f"({count} between", message, 2)
    assert low == pytest.approx(stack.along[first - 1], abs=1e-3)
    assert high == pytest.approx(stack.along[first + count], abs=1e-3)
    (expected_step,) = numbers_after("expected step", message)
    assert expected_step == pytest.approx(stack.step, rel=1e-3)


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    stack=stacks(),
    tilt_deg=st.floats(2.0, 40.0),
    towards_deg=st.floats(0.0, 360.0),
)
def test_a_tilted_stack_is_refused_with_its_angle(
    data: st.DataObject, stack: Stack, tilt_deg: float, towards_deg: float
) -> None:
    a = math.radians(towards_deg)
    inplane = math.cos(a) * stack.rotation[:, 0] + math.sin(a) * stack.rotation[:, 1]  # unit, in the planes
    shift = stack.step * math.tan(math.radians(tilt_deg))  # in-plane offset per slice (mm)
    tilted = stack.positions + np.arange(stack.n)[:, None] * (shift * inplane)
    positions, names, _ = shuffled(data.draw, tilted)

    with pytest.raises(GeometryError) as info:
        slice_geometry(stack.orientation, stack.pixel_spacing, positions, names, FOLDER)

    message = str(info.value)
    assert message.startswith(f"{FOLDER}: gantry tilt / sheared stack of ")
    (angle,) = numbers_after("sheared stack of", message)
    assert angle == pytest.approx(tilt_deg, abs=1e-3)
    (drift,) = numbers_after("offset within their planes (", message)
    assert drift == pytest.approx((stack.n - 1) * shift, abs=1e-3)


@settings(max_examples=50, deadline=None)
@given(data=st.data(), stack=stacks(min_slices=4), factor=st.floats(1.1, 1.9))
def test_an_uneven_step_is_refused(data: st.DataObject, stack: Stack, factor: float) -> None:
    k = data.draw(st.integers(1, stack.n - 1))
    positions = stack.positions.copy()
    positions[k:] += (factor - 1) * stack.step * stack.normal  # one step is `factor` times the others
    positions, names, _ = shuffled(data.draw, positions)
    with pytest.raises(GeometryError, match=r"uneven slice spacing \(min "):
        slice_geometry(stack.orientation, stack.pixel_spacing, positions, names, FOLDER)


@settings(max_examples=50, deadline=None)
@given(stack=stacks(), lean=st.floats(0.01, 0.5))
def test_an_orientation_that_is_not_two_perpendicular_unit_vectors_is_refused(stack: Stack, lean: float) -> None:
    orientation = stack.orientation.copy()
    orientation[3:] += lean * orientation[:3]  # the column direction leans towards the row direction
    with pytest.raises(GeometryError, match="is not two perpendicular unit vectors"):
        slice_geometry(orientation, stack.pixel_spacing, stack.positions, ["a"] * stack.n, FOLDER)


def test_slices_closer_than_the_tolerance_count_as_duplicates() -> None:
    positions = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 2.0 + DUPLICATE_TOLERANCE_MM / 2]])
    with pytest.raises(GeometryError, match=r"\(e\.g\. b and c at 2\.000 mm"):
        slice_geometry(np.array([1.0, 0, 0, 0, 1, 0]), np.array([1.0, 1.0]), positions, ["a", "b", "c"], FOLDER)


# ----------------------------------------------------------------------------- writing


@settings(max_examples=50, deadline=None)
@given(stack=stacks(), shear=st.floats(0.05, 2.0))
def test_writer_refuses_a_sheared_in_plane_grid(stack: Stack, shear: float) -> None:
    lps = stack.lps
    lps[:3, 1] += shear * lps[:3, 0]  # the column axis leans towards the row axis
    with pytest.raises(OutputError, match="first two axes are not perpendicular"):
        slice_grid(lps_to_ras(lps), stack.n, "out")


@settings(max_examples=50, deadline=None)
@given(stack=stacks(), lean=st.floats(-0.8, 0.8))
def test_writer_keeps_a_leaning_slice_axis_as_positions(stack: Stack, lean: float) -> None:
    """A sheared slice axis is written slice by slice: positions follow it, the spacing is its normal part."""
    lps = stack.lps
    lps[:3, 2] += lean * stack.step * stack.rotation[:, 0]
    grid = slice_grid(lps_to_ras(lps), stack.n, "out")
    assert grid.slice_spacing == pytest.approx(stack.step, abs=ATOL)
    for k in range(stack.n):
        np.testing.assert_allclose(grid.positions[k], (lps @ [0, 0, k, 1])[:3], atol=ATOL, rtol=0)
