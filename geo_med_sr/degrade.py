"""Degradations (HR -> LR) that keep the exact geometry of DESIGN §3: a numpy oracle and the
separable models the training, the evaluation and back-projection run in torch.

* :func:`block_average_array` / :func:`block_average`: the exact block average in numpy (the
  inverse geometry of upscaling; the demo and the tests build LR images with it, and it is the
  oracle the torch :class:`BlockAverage` is tested against).
* :class:`Degradation` models, registered in :data:`DEGRADATIONS` (``blockavg``, ``gaussian``,
  ``slice``): separable; along an axis with factor ``s`` the LR sample ``i`` is a weighted sum
  of HR samples around the centre of its block, HR coordinate ``i*s + (s-1)/2``; the weights
  come from integrating a 1D profile (box, Gaussian, rectangular slice profile) over each HR
  pixel. The kernel is symmetric about the block centre, so no degradation shifts the image,
  and the LR affine is ``geometry.scale_affine(hr_affine, 1/s)``.

A model's weights are numpy arrays computed when it is built, so this module (and the
registry of names the configs are validated against) imports torch only when a model runs.

Shapes: a model maps ``(B, C, *S_hr)`` to ``(B, C, *(S_hr // s))`` (trailing HR pixels that do
not fill a block are dropped first), with mirror padding at the borders.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from geo_med_sr.errors import ConfigError
from geo_med_sr.geometry import scale_affine
from geo_med_sr.metrics.image import block_slices, crop_to_blocks
from geo_med_sr.registry import Registry
from geo_med_sr.scale import as_scale
from geo_med_sr.spatial import SpatialArray

if TYPE_CHECKING:
    import torch

DEGRADATIONS: Registry[type[Degradation]] = Registry("degradation", ConfigError)


# ----------------------------------------------------------------------------- numpy oracle


def block_average_array(array: np.ndarray, factor: Sequence[int]) -> np.ndarray:
    """Mean over non-overlapping ``factor`` blocks of a ``(C, *S)`` array.

    Trailing voxels that do not fill a whole block are dropped, so the LR grid covers the
    first ``(S // factor) * factor`` voxels.

    Returns:
        float32 ``(C, *(S // factor))`` array.
    """
    spatial = array.shape[1:]
    factor = as_scale(tuple(factor), len(spatial), what="block factor")
    out_shape = tuple(n // f for n, f in zip(spatial, factor))
    if any(n == 0 for n in out_shape):
        raise ConfigError(f"image of shape {spatial} is smaller than one block {factor}")
    crop = crop_to_blocks(array, factor).astype(np.float64)
    blocked_shape = (array.shape[0],) + tuple(v for n, f in zip(out_shape, factor) for v in (n, f))
    axes = tuple(range(2, 2 * len(factor) + 1, 2))
    return crop.reshape(blocked_shape).mean(axis=axes).astype(np.float32)


def block_valid(valid: np.ndarray, factor: Sequence[int]) -> np.ndarray:
    """LR validity of an ``S``-shaped mask: an LR pixel is valid only when its whole block was."""
    return block_average_array(valid[np.newaxis].astype(np.float32), factor)[0] == 1.0


def block_average(image: SpatialArray, factor: int | Sequence[int]) -> SpatialArray:
    """Block-average ``image`` by ``factor`` per axis; the affine is the exact LR grid.

    The LR affine is ``geometry.scale_affine(affine, 1/factor)``, so upscaling it back by
    ``factor`` recovers the original affine exactly. An LR voxel is valid only when its whole
    block was valid.
    """
    factor = as_scale(factor, image.spatial_dims, what="block factor")
    lr_array = block_average_array(image.array, factor)
    valid = None if image.valid is None else block_valid(image.valid, factor)
    return SpatialArray(
        lr_array, scale_affine(image.affine, [1.0 / f for f in factor]), copy.deepcopy(image.meta), valid
    )


# ----------------------------------------------------------------------------- 1D profiles


def box_weights(s: int, width: float) -> np.ndarray:
    """Weights of HR pixels for a box profile of ``width`` HR pixels centred on a block of ``s``.

    Returns:
        ``(s + 2m,)`` float64 weights summing to 1 (``m`` extra pixels on each side).
    """
    m = max(0, math.ceil((width - s) / 2))
    t = np.arange(s + 2 * m) - (s + 2 * m - 1) / 2.0
    lo, hi = np.maximum(t - 0.5, -width / 2), np.minimum(t + 0.5, width / 2)
    w = np.clip(hi - lo, 0.0, None)
    return w / w.sum()


def gaussian_weights(s: int, sigma: float) -> np.ndarray:
    """Weights of HR pixels for a Gaussian profile (``sigma`` in HR pixels), integrated per pixel."""
    if sigma <= 0:
        return box_weights(s, 1.0) if s == 1 else _point(s)
    m = math.ceil(max(0.0, 4 * sigma - s / 2))
    t = np.arange(s + 2 * m) - (s + 2 * m - 1) / 2.0

    def cdf(v: np.ndarray) -> np.ndarray:
        return 0.5 * (1 + np.vectorize(math.erf)(v / (sigma * math.sqrt(2))))

    w = cdf(t + 0.5) - cdf(t - 0.5)
    return w / w.sum()


def _point(s: int) -> np.ndarray:
    """Point sampling at the block centre (between two pixels for even ``s``: their mean)."""
    w = np.zeros(s)
    w[(s - 1) // 2] += 0.5
    w[s // 2] += 0.5
    return w


# ----------------------------------------------------------------------------- models


class Degradation:
    """Separable HR -> LR operator; subclasses build one weight vector per axis.

    Calling it on a ``(B, C, *S_hr)`` tensor returns the ``(B, C, *(S_hr // scale))`` LR tensor
    (on the same device and dtype); it holds no tensors, so it runs wherever its input lives.

    Args:
        scale: factor per spatial axis (int or sequence).
        spatial_dims: 2 or 3.
    """

    name = ""

    def __init__(self, scale: int | Sequence[int], spatial_dims: int) -> None:
        self.spatial_dims = int(spatial_dims)
        self.scale = as_scale(scale, self.spatial_dims, what="degradation scale")
        self.weights = [self._axis_weights(axis, s) for axis, s in enumerate(self.scale)]

    def _axis_weights(self, axis: int, s: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def receptive_radii(self) -> tuple[int, ...]:
        """LR pixels beyond its own block that an LR sample depends on, per axis."""
        return tuple(math.ceil(((len(w) - s) // 2) / s) for w, s in zip(self.weights, self.scale))

    @property
    def receptive_radius(self) -> int:
        """The largest of :attr:`receptive_radii`."""
        return max(self.receptive_radii)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *S_hr)`` -> ``(B, C, *(S_hr // scale))``."""
        x = x[(slice(None), slice(None), *block_slices(x.shape[2:], self.scale))]
        for axis, (w, s) in enumerate(zip(self.weights, self.scale)):
            if s == 1 and len(w) == 1:
                continue
            x = _decimate(x, axis + 2, s, w)
        return x

    def apply(self, image: SpatialArray) -> SpatialArray:
        """Degrade a SpatialArray; the result has the exact LR affine (``scale_affine(A, 1/s)``)."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(image.array, dtype=np.float32))[None]
        with torch.no_grad():
            lr = self(x)[0].numpy()
        valid = None if image.valid is None else block_valid(image.valid, self.scale)
        return SpatialArray(lr, scale_affine(image.affine, [1.0 / s for s in self.scale]), dict(image.meta), valid)


def _decimate(x: torch.Tensor, dim: int, s: int, weights: np.ndarray) -> torch.Tensor:
    """Strided 1D convolution along ``dim`` with mirror padding; keeps the block centres."""
    import torch
    import torch.nn.functional as F

    moved = x.movedim(dim, -1)
    lead, n = moved.shape[:-1], moved.shape[-1]
    line = moved.reshape(-1, 1, n)
    pad = (len(weights) - s) // 2
    if pad:
        mode = "reflect" if pad < n else "replicate"
        line = F.pad(line, (pad, pad), mode=mode)
    kernel = torch.as_tensor(weights, dtype=line.dtype, device=line.device).view(1, 1, -1)
    out = F.conv1d(line, kernel, stride=s)
    return out.reshape(*lead, out.shape[-1]).movedim(-1, dim)


@DEGRADATIONS.register("blockavg")
class BlockAverage(Degradation):
    """Exact block average: the mean of each ``s``-block (the inverse geometry of upscaling)."""

    name = "blockavg"

    def _axis_weights(self, axis: int, s: int) -> np.ndarray:
        return np.full(s, 1.0 / s)


@DEGRADATIONS.register("gaussian")
class GaussianPSF(Degradation):
    """Gaussian point-spread function then decimation (a sensor MTF model).

    Args:
        sigma: per-axis standard deviation in HR pixels, or None for ``0.5 * s`` (a common
            sensor MTF of about 0.3 at the LR Nyquist frequency); axes with ``s = 1`` stay sharp.
    """

    name = "gaussian"

    def __init__(
        self, scale: int | Sequence[int], spatial_dims: int, sigma: float | Sequence[float] | None = None
    ) -> None:
        self.sigma_arg = sigma
        super().__init__(scale, spatial_dims)

    def _axis_weights(self, axis: int, s: int) -> np.ndarray:
        if s == 1:
            return np.ones(1)
        sigma = (
            0.5 * s
            if self.sigma_arg is None
            else (self.sigma_arg if np.isscalar(self.sigma_arg) else self.sigma_arg[axis])
        )
        return gaussian_weights(s, float(sigma))


@DEGRADATIONS.register("slice")
class SliceProfile(Degradation):
    """MRI slice profile along one axis: slices ``thickness`` thick every ``s`` HR pixels.

    In-plane axes must have ``s = 1``. ``thickness`` (HR pixels, default ``s``: contiguous
    slices) may exceed ``s`` (overlap) or fall short of it (a gap of ``s - thickness``).

    Args:
        scale: per-axis factors, e.g. ``(1, 1, 4)``.
        spatial_dims: 2 or 3.
        thickness: slice thickness in HR pixels (None = ``s``).
        shape: ``"rect"`` (ideal) or ``"gaussian"`` (FWHM = thickness).
    """

    name = "slice"

    def __init__(
        self, scale: int | Sequence[int], spatial_dims: int, thickness: float | None = None, shape: str = "rect"
    ) -> None:
        if shape not in ("rect", "gaussian"):
            raise ConfigError(f"slice profile shape must be 'rect' or 'gaussian', got {shape!r}")
        self.thickness, self.shape = thickness, shape
        super().__init__(scale, spatial_dims)
        if sum(s > 1 for s in self.scale) > 1:
            raise ConfigError(f"a slice profile degrades one axis only, got scale {self.scale}")

    def _axis_weights(self, axis: int, s: int) -> np.ndarray:
        if s == 1:
            return np.ones(1)
        width = float(self.thickness or s)
        if self.shape == "rect":
            return box_weights(s, width)
        return gaussian_weights(s, width / (2 * math.sqrt(2 * math.log(2))))


def build_degradation(name: str, scale: int | Sequence[int], spatial_dims: int, **params: object) -> Degradation:
    """A registered degradation by name (``blockavg``, ``gaussian``, ``slice``)."""
    try:
        return DEGRADATIONS.get(name)(scale, spatial_dims, **params)
    except TypeError as exc:
        raise ConfigError(f"invalid parameters for degradation {name!r}: {exc}") from exc
