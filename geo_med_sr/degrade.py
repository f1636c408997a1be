"""Exact degradations with known geometry (used by the demo, tests and evaluation)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from .errors import ConfigError
from .geometry import as_scale, scale_affine
from .spatial import SpatialArray


def block_average_array(array: np.ndarray, factor: Sequence[int]) -> np.ndarray:
    """Mean over non-overlapping ``factor`` blocks of a ``(C, *S)`` array.

    Trailing voxels that do not fill a whole block are dropped, so the LR grid covers the
    first ``(S // factor) * factor`` voxels.

    Returns:
        float32 ``(C, *(S // factor))`` array.
    """
    factor = tuple(int(f) for f in factor)
    spatial = array.shape[1:]
    if len(factor) != len(spatial) or any(f < 1 for f in factor):
        raise ConfigError(f"block factor {factor} must be one whole number >= 1 per spatial axis {spatial}")
    out_shape = tuple(n // f for n, f in zip(spatial, factor))
    if any(n == 0 for n in out_shape):
        raise ConfigError(f"image of shape {spatial} is smaller than one block {factor}")
    crop = array[(slice(None),) + tuple(slice(0, n * f) for n, f in zip(out_shape, factor))].astype(np.float64)
    blocked_shape = (array.shape[0],) + tuple(v for n, f in zip(out_shape, factor) for v in (n, f))
    axes = tuple(range(2, 2 * len(factor) + 1, 2))
    return crop.reshape(blocked_shape).mean(axis=axes).astype(np.float32)


def block_average(image: SpatialArray, factor: int | Sequence[int]) -> SpatialArray:
    """Block-average ``image`` by ``factor`` per axis; the affine is the exact LR grid.

    The LR affine is ``geometry.scale_affine(affine, 1/factor)``, so upscaling it back by
    ``factor`` recovers the original affine exactly. An LR voxel is valid only when its whole
    block was valid.
    """
    factor = tuple(int(f) for f in as_scale(factor, image.spatial_dims))
    lr_array = block_average_array(image.array, factor)
    valid = None
    if image.valid is not None:
        valid = block_average_array(image.valid[np.newaxis].astype(np.float32), factor)[0] == 1.0
    return SpatialArray(
        lr_array, scale_affine(image.affine, [1.0 / f for f in factor]), copy.deepcopy(image.meta), valid
    )
