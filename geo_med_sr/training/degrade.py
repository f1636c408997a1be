"""Degradation models (HR -> LR) that keep the exact geometry of DESIGN §3.

Each model is separable: along an axis with factor ``s`` the LR sample ``i`` is a weighted sum
of HR samples around the centre of its block, HR coordinate ``i*s + (s-1)/2``; the weights come
from integrating a 1D profile (box, Gaussian, rectangular slice profile) over each HR pixel.
The kernel is symmetric about the block centre, so no degradation shifts the image, and the
LR affine is ``geometry.scale_affine(hr_affine, 1/s)``.

Shapes: ``forward`` maps ``(B, C, *S_hr)`` to ``(B, C, *(S_hr // s))`` (trailing HR pixels
that do not fill a block are dropped first), with mirror padding at the borders.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..geometry import scale_affine
from ..registry import Registry
from ..spatial import SpatialArray

DEGRADATIONS: Registry[type[Degradation]] = Registry("degradation", ConfigError)


def _int_scale(scale: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    values = (scale,) * spatial_dims if isinstance(scale, (int, np.integer)) else tuple(scale)
    if len(values) != spatial_dims or any(int(v) != v or v < 1 for v in values):
        raise ConfigError(f"degradation scale must be {spatial_dims} whole numbers >= 1, got {values}")
    return tuple(int(v) for v in values)


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
    cdf = lambda v: 0.5 * (1 + np.vectorize(math.erf)(v / (sigma * math.sqrt(2))))  # noqa: E731
    w = cdf(t + 0.5) - cdf(t - 0.5)
    return w / w.sum()


def _point(s: int) -> np.ndarray:
    """Point sampling at the block centre (between two pixels for even ``s``: their mean)."""
    w = np.zeros(s)
    w[(s - 1) // 2] += 0.5
    w[s // 2] += 0.5
    return w


class Degradation(nn.Module):
    """Separable HR -> LR operator; subclasses build one weight vector per axis.

    Args:
        scale: factor per spatial axis (int or sequence).
        spatial_dims: 2 or 3.
    """

    name = ""

    def __init__(self, scale: int | Sequence[int], spatial_dims: int) -> None:
        super().__init__()
        self.spatial_dims = int(spatial_dims)
        self.scale = _int_scale(scale, self.spatial_dims)
        self.weights = [self._axis_weights(axis, s) for axis, s in enumerate(self.scale)]

    def _axis_weights(self, axis: int, s: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def receptive_radius(self) -> int:
        """LR pixels beyond its own block that an LR sample depends on."""
        return max(math.ceil(((len(w) - s) // 2) / s) for w, s in zip(self.weights, self.scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *S_hr)`` -> ``(B, C, *(S_hr // scale))``."""
        crop = tuple(slice(0, (n // s) * s) for n, s in zip(x.shape[2:], self.scale))
        x = x[(slice(None), slice(None)) + crop]
        for axis, (w, s) in enumerate(zip(self.weights, self.scale)):
            if s == 1 and len(w) == 1:
                continue
            x = _decimate(x, axis + 2, s, w)
        return x

    def apply(self, image: SpatialArray) -> SpatialArray:
        """Degrade a SpatialArray; the result has the exact LR affine (``scale_affine(A, 1/s)``)."""
        x = torch.from_numpy(np.ascontiguousarray(image.array, dtype=np.float32))[None]
        with torch.no_grad():
            lr = self(x)[0].numpy()
        valid = None
        if image.valid is not None:
            from ..degrade import block_average_array

            valid = block_average_array(image.valid[np.newaxis].astype(np.float32), self.scale)[0] == 1.0
        return SpatialArray(lr, scale_affine(image.affine, [1.0 / s for s in self.scale]), dict(image.meta), valid)


def _decimate(x: torch.Tensor, dim: int, s: int, weights: np.ndarray) -> torch.Tensor:
    """Strided 1D convolution along ``dim`` with mirror padding; keeps the block centres."""
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
