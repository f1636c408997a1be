"""Slice geometry: sorted slice positions <-> a centre-anchored affine, both ways.

Reading: the LPS affine is built from ImageOrientationPatient, PixelSpacing and the sorted
ImagePositionPatient values (converted to RAS once, by the adapter, with
:func:`geo_med_sr.geometry.lps_to_ras`). The reader never guesses a geometry: slices are sorted
by their position along the slice normal, and duplicate positions, missing slices, uneven
spacing and gantry tilt (sheared stacks) are refused with a one-line message that says what
was found and what to do.

Writing: the Image Plane attributes of every output slice (orientation, pixel spacing, slice
spacing and positions) come from the image's RAS affine, so that DICOM viewers and
ITK/SimpleITK place the grid exactly; in-plane axes that are not perpendicular are refused.

:func:`slice_geometry` and :func:`slice_grid` are pure functions of numpy arrays (file names
and the folder only appear in messages); :func:`series_geometry` takes the values out of the
slice headers and checks that every slice agrees.

Index axes are DICOM's ``(column, row, slice)``: axis 0 runs along a row (the first
ImageOrientationPatient triplet), axis 1 down a column (the second triplet).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from pydicom.dataset import Dataset

from geo_med_sr.adapters.dicom.header import SliceHeader, optional_float
from geo_med_sr.errors import GeometryError, OutputError, file_error
from geo_med_sr.geometry import ras_to_lps

#: ImageOrientationPatient values of all slices must agree to this (direction cosines).
ORIENTATION_TOLERANCE = 1e-4
#: relative deviation of a slice step from the median step that counts as uneven.
SPACING_TOLERANCE = 0.01
#: slices closer than this along the normal (mm) share a position.
DUPLICATE_TOLERANCE_MM = 1e-3
#: a stack whose slice direction leans more than this off the normal is tilted ...
TILT_TOLERANCE_DEG = 0.01
#: ... provided its in-plane drift (mm) also exceeds the rounding of the stored positions.
INPLANE_TOLERANCE_MM = 5e-3


# ----------------------------------------------------------------------------- reading


def floats(ds: Dataset, keyword: str, count: int, path: Path) -> np.ndarray:
    """A multi-valued numeric element as float64, shape ``(count,)``, or GeometryError naming the file."""
    value = ds.get(keyword, None)
    try:
        values = np.array(
            [float(v) for v in (value if isinstance(value, Iterable) and not isinstance(value, str) else [value])],
            dtype=np.float64,
        )
    except (TypeError, ValueError):
        values = np.array([])
    if value is None or values.size != count or not np.all(np.isfinite(values)):
        raise file_error(
            GeometryError,
            path,
            f"{keyword} is missing or invalid ({value!r}): the slice has no 3D geometry"
            " (a localiser, screenshot or truncated file?); remove it from the folder",
        )
    return values


def position_gaps_message(positions: np.ndarray, steps: np.ndarray, median: float) -> str:
    """Explain uneven steps: missing slices when gaps are whole multiples of a base step.

    Args:
        positions: ``(N,)`` sorted slice positions along the normal (mm).
        steps: ``(N - 1,)`` their differences (mm).
        median: the median step (mm).
    """
    positive = steps[steps > 0]
    for base in (median, float(positive.min()) if positive.size else median):
        if base <= 0:
            continue
        ratios = steps / base
        whole = np.rint(ratios)
        fits = (whole >= 1) & (np.abs(ratios - whole) <= SPACING_TOLERANCE * whole)
        if np.all(fits) and np.any(whole >= 2):
            gaps = np.nonzero(whole >= 2)[0]
            missing = int(np.sum(whole[gaps] - 1))
            where = ", ".join(
                f"{int(whole[i] - 1)} between {positions[i]:.3f} and {positions[i + 1]:.3f} mm" for i in gaps[:5]
            )
            more = f" and {len(gaps) - 5} more gaps" if len(gaps) > 5 else ""
            return (
                f"missing slice(s): {missing} slice(s) missing ({where}{more} along the slice normal, expected step"
                f" {base:.4g} mm); copy the complete series into the folder"
            )
    return (
        f"uneven slice spacing (min {steps.min():.4g}, max {steps.max():.4g} mm, median {median:.4g} mm):"
        " the slices do not lie on a regular grid; resample the series onto one first"
    )


def _check_steps(folder: Path | str, along: np.ndarray, names: Sequence[str]) -> None:
    """Refuse duplicate positions and uneven steps; ``along`` and ``names`` sorted, ``(N,)``, N >= 2."""
    steps = np.diff(along)
    dup = np.nonzero(steps < DUPLICATE_TOLERANCE_MM)[0]
    if dup.size:
        i = int(dup[0])
        raise file_error(
            GeometryError,
            folder,
            f"duplicate slice position: {dup.size} pair(s) of slices share a position"
            f" (e.g. {names[i]} and {names[i + 1]} at {along[i]:.3f} mm along the slice normal);"
            " the series holds several images per position (echoes, time points or repeats);"
            " put each volume in its own folder",
        )
    median = float(np.median(steps))
    if np.any(np.abs(steps - median) > SPACING_TOLERANCE * median):
        raise file_error(GeometryError, folder, position_gaps_message(along, steps, median))


def _check_tilt(folder: Path | str, total: np.ndarray, normal: np.ndarray) -> None:
    """Refuse a stack whose first-to-last offset ``total`` ``(3,)`` leans off the unit ``normal``."""
    total_along = float(total @ normal)
    inplane = total - total_along * normal
    tilt_deg = math.degrees(math.atan2(float(np.linalg.norm(inplane)), total_along))
    if tilt_deg > TILT_TOLERANCE_DEG and np.linalg.norm(inplane) > INPLANE_TOLERANCE_MM:
        raise file_error(
            GeometryError,
            folder,
            f"gantry tilt / sheared stack of {tilt_deg:.3f} degrees: the slices are offset within their planes"
            f" ({np.linalg.norm(inplane):.3f} mm over the stack); resample to an untilted grid first"
            " (e.g. dcm2niix corrects gantry tilt)",
        )


def _check_straight(folder: Path | str, ipp: np.ndarray, normal: np.ndarray, step_vec: np.ndarray, step: float) -> None:
    """Refuse sorted positions ``ipp`` ``(N, 3)`` that drift off the line ``ipp[0] + k * step_vec``."""
    n = len(ipp)
    residual = ipp - (ipp[0] + np.arange(n)[:, None] * step_vec)
    res_along = np.abs(residual @ normal)
    res_inplane = np.linalg.norm(residual - np.outer(residual @ normal, normal), axis=1)
    if res_along.max() > SPACING_TOLERANCE * step:
        raise file_error(
            GeometryError,
            folder,
            f"uneven slice spacing (positions drift up to {res_along.max():.4g} mm from a regular {step:.4g} mm grid);"
            " resample the series onto a regular grid first",
        )
    if res_inplane.max() > max(INPLANE_TOLERANCE_MM, 1e-3 * step):
        raise file_error(
            GeometryError,
            folder,
            "sheared stack: slices are not stacked on a straight line"
            f" (in-plane offset up to {res_inplane.max():.4g} mm, like a variable gantry tilt);"
            " resample the series onto a regular grid first",
        )


def slice_geometry(
    orientation: np.ndarray,
    pixel_spacing: np.ndarray,
    positions: np.ndarray,
    names: Sequence[str],
    folder: Path | str,
    single_step: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Sort the slices and build the LPS affine; refuse anything that is not a regular grid.

    Args:
        orientation: ``(6,)`` ImageOrientationPatient (row direction, column direction; LPS
            direction cosines) shared by the slices.
        pixel_spacing: ``(2,)`` PixelSpacing (mm between rows, mm between columns).
        positions: ``(N, 3)`` ImagePositionPatient of every slice (LPS mm, centre of the first
            pixel), in any order.
        names: ``(N,)`` the slices' file names, for messages.
        folder: the series folder, prefix of messages.
        single_step: slice step (mm) of a one-slice series (from SpacingBetweenSlices or
            SliceThickness); its absolute value is used.

    Returns:
        ``(order, lps, step)``: ``(N,)`` indices sorting the slices along the normal, the
        ``(4, 4)`` LPS centre-anchored affine of index ``(column, row, slice)`` (slice ``k`` is
        the ``k``-th sorted one) and the slice step in mm (distance between slice planes).

    Raises:
        GeometryError: the orientation is not two perpendicular unit vectors, or the slices
            are duplicated, missing, unevenly spaced, tilted or not on a straight line.
    """
    orientation = np.asarray(orientation, dtype=np.float64)
    pixel_spacing = np.asarray(pixel_spacing, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    row_dir, col_dir = orientation[:3], orientation[3:]
    norms = np.linalg.norm(row_dir), np.linalg.norm(col_dir)
    if abs(norms[0] - 1) > 1e-3 or abs(norms[1] - 1) > 1e-3 or abs(float(row_dir @ col_dir)) > 1e-3:
        raise file_error(
            GeometryError,
            folder,
            f"ImageOrientationPatient {orientation.tolist()} is not two perpendicular unit vectors;"
            " the file header is corrupt",
        )
    row_dir, col_dir = row_dir / norms[0], col_dir / norms[1]
    normal = np.cross(row_dir, col_dir)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    ipp, along = positions[order], along[order]
    n = len(ipp)

    if n == 1:
        step = abs(float(single_step))
        step_vec = normal * step
    else:
        _check_steps(folder, along, [names[i] for i in order])
        total = ipp[-1] - ipp[0]
        _check_tilt(folder, total, normal)
        step_vec = total / (n - 1)
        step = float(total @ normal) / (n - 1)
        _check_straight(folder, ipp, normal, step_vec, step)

    lps = np.eye(4)
    lps[:3, 0] = row_dir * pixel_spacing[1]
    lps[:3, 1] = col_dir * pixel_spacing[0]
    lps[:3, 2] = step_vec
    lps[:3, 3] = ipp[0]
    return order, lps, float(step)


def plane_values(folder: Path, items: list[SliceHeader]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shared orientation ``(6,)`` and pixel spacing ``(2,)``, and the positions ``(N, 3)`` of ``items``.

    Raises:
        GeometryError: a slice lacks a valid orientation, spacing or position (naming the
            file), or the slices differ in orientation, pixel spacing or size.
    """
    first_path, first = items[0]
    iop0 = floats(first, "ImageOrientationPatient", 6, first_path)
    ps0 = floats(first, "PixelSpacing", 2, first_path)
    size0 = (int(first.Rows), int(first.Columns))
    positions = []
    for path, ds in items:
        iop = floats(ds, "ImageOrientationPatient", 6, path)
        if np.max(np.abs(iop - iop0)) > ORIENTATION_TOLERANCE:
            raise file_error(
                GeometryError,
                folder,
                f"slices have different ImageOrientationPatient ({first_path.name}: {iop0.round(5).tolist()},"
                f" {path.name}: {iop.round(5).tolist()}); a series must be one stack;"
                " split it or pass another --series",
            )
        ps = floats(ds, "PixelSpacing", 2, path)
        if not np.allclose(ps, ps0, rtol=1e-4, atol=1e-6):
            raise file_error(
                GeometryError,
                folder,
                f"slices have different PixelSpacing ({first_path.name}: {ps0.tolist()},"
                f" {path.name}: {ps.tolist()}); a series must be one regular grid",
            )
        size = (int(ds.Rows), int(ds.Columns))
        if size != size0:
            raise file_error(
                GeometryError,
                folder,
                f"slices have different sizes (rows x columns {size0[0]}x{size0[1]} in {first_path.name},"
                f" {size[0]}x{size[1]} in {path.name}); a series must be one regular grid",
            )
        positions.append(floats(ds, "ImagePositionPatient", 3, path))
    return iop0, ps0, np.array(positions)


def single_slice_step(ds: Dataset) -> tuple[float, str]:
    """Slice step (mm) of a one-slice series and where it came from.

    Returns:
        ``(step, source)``: SpacingBetweenSlices, else SliceThickness, else 1.0 mm with source
        ``"assumed"`` (a one-slice series has no measured spacing).
    """
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = optional_float(ds, keyword)
        if value:
            return abs(value), keyword
    return 1.0, "assumed"


def series_geometry(folder: Path, items: list[SliceHeader]) -> tuple[list[SliceHeader], np.ndarray, float]:
    """Sort the slices of one series and build its LPS affine (:func:`slice_geometry` on the headers).

    Args:
        folder: the series folder (for messages).
        items: ``(path, header)`` of every slice of the series.

    Returns:
        The slices sorted along the normal, the ``(4, 4)`` LPS centre-anchored affine and the
        slice step in mm (distance between slice planes).

    Raises:
        GeometryError: the slices do not form one regular, untilted grid.
    """
    orientation, pixel_spacing, positions = plane_values(folder, items)
    single_step, _ = single_slice_step(items[0][1])
    names = [path.name for path, _ in items]
    order, lps, step = slice_geometry(orientation, pixel_spacing, positions, names, folder, single_step)
    return [items[i] for i in order], lps, step


# ----------------------------------------------------------------------------- writing


class SliceGrid(NamedTuple):
    """The Image Plane attributes of a written series (LPS, mm).

    Attributes:
        orientation: ``(6,)`` ImageOrientationPatient (row direction, column direction).
        pixel_spacing: ``(2,)`` PixelSpacing (mm between rows, mm between columns).
        normal: ``(3,)`` unit slice normal (row direction x column direction).
        slice_spacing: distance between slice planes (mm, positive).
        positions: ``(N, 3)`` ImagePositionPatient of slice ``k`` (centre of its first pixel).
    """

    orientation: np.ndarray
    pixel_spacing: np.ndarray
    normal: np.ndarray
    slice_spacing: float
    positions: np.ndarray


def slice_grid(affine: np.ndarray, slices: int, folder: Path | str) -> SliceGrid:
    """The slice planes of a volume on the centre-anchored RAS ``affine`` ``(4, 4)`` with ``slices`` slices.

    Args:
        affine: ``(4, 4)`` RAS affine of index ``(column, row, slice)``.
        slices: number of slices (size of index axis 2).
        folder: the output folder, prefix of messages.

    Raises:
        OutputError: the first two axes are not perpendicular (a sheared in-plane grid), or the
            slice axis lies within the slice planes.
    """
    lps = ras_to_lps(affine)
    col_vec, row_vec, slice_vec = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    col_spacing, row_spacing = float(np.linalg.norm(col_vec)), float(np.linalg.norm(row_vec))
    row_dir, col_dir = col_vec / col_spacing, row_vec / row_spacing
    if abs(float(row_dir @ col_dir)) > 1e-4:
        raise file_error(
            OutputError,
            folder,
            "the image's first two axes are not perpendicular;"
            " DICOM slices cannot represent a sheared in-plane grid; write NIfTI instead",
        )
    normal = np.cross(row_dir, col_dir)
    slice_spacing = abs(float(slice_vec @ normal))
    if slice_spacing <= 0:
        raise file_error(
            OutputError,
            folder,
            "the slice axis lies within the slice planes; the affine cannot be written as DICOM",
        )
    positions = lps[:3, 3] + np.outer(np.arange(slices, dtype=np.float64), lps[:3, 2])
    return SliceGrid(
        orientation=np.concatenate([row_dir, col_dir]),
        pixel_spacing=np.array([row_spacing, col_spacing]),
        normal=normal,
        slice_spacing=slice_spacing,
        positions=positions,
    )
