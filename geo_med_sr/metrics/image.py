"""Image-quality metrics and the regions they are computed on (numpy in, floats out).

The protocol of ``geo-med-sr evaluate`` (README): PSNR and SSIM (MONAI's ``PSNRMetric`` and
``compute_ssim_and_cs``, Gaussian window 11, sigma 1.5) on valid pixels only, with a border of
``scale`` HR pixels per side excluded (:func:`valid_region`), all channels together; images
are first cropped to a whole number of blocks (:func:`crop_to_blocks`). torch and MONAI are
imported only when a metric is computed, so the region helpers stay cheap to import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from geo_med_sr.errors import ConfigError, InputError
from geo_med_sr.spatial import SpatialArray

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5

T = TypeVar("T", np.ndarray, SpatialArray)


def block_slices(spatial: Sequence[int], factor: Sequence[int]) -> tuple[slice, ...]:
    """Slices keeping the first ``(n // f) * f`` pixels of each spatial axis (whole blocks)."""
    return tuple(slice(0, int(n) // int(f) * int(f)) for n, f in zip(spatial, factor))


def crop_to_blocks(image: T, factor: Sequence[int]) -> T:
    """``image`` cut to a whole number of ``factor`` blocks per axis (trailing pixels dropped).

    Args:
        image: a ``(C, *S)`` array (a view is returned) or a SpatialArray (a contiguous copy
            with its valid mask cropped alike; the affine is unchanged: pixel 0 stays).
        factor: block size per spatial axis.
    """
    if isinstance(image, SpatialArray):
        crop = block_slices(image.spatial_shape, factor)
        valid = None if image.valid is None else image.valid[crop]
        return SpatialArray(np.ascontiguousarray(image.array[(slice(None), *crop)]), image.affine, image.meta, valid)
    return image[(slice(None), *block_slices(image.shape[1:], factor))]


def valid_region(shape: Sequence[int], scale: Sequence[int], valid: np.ndarray | None) -> np.ndarray:
    """``shape``-shaped mask: the valid pixels minus a border of ``scale`` pixels per side."""
    region = np.zeros(tuple(shape), bool)
    region[tuple(slice(s, n - s) for n, s in zip(shape, scale))] = True
    return region if valid is None else region & valid


def data_range(reference: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Max - min of the reference's (valid) values: the peak of PSNR and the ``L`` of SSIM.

    0.0 for a constant image (or one with no valid value): PSNR and SSIM are undefined there, and
    :func:`psnr` refuses that peak rather than score against a made-up one.
    """
    values = reference if valid is None else reference[:, valid]
    if values.size == 0:
        return 0.0
    return float(values.max() - values.min())


def check_peak(peak: float) -> float:
    """``peak`` when it is a positive finite number; InputError otherwise (a constant reference).

    Raises:
        InputError: PSNR/SSIM undefined: the reference holds a single value on the scored pixels.
    """
    if not (np.isfinite(peak) and peak > 0):
        raise InputError(
            f"the reference holds a single value on the scored pixels (data range {peak:g}), so PSNR and SSIM "
            "are undefined; evaluate on an image with some contrast"
        )
    return float(peak)


def psnr(
    reference: np.ndarray, estimate: np.ndarray, region: np.ndarray | None = None, data_range: float | None = None
) -> float:
    """PSNR (dB) of ``estimate`` against ``reference`` via MONAI's ``PSNRMetric``.

    Args:
        reference, estimate: ``(C, *S)`` arrays (any shape when ``region`` is None).
        region: ``S``-shaped mask of the pixels to score (all channels), or None for all values.
        data_range: the peak; default max - min of the scored reference values.

    Returns:
        ``10 log10(peak^2 / MSE)`` in dB (``inf`` for identical images), float64 arithmetic.

    Raises:
        InputError: the peak is 0 (a constant reference) or not finite: PSNR is undefined.
    """
    ref = reference if region is None else reference[:, region]
    est = estimate if region is None else estimate[:, region]
    ref = ref.astype(np.float64).reshape(1, -1)
    est = est.astype(np.float64).reshape(1, -1)
    peak = check_peak(float(ref.max() - ref.min()) if data_range is None else float(data_range))
    import torch
    from monai.metrics import PSNRMetric

    return float(PSNRMetric(max_val=peak)(torch.from_numpy(est), torch.from_numpy(ref)).item())


def ssim(reference: np.ndarray, estimate: np.ndarray, region: np.ndarray, data_range: float) -> float:
    """Mean SSIM over the windows that lie wholly inside ``region``, all channels together.

    Args:
        reference, estimate: ``(C, *S)`` arrays, 2 or 3 spatial axes.
        region: ``S``-shaped mask; a window counts only when all its pixels are in it.
        data_range: the dynamic range of the values (SSIM's ``L``).

    Raises:
        ConfigError: no whole window fits in ``region``.
        InputError: ``data_range`` is 0 (a constant reference) or not finite: SSIM is undefined.
    """
    check_peak(data_range)
    import torch
    from monai.metrics.regression import compute_ssim_and_cs

    nd = reference.ndim - 1
    window = tuple(min(SSIM_WINDOW, n - (1 - n % 2)) for n in reference.shape[1:])
    ref = torch.from_numpy(reference.astype(np.float32))[None]  # (1, C, *S)
    est = torch.from_numpy(estimate.astype(np.float32))[None]
    ssim_map, _ = compute_ssim_and_cs(est, ref, nd, window, [SSIM_SIGMA] * nd, data_range=data_range)
    pool = torch.nn.functional.max_pool2d if nd == 2 else torch.nn.functional.max_pool3d
    outside = torch.from_numpy((~region).astype(np.float32))[None, None]
    inside = pool(outside, window, stride=1)[0, 0] == 0  # window centres whose window is all inside
    values = ssim_map[0][:, inside]
    if values.numel() == 0:
        raise ConfigError(f"image too small for SSIM with an {SSIM_WINDOW}-pixel window inside the valid region")
    return float(values.mean())
