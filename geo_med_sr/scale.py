"""Scale factors: the one validator every layer uses, and the parser of ``--scale`` text.

A scale holds one factor per spatial axis, in index order (fastest first: NIfTI i,j,k; DICOM
column,row,slice; GeoTIFF column,row); a factor ``s > 1`` makes that axis ``s`` times finer
(DESIGN §3). Super-resolution factors are whole numbers; the geometry functions also take
fractional factors (``1/b`` is the grid of a ``b``-block average). Every check raises
:class:`~geo_med_sr.errors.ScaleError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real

from geo_med_sr.errors import ScaleError, file_error

#: how to write a scale, for messages.
EXAMPLE = "e.g. 2 or 1,1,4"
#: the largest factor per axis ``--scale`` accepts: beyond it nothing is super-resolved, only
#: invented, and outputs grow by the factor's square or cube.
MAX_FACTOR = 16


def as_scale(
    value: object, ndim: int | None = None, *, whole: bool = True, exact: bool = False, what: str = "scale"
) -> tuple:
    """Validate ``value`` and return one factor per spatial axis.

    Args:
        value: a number, or a sequence of numbers (one per axis).
        ndim: number of spatial axes: a single factor is repeated ``ndim`` times and a sequence
            must have ``ndim`` entries. ``None`` keeps the factors as given.
        whole: factors must be whole numbers >= 1 (returned as ints); ``False`` accepts any
            positive finite number (returned as floats).
        exact: factors must be integers by type (no float such as ``2.0``, no bool, no
            string): the strict form network constructors use.
        what: how messages name the value (``"scale"``, ``"--scale '1,1,4'"``).

    Returns:
        ``tuple[int, ...]`` when ``whole``, else ``tuple[float, ...]``.

    Raises:
        ScaleError: a factor that is not a number, not whole (when ``whole``), not positive and
            finite, or a count of factors that does not match ``ndim``.
    """
    if _is_number(value):
        factors = [value] * (1 if ndim is None else ndim)
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        factors = list(value)
    else:
        raise ScaleError(f"{what} must be a number or a sequence of numbers ({EXAMPLE}), got {value!r}")
    if not factors:
        raise ScaleError(f"{what} is empty; use {EXAMPLE}")
    for factor in factors:
        if not _is_number(factor) or (exact and not isinstance(factor, Integral)):
            kind = "integers" if exact else "numbers"
            raise ScaleError(f"{what} factors must be {kind} ({EXAMPLE}), got {value!r}")
    if ndim is not None and len(factors) != ndim:
        raise ScaleError(
            f"{what} {tuple(factors)} has {len(factors)} factors but {ndim} spatial axes need {ndim} factors"
            " (one per axis, index order, fastest first)"
        )
    if whole:
        for factor in factors:
            if not (math.isfinite(factor) and factor == int(factor) and factor >= 1):
                raise ScaleError(f"{what}: factors must be whole numbers >= 1 (got {factor:g}); use {EXAMPLE}")
        return tuple(int(f) for f in factors)
    if not all(math.isfinite(f) and f > 0 for f in factors):
        raise ScaleError(f"{what} factors must be positive and finite, got {tuple(float(f) for f in factors)}")
    return tuple(float(f) for f in factors)


def parse_scale(text: str | int | Sequence[int]) -> tuple[int, ...]:
    """``"2"`` -> ``(2,)``; ``"1,1,4"`` -> ``(1, 1, 4)``; numbers and sequences pass through.

    Raises:
        ScaleError: an item that is not a number, a factor that is not a whole number >= 1, or one
            above :data:`MAX_FACTOR`.
    """
    what = f"--scale {text!r}"
    if isinstance(text, str):
        items: list[object] = []
        for item in (part.strip() for part in text.split(",")):
            try:
                items.append(float(item))
            except ValueError:
                raise ScaleError(f"{what}: {item!r} is not a number; use {EXAMPLE}") from None
        factors = as_scale(items, what=what)
    else:
        factors = as_scale(text, what=what)
    if max(factors) > MAX_FACTOR:
        raise ScaleError(
            f"{what}: factors above {MAX_FACTOR} per axis are refused (got {max(factors)}); super-resolution "
            f"cannot restore that much detail. Use at most {MAX_FACTOR}"
        )
    return factors


def broadcast(scale: Sequence[int], ndim: int) -> tuple[int, ...]:
    """One whole factor per spatial axis: a single factor applies to every axis.

    Raises:
        ScaleError: the count of factors is neither 1 nor ``ndim``.
    """
    return as_scale(scale[0] if len(scale) == 1 else tuple(scale), ndim, what="--scale")


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def for_input(scale: str | int | Sequence[int], ndim: int, path: object) -> tuple[int, ...]:
    """``scale`` (``--scale`` text or numbers) as one whole factor per spatial axis of the input
    at ``path``, which has ``ndim`` of them.

    Raises:
        ScaleError: as :func:`parse_scale` and :func:`broadcast`, the message naming ``path``.
    """
    try:
        return broadcast(parse_scale(scale), ndim)
    except ScaleError as exc:
        raise file_error(ScaleError, path, str(exc)) from exc


def for_shape(scale: Sequence[int], given: Sequence[int], shape: Sequence[int], path: object) -> tuple[int, ...]:
    """``scale`` (one factor per axis) fitted to an input of spatial ``shape``: an axis holding a
    single sample (a 2D image read as one slice, a one-slice DICOM series) is not scaled when
    the user gave one factor for every axis, and refused when a factor was given for it.

    Args:
        scale: one factor per spatial axis (:func:`for_input`).
        given: the factors as the user wrote them (one, or one per axis).
        shape: the input's spatial shape.
        path: names the input in messages.

    Raises:
        ScaleError: a factor > 1 given for an axis of length 1, or nothing left to scale.
    """
    out = list(scale)
    for axis, (factor, n) in enumerate(zip(scale, shape)):
        if n == 1 and factor > 1:
            if len(given) > 1:
                hint = ",".join(str(f if m > 1 else 1) for f, m in zip(scale, shape))
                raise file_error(
                    ScaleError,
                    path,
                    f"axis {axis} holds a single sample (a 2D image or one slice), so it cannot be upscaled by "
                    f"{factor}; give 1 for it, e.g. --scale {hint}",
                )
            out[axis] = 1
    if all(f == 1 for f in out) and any(f > 1 for f in scale):
        raise file_error(ScaleError, path, f"the input of shape {tuple(shape)} has no axis that can be upscaled")
    return tuple(out)


def factors_for_spacing(spacing: Sequence[float], target: float) -> tuple[int, ...]:
    """The whole factor per axis that brings the voxel spacing closest to ``target``.

    For each axis the factor ``k >= 1`` minimising ``|spacing / k - target|`` (a tie goes to the
    smaller factor), e.g. spacing ``(1.02, 1.02, 4.8)`` mm and target 1 mm -> ``(1, 1, 5)``.

    Args:
        spacing: voxel size per spatial axis (mm), index order.
        target: the wanted spacing (mm), > 0.

    Raises:
        ScaleError: a target or spacing that is not a positive finite number, or a factor above
            :data:`MAX_FACTOR`.
    """
    if not (isinstance(target, Real) and math.isfinite(target) and target > 0):
        raise ScaleError(f"--target-spacing must be a positive number of mm, got {target!r}")
    factors = []
    for d in spacing:
        if not (math.isfinite(d) and d > 0):
            raise ScaleError(f"the input's voxel spacing {tuple(spacing)} is not positive and finite")
        low = max(1, math.floor(d / target))
        k = min((low, low + 1), key=lambda c: (abs(d / c - target), c))
        if k > MAX_FACTOR:
            raise ScaleError(
                f"--target-spacing {target:g} mm needs a factor of {k} on a {d:g} mm axis; at most {MAX_FACTOR}"
            )
        factors.append(int(k))
    return tuple(factors)
