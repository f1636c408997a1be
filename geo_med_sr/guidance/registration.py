"""Rigid registration of a guide (the patient's isotropic image) to a thick target, and the guide
resampled onto a grid of the target.

Both images keep their own grids: the registration only finds the world-space rigid map
between them. :class:`Registration.matrix` maps a point of the target's world (RAS mm) to the
point of the guide's world that shows the same anatomy; :func:`resample_guide` then
interpolates the original guide once, on any grid of the target's world.

ITK works in LPS with the array order reversed (numpy ``(Z, Y, X)``); the helpers below build
ITK images from our ``(X, Y, Z)`` index-order arrays and centre-anchored RAS affines, so an
ITK transform ``T`` (fixed LPS point -> moving LPS point) is ``F @ matrix @ F`` with
``F = diag(-1, -1, 1, 1)`` (:data:`geo_med_sr.geometry.LPS_TO_RAS`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from geo_med_sr import geometry
from geo_med_sr.errors import InputError
from geo_med_sr.guidance.checks import MIN_REGISTRATION_OVERLAP, foreground
from geo_med_sr.spatial import SpatialArray

#: the fixed-image mask: the target's foreground dilated by this much (mm).
MASK_DILATION_MM = 5.0
#: Mattes mutual information histogram bins.
HISTOGRAM_BINS = 32
#: multi-resolution levels: shrink factors of the target's grid and Gaussian sigmas (mm).
SHRINK_FACTORS = (4, 2, 1)
SMOOTHING_SIGMAS_MM = (2.0, 1.0, 0.0)
#: metric sample points per level (inside the mask), whatever the target's size.
SAMPLES_PER_LEVEL = 50_000
#: regular-step gradient descent: first step (~mm at the physical-shift scales), last step, iterations per level.
LEARNING_RATE = 1.0
MIN_STEP = 1e-3
MAX_ITERATIONS = 200
#: output slices per slab when the inside mask is built.
_SLAB = 16
#: ITK threads and work units of the registration: one, as the Mattes metric summed over several work units
#: is not reproducible bit for bit (the number of threads alone does not fix it; measured with ITK 5.4).
THREADS = 1


@dataclass(frozen=True, eq=False)
class Registration:
    """A rigid map between the target's and the guide's world coordinates.

    Attributes:
        matrix: ``(4, 4)`` float64; maps a target-world RAS point (mm) to the guide-world RAS
            point of the same anatomy.
        metric: final Mattes mutual information (ITK sign: lower is better); None for the identity.
        metric_start: the same metric at the identity (before registration).
        iterations: optimizer iterations over all resolution levels.
        stop: ITK's optimizer stop condition (finest level).
        converged: False when the finest level stopped on its iteration limit or the matrix is
            not finite.
        overlap: share (0 to 1) of the target's foreground (:func:`~geo_med_sr.guidance.checks.foreground`)
            that maps inside the guide's grid.
        centre: ``(3,)`` world RAS point (mm) of the target's centre, where :meth:`provenance`
            measures the translation.
    """

    matrix: np.ndarray
    metric: float | None
    metric_start: float | None
    iterations: int
    stop: str
    converged: bool
    overlap: float
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        matrix = np.array(self.matrix, dtype=np.float64)
        if matrix.shape != (4, 4):
            raise InputError(f"a registration matrix must be (4, 4), got shape {matrix.shape}")
        matrix.setflags(write=False)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "centre", tuple(float(v) for v in self.centre))

    def rotation_deg(self) -> float:
        """Rotation angle (degrees) of ``matrix[:3, :3]`` about its axis."""
        cos = (float(np.trace(self.matrix[:3, :3])) - 1.0) / 2.0
        return math.degrees(math.acos(min(1.0, max(-1.0, cos))))

    def translation_mm(self, point: Sequence[float]) -> float:
        """Displacement (mm) of the world RAS ``point`` ``(3,)`` by ``matrix``."""
        p = np.append(np.asarray(point, dtype=np.float64), 1.0)
        return float(np.linalg.norm((self.matrix @ p - p)[:3]))

    def provenance(self) -> dict[str, Any]:
        """JSON-able record: matrix (rounded to 1e-6), metrics, iterations, stop condition,
        convergence, overlap, rotation (degrees) and translation (mm) at the target's centre."""
        return {
            "matrix": np.round(self.matrix, 6).tolist(),
            "metric": self.metric,
            "metric_start": self.metric_start,
            "iterations": int(self.iterations),
            "stop": self.stop,
            "converged": bool(self.converged),
            "overlap": round(float(self.overlap), 6),
            "rotation_deg": round(self.rotation_deg(), 6),
            "translation_mm": round(self.translation_mm(self.centre), 6),
        }


def identity_registration() -> Registration:
    """The registration of a guide already in the target's world (``--guide-registered``)."""
    return Registration(
        matrix=np.eye(4),
        metric=None,
        metric_start=None,
        iterations=0,
        stop="guide registered",
        converged=True,
        overlap=1.0,
    )


# ----------------------------------------------------------------------------- ITK images


def _volume(image: SpatialArray, what: str) -> np.ndarray:
    """The ``(X, Y, Z)`` float32 values of a 3D image (the mean over its channels)."""
    if image.spatial_dims != 3:
        raise InputError(f"the {what} must be a 3D volume, got spatial shape {image.spatial_shape}")
    return np.asarray(image.array, dtype=np.float32).mean(axis=0, dtype=np.float32)


def _set_geometry(image: sitk.Image, affine: np.ndarray) -> sitk.Image:
    """Give ``image`` the grid of a centre-anchored RAS ``affine`` (ITK: LPS, origin = centre of voxel 0)."""
    lps = geometry.lps_to_ras(affine)
    image.SetSpacing([float(v) for v in geometry.spacing(lps)])
    image.SetDirection([float(v) for v in geometry.direction(lps).ravel()])
    image.SetOrigin([float(v) for v in geometry.origin(lps)])
    return image


def to_itk(values: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """An ITK image of ``values`` ``(X, Y, Z)`` (index order) on the grid of ``affine`` (RAS)."""
    return _set_geometry(sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(values))), affine)


def _blank(affine: np.ndarray, shape: Sequence[int]) -> sitk.Image:
    """A float32 ITK image of spatial ``shape`` (index order) on the grid of ``affine``: a reference grid."""
    return _set_geometry(sitk.Image([int(n) for n in shape], sitk.sitkFloat32), affine)


def _itk_transform(matrix: np.ndarray) -> sitk.AffineTransform:
    """The ITK transform (fixed LPS point -> moving LPS point) of a RAS ``matrix``."""
    lps = geometry.LPS_TO_RAS @ np.asarray(matrix, dtype=np.float64) @ geometry.LPS_TO_RAS
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in lps[:3, :3].ravel()])
    transform.SetTranslation([float(v) for v in lps[:3, 3]])
    return transform


def _euler_matrix(transform: sitk.Euler3DTransform) -> np.ndarray:
    """The RAS ``(4, 4)`` matrix of an ITK Euler transform (LPS): ``x' = R (x - c) + c + t``."""
    rotation = np.array(transform.GetMatrix(), dtype=np.float64).reshape(3, 3)
    centre = np.array(transform.GetCenter(), dtype=np.float64)
    lps = np.eye(4)
    lps[:3, :3] = rotation
    lps[:3, 3] = centre + np.array(transform.GetTranslation(), dtype=np.float64) - rotation @ centre
    return geometry.LPS_TO_RAS @ lps @ geometry.LPS_TO_RAS


# ----------------------------------------------------------------------------- registration


def inside_fraction(mask: np.ndarray, affine: np.ndarray, matrix: np.ndarray, guide: SpatialArray) -> float:
    """Share of the ``True`` voxels of ``mask`` (on the grid ``affine``) that ``matrix`` maps inside the
    guide's grid (continuous guide index within ``[-0.5, n - 0.5]`` on every axis); 0 for an empty mask."""
    total = int(mask.sum())
    if total == 0:
        return 0.0
    to_guide = np.linalg.inv(guide.affine) @ np.asarray(matrix, dtype=np.float64) @ np.asarray(affine)
    inside = 0
    for k in range(mask.shape[-1]):  # one slice at a time: bounded memory on a large grid
        i, j = np.nonzero(mask[..., k])
        index = np.stack([i, j, np.full(i.shape, k), np.ones(i.shape)]).astype(np.float64)
        g = (to_guide @ index)[:3]
        ok = np.all((g >= -0.5) & (g <= np.array(guide.spatial_shape)[:, None] - 0.5), axis=0)
        inside += int(ok.sum())
    return inside / total


def _fixed_mask(mask: np.ndarray, fixed: sitk.Image) -> sitk.Image:
    """The target's foreground dilated by ``MASK_DILATION_MM`` (an ellipsoid in voxels), as an ITK mask."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(mask), dtype=np.uint8))
    image.CopyInformation(fixed)
    radius = [int(round(MASK_DILATION_MM / s)) for s in fixed.GetSpacing()]
    if max(radius) == 0:
        return image
    dilate = sitk.BinaryDilateImageFilter()
    dilate.SetKernelType(sitk.sitkBall)
    dilate.SetKernelRadius(radius)
    dilate.SetForegroundValue(1)
    dilate.SetNumberOfThreads(THREADS)
    return dilate.Execute(image)


def _sampling(mask: np.ndarray) -> list[float]:
    """Per-level sampling percentages that give about ``SAMPLES_PER_LEVEL`` points inside the mask."""
    share = max(float(mask.mean()), 1e-6)
    out = []
    for shrink in SHRINK_FACTORS:
        voxels = np.prod([max(1, n // shrink) for n in mask.shape]) * share
        out.append(float(min(1.0, SAMPLES_PER_LEVEL / voxels)))
    return out


def _method(mask_image: sitk.Image, sampling: list[float], seed: int, iterations: int) -> sitk.ImageRegistrationMethod:
    """The configured ITK registration method (Mattes MI, regular-step descent, 3 levels)."""
    method = sitk.ImageRegistrationMethod()
    method.SetNumberOfThreads(THREADS)
    method.SetNumberOfWorkUnits(THREADS)
    method.MetricUseFixedImageGradientFilterOff()  # gradients at the sample points only: faster, as accurate
    method.MetricUseMovingImageGradientFilterOff()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
    method.SetMetricFixedMask(mask_image)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentagePerLevel(sampling, seed=int(seed) % (2**31 - 1) + 1)  # ITK: 0 = wall clock
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=LEARNING_RATE,
        minStep=MIN_STEP,
        numberOfIterations=int(iterations),
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK_FACTORS))
    method.SetSmoothingSigmasPerLevel(list(SMOOTHING_SIGMAS_MM))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def _metric_at(
    method: sitk.ImageRegistrationMethod, fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform
) -> float:
    """The method's metric (at its own sampling) for ``transform``."""
    method.SetInitialTransform(sitk.Transform(transform), inPlace=False)
    return float(method.MetricEvaluate(fixed, moving))


def _itk_problem(exc: Exception) -> str:
    """The first two sentences of an ITK exception's message, without its file, line and object address."""
    text = " ".join(str(exc).split())
    found = re.search(r"ITK ERROR: (\w+)\(0x[0-9a-fA-F]+\): (.*)", text)
    if found:
        text = f"{found.group(1)}: {found.group(2)}"
    return " ".join(re.split(r"(?<=\.) ", text)[:2])[:300].rstrip(". ")


def register_rigid(
    target: SpatialArray, guide: SpatialArray, *, seed: int = 0, iterations: int = MAX_ITERATIONS
) -> Registration:
    """Rigid (6-DOF) registration of ``guide`` to ``target`` in world space.

    Fixed image: the target on its own (anisotropic) grid; moving image: the guide. The
    metric is Mattes mutual information, sampled at random points (seeded) inside the
    target's foreground dilated by 5 mm, so only the target's field of view counts; three
    levels (shrink 4, 2, 1; smoothing 2, 1, 0 mm); regular-step gradient descent with scales
    from physical shift. The search starts at the identity in world space (series of one
    session share a frame of reference), rotating about the centre of the target's anatomy.
    One ITK thread and a fixed seed: the same inputs give the same matrix bit for bit.

    Args:
        target: ``(C, X, Y, Z)`` thick image (the channels are averaged).
        guide: ``(C', X', Y', Z')`` isotropic image of the same patient.
        seed: seed of the metric's random sample points.
        iterations: iteration limit per level.

    Returns:
        The :class:`Registration` (check it with :func:`check_registration`).

    Raises:
        InputError: an image is not 3D, the target shows no anatomy, or ITK fails (e.g. no
            sample point maps inside the guide).
    """
    target_values = _volume(target, "target")
    guide_values = _volume(guide, "guide")
    mask = foreground(target_values)
    if not mask.any():
        raise InputError(f"the target of shape {target.spatial_shape} shows no anatomy to register the guide to")
    fixed = to_itk(target_values, target.affine)
    moving = to_itk(guide_values, guide.affine)
    centre_index = np.append(np.argwhere(mask).mean(axis=0), 1.0)
    centre = (target.affine @ centre_index)[:3]

    transform = sitk.Euler3DTransform()
    transform.SetCenter([float(v) for v in (geometry.LPS_TO_RAS[:3, :3] @ centre)])
    method = _method(_fixed_mask(mask, fixed), _sampling(mask), seed, iterations)
    counter = [0]
    method.AddCommand(sitk.sitkIterationEvent, lambda: counter.__setitem__(0, counter[0] + 1))
    try:
        metric_start = _metric_at(method, fixed, moving, transform)
        method.SetInitialTransform(transform, inPlace=True)
        method.Execute(fixed, moving)
        stop = method.GetOptimizerStopConditionDescription()
        metric = _metric_at(method, fixed, moving, transform)
    except RuntimeError as exc:
        raise InputError(
            f"the rigid registration of the guide to the target failed in ITK: {_itk_problem(exc)}; check that the "
            "guide shows the target's anatomy in the same frame of reference (one session)"
        ) from None
    matrix = _euler_matrix(transform)
    finite = bool(np.all(np.isfinite(matrix))) and math.isfinite(metric)
    return Registration(
        matrix=matrix,
        metric=metric,
        metric_start=metric_start,
        iterations=counter[0],
        stop=stop,
        converged=finite and "Maximum number of iterations" not in stop,
        overlap=inside_fraction(mask, target.affine, matrix, guide) if finite else 0.0,
        centre=(float(centre[0]), float(centre[1]), float(centre[2])),
    )


# ----------------------------------------------------------------------------- resampling


def inside_mask(
    guide: SpatialArray, registration: Registration, affine: np.ndarray, shape: Sequence[int]
) -> np.ndarray:
    """``shape`` bool mask of the voxels of the grid ``affine`` whose mapped continuous guide index lies
    within ``[-0.5, n - 0.5]`` on every guide axis."""
    to_guide = np.linalg.inv(guide.affine) @ registration.matrix @ np.asarray(affine, dtype=np.float64)
    shape = tuple(int(n) for n in shape)
    limit = np.array(guide.spatial_shape, dtype=np.float64) - 0.5
    i = np.arange(shape[0], dtype=np.float64)[:, None, None]
    j = np.arange(shape[1], dtype=np.float64)[None, :, None]
    out = np.empty(shape, dtype=bool)
    for start in range(0, shape[2], _SLAB):  # a slab of slices at a time: bounded memory on a large grid
        k = np.arange(start, min(start + _SLAB, shape[2]), dtype=np.float64)[None, None, :]
        slab = np.ones((shape[0], shape[1], k.shape[2]), dtype=bool)
        for a in range(3):  # continuous guide index along axis a, affine in the output index
            g = to_guide[a, 0] * i + to_guide[a, 1] * j + (to_guide[a, 2] * k + to_guide[a, 3])
            slab &= (g >= -0.5) & (g <= limit[a])
        out[..., start : start + k.shape[2]] = slab
    return out


def resample_guide(
    guide: SpatialArray, registration: Registration, affine: np.ndarray, shape: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The guide on the grid (``affine``, ``shape``) of the target's world.

    One cubic B-spline interpolation of the original guide (channels averaged), clipped to
    the guide's value range so that no overshoot adds structure.

    Args:
        guide: ``(C, X', Y', Z')`` guide image.
        registration: map from the target's world to the guide's.
        affine: ``(4, 4)`` centre-anchored RAS affine of the output grid (target's world).
        shape: ``(X, Y, Z)`` spatial shape of the output grid.

    Returns:
        ``(values, inside)``: float32 ``shape`` values (0 outside the guide's grid) and a bool
        ``shape`` mask of the voxels inside the guide's grid (mapped continuous guide index
        within ``[-0.5, n - 0.5]`` on every axis).
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or guide.spatial_dims != 3:
        raise InputError(f"resample_guide needs a 3D guide and a 3D grid, got {guide.spatial_shape} and {shape}")
    values = _volume(guide, "guide")
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    resampler = sitk.ResampleImageFilter()
    resampler.SetReferenceImage(_blank(affine, shape))
    resampler.SetTransform(_itk_transform(registration.matrix))
    resampler.SetInterpolator(sitk.sitkBSpline)
    resampler.SetDefaultPixelValue(0.0)
    resampler.SetUseNearestNeighborExtrapolator(True)  # the inside mask below, not ITK, decides the border
    resampler.SetOutputPixelType(sitk.sitkFloat32)
    out = resampler.Execute(to_itk(values, guide.affine))
    result = np.ascontiguousarray(sitk.GetArrayViewFromImage(out).T)
    del out
    inside = inside_mask(guide, registration, affine, shape)
    np.clip(result, low, high, out=result)
    result[~inside] = 0.0
    return result, inside


def check_registration(reg: Registration) -> None:
    """Refuse a registration that did not converge, whose matrix is not finite or whose overlap
    (share of the target's anatomy inside the guide once aligned) is below 50 %."""
    metric = "none" if reg.metric is None else f"{reg.metric:.4f}"
    start = "none" if reg.metric_start is None else f"{reg.metric_start:.4f}"
    said = f"(stop: {' '.join(reg.stop.split()) or 'none'}; metric {metric}, at the identity {start})"
    if not np.all(np.isfinite(reg.matrix)):
        raise InputError(f"the registration of the guide to the target gave a matrix that is not finite {said}")
    if not reg.converged:
        raise InputError(
            f"the registration of the guide to the target did not converge after {reg.iterations} iterations {said}; "
            "check that both images show the same anatomy, or register them yourself and pass --guide-registered"
        )
    if not reg.overlap >= MIN_REGISTRATION_OVERLAP:
        raise InputError(
            f"the registered guide covers only {100.0 * reg.overlap:.1f} % of the target's anatomy (a failed "
            f"alignment below {100.0 * MIN_REGISTRATION_OVERLAP:.0f} %) {said}"
        )
