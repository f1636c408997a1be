"""Checks of a guide (an isotropic image of the same patient) against the thick target it guides.

* :func:`foreground`: the voxels of a volume that hold anatomy.
* :func:`check_finer`: the guide must resolve the target's thick axis better than the target.
* :func:`check_coverage`: the guide must cover (almost) all of the target's anatomy.
* :func:`check_same_study`: two DICOM series must belong to one patient and one study.

Each refusal is an :class:`~geo_med_sr.errors.InputError` (or a
:class:`~geo_med_sr.errors.ConfigError` for a bad option) with a one-line message that says
the numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from geo_med_sr import geometry
from geo_med_sr.errors import ConfigError, InputError

#: the least share of the target's anatomy that the guide must cover.
MIN_COVERAGE = 0.9
#: the least share a registration's overlap may have before it is refused as a failed alignment.
MIN_REGISTRATION_OVERLAP = 0.5
#: the foreground threshold: this share of the robust (2nd-98th percentile) value range above its low end.
ROBUST_RANGE_SHARE = 0.1
#: connected components smaller than this share of the thresholded voxels are speckle, dropped.
SPECKLE_SHARE = 0.01
#: DICOM tags that must agree between the target and its guide, with their keys in a JSON template.
STUDY_TAGS = {"PatientID": "00100020", "StudyInstanceUID": "0020000D"}


def foreground(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the voxels of a volume that hold anatomy.

    The threshold is 10 % of the robust value range above its low end,
    ``p2 + 0.1 * (p98 - p2)`` over the finite values (as FSL BET's first estimate), so it
    works for skull-stripped data, whose background is exactly 0 (``p2 = 0``: every voxel
    above a tenth of the bright tissue is anatomy, dark CSF included), and for unstripped
    data, whose background is noise well below a tenth of the tissue. Connected components
    (face connectivity) smaller than 1 % of the thresholded voxels are dropped as speckle and
    the holes enclosed by anatomy (e.g. dark ventricles) are filled. Otsu's threshold on the
    positive values was measured and rejected: on a skull-stripped T2w it splits tissue from
    bright CSF and keeps only 21 % of the brain (this rule keeps 95 %).

    Assumes that the anatomy fills more than 2 % of the volume.

    Args:
        values: ``S`` (2D or 3D) real values, spatial axes in index order; NaN/inf are background.

    Returns:
        ``S``-shaped bool mask (all False when no voxel rises above the threshold).
    """
    values = np.asarray(values)
    if values.ndim not in (2, 3):
        raise InputError(f"foreground needs a 2D or 3D volume, got an array of shape {values.shape}")
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=bool)
    low, high = np.percentile(values[finite], [2.0, 98.0])
    threshold = low + ROBUST_RANGE_SHARE * (high - low)
    with np.errstate(invalid="ignore"):
        mask = finite & (values > threshold)
    if not mask.any():
        return mask
    return _fill_holes(_drop_speckle(mask))


def _itk_mask(mask: np.ndarray) -> sitk.Image:
    """A uint8 ITK image of an ``S`` bool mask (unit spacing; only the topology matters)."""
    return sitk.GetImageFromArray(np.ascontiguousarray(mask.T, dtype=np.uint8))


def _from_itk_mask(image: sitk.Image) -> np.ndarray:
    """The ``S`` bool mask of a uint8 ITK image built by :func:`_itk_mask`."""
    return np.ascontiguousarray(sitk.GetArrayFromImage(image).T > 0)


def _drop_speckle(mask: np.ndarray) -> np.ndarray:
    """``mask`` without the connected components smaller than ``SPECKLE_SHARE`` of its voxels."""
    labels = sitk.ConnectedComponent(_itk_mask(mask))
    minimum = max(1, int(SPECKLE_SHARE * int(mask.sum())))
    return _from_itk_mask(sitk.RelabelComponent(labels, minimumObjectSize=minimum))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with the background regions that do not reach the volume's border filled."""
    return _from_itk_mask(sitk.BinaryFillhole(_itk_mask(mask), fullyConnected=False, foregroundValue=1))


def extent_along(affine: np.ndarray, direction: np.ndarray) -> float:
    """Extent (world units) of one voxel of the grid ``affine`` along the unit world ``direction``.

    ``sum_k |d . u_k| * spacing_k`` over the grid's index axes ``k`` (unit directions ``u_k``):
    the length of the voxel's projection onto ``d``.
    """
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    return float(np.sum(np.abs(d @ geometry.direction(affine)) * geometry.spacing(affine)))


def check_finer(target_affine: np.ndarray, thick_axis: int, guide_affine: np.ndarray) -> None:
    """Refuse a guide whose voxels are not finer than the target's slices along the thick axis.

    Args:
        target_affine: ``(4, 4)`` centre-anchored RAS affine of the (thick) target.
        thick_axis: the target's index axis with the thick spacing (0, 1 or 2).
        guide_affine: ``(4, 4)`` centre-anchored RAS affine of the guide.

    Raises:
        ConfigError: ``thick_axis`` is not an axis of the target.
        InputError: the guide's voxel extent along the target's thick-axis world direction
            (:func:`extent_along`) is not smaller than the target's spacing along that axis.
    """
    target_affine = np.asarray(target_affine, dtype=np.float64)
    n = target_affine.shape[0] - 1
    if not 0 <= int(thick_axis) < n:
        raise ConfigError(f"thick axis {thick_axis} is not an axis of a {n}D target (0 to {n - 1})")
    thick = float(geometry.spacing(target_affine)[thick_axis])
    extent = extent_along(guide_affine, geometry.direction(target_affine)[:, thick_axis])
    if extent >= thick:
        raise InputError(
            f"the guide is not finer than the target along its thick axis {thick_axis}: a guide voxel extends "
            f"{extent:.2f} mm along that direction and the target's slices are {thick:.2f} mm apart; "
            "use a guide with thinner voxels along the target's slice direction"
        )


def check_coverage(overlap: float, minimum: float = MIN_COVERAGE) -> None:
    """Refuse a guide that covers less than ``minimum`` of the target's anatomy.

    Args:
        overlap: share (0 to 1) of the target's foreground that maps inside the guide's grid
            (:attr:`Registration.overlap`).
        minimum: the least share accepted, in ``(0, 1]``.
    """
    if not 0.0 < minimum <= 1.0:
        raise ConfigError(f"minimum coverage {minimum} must lie in (0, 1]")
    if not overlap >= minimum:  # a NaN overlap is refused too
        raise InputError(
            f"the guide covers only {100.0 * overlap:.1f} % of the target's anatomy (at least {100.0 * minimum:.0f} % "
            "needed): its field of view misses part of the target; use a guide that covers the whole target"
        )


def _dicom_template(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON header (pydicom ``to_json_dict``) a DICOM series' ``meta`` keeps, None for other formats."""
    info = meta.get("dicom") if isinstance(meta, dict) else None
    template = info.get("template") if isinstance(info, dict) else None
    return template if isinstance(template, dict) else None


def _tag_value(template: dict[str, Any], key: str) -> str:
    """The text of one element of a JSON template (``""`` when absent or empty)."""
    element = template.get(key)
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]).strip() if values else ""


def check_same_study(target_meta: dict[str, Any], guide_meta: dict[str, Any], allow: bool) -> list[str]:
    """Check that a DICOM target and a DICOM guide belong to one patient and one study.

    A DICOM series' ``meta["dicom"]["template"]`` keeps its first slice's header as JSON,
    PatientID (0010,0020) and StudyInstanceUID (0020,000D) included. A tag is compared when
    both series hold a value for it (an empty or absent value proves nothing).

    Args:
        target_meta: the target's ``SpatialArray.meta`` (or its source's ``meta``).
        guide_meta: the guide's.
        allow: go on when they differ (``--allow-other-study``).

    Returns:
        The names of the differing tags (for provenance; ``[]`` when they agree, or when
        either input is not DICOM).

    Raises:
        InputError: a tag differs and ``allow`` is False; the message names the tags and values.
    """
    target, guide = _dicom_template(target_meta), _dicom_template(guide_meta)
    if target is None or guide is None:
        return []
    differing = []
    for name, key in STUDY_TAGS.items():
        a, b = _tag_value(target, key), _tag_value(guide, key)
        if a and b and a != b:
            differing.append((name, a, b))
    if differing and not allow:
        said = "; ".join(f"{name} {a!r} (target) vs {b!r} (guide)" for name, a, b in differing)
        raise InputError(
            f"the guide is not from the target's patient and study: {said}; pass --allow-other-study to go on"
        )
    return [name for name, _, _ in differing]
