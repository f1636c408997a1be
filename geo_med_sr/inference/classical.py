"""Classical upsamplers on the exact SR grid, as modules the patch engine can run.

All three place output sample ``j`` at LR index ``(j + 0.5)/s - 0.5`` (``align_corners=False``),
work channel by channel and are :class:`~.protocols.Upsampler` s whose ``receptive_radius``
(LR pixels) makes tiling change nothing:

* ``nearest``: each LR voxel becomes an ``s``-block.
* ``linear``: separable (bi/tri)linear interpolation.
* ``bicubic``: Keys cubic convolution (``a = -0.5``).
* ``bspline``: cubic B-spline interpolation (Unser's prefilter as a truncated symmetric FIR
  ``sqrt(3) z^|k|`` with ``z = sqrt(3) - 2``; truncation error below 1e-8 of the signal).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geo_med_sr.networks.upsample import interpolate_linear
from geo_med_sr.scale import as_scale

_POLE = math.sqrt(3.0) - 2.0
_PREFILTER_TAPS = 16


class _Classical(nn.Module):
    """Shared state: per-axis integer scale (one factor: every axis), any channel count."""

    name = ""
    in_channels = None
    out_channels = None
    receptive_radius = 0

    def __init__(self, scale: int | Sequence[int]) -> None:
        super().__init__()
        self.scale = as_scale(scale, what="classical upsampling scale")
        self.spatial_dims = len(self.scale) if len(self.scale) > 1 else None

    def _per_axis(self, x: torch.Tensor) -> tuple[int, ...]:
        nd = x.ndim - 2
        return self.scale * nd if len(self.scale) == 1 else self.scale


class NearestUpsampler(_Classical):
    """Replicates each LR voxel into an ``s``-block: ``(B, C, *S) -> (B, C, *S*s)``."""

    name = "nearest"

    receptive_radius = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis, s in enumerate(self._per_axis(x)):
            if s > 1:
                x = torch.repeat_interleave(x, s, dim=axis + 2)
        return x


class LinearUpsampler(_Classical):
    """Separable linear interpolation with ``align_corners=False``."""

    name = "linear"

    receptive_radius = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return interpolate_linear(x, self._per_axis(x))


def _bspline3(t: torch.Tensor) -> torch.Tensor:
    """Cubic B-spline kernel evaluated at ``t``."""
    a = t.abs()
    return torch.where(
        a < 1, 2.0 / 3.0 - a**2 + a**3 / 2.0, torch.where(a < 2, (2.0 - a) ** 3 / 6.0, torch.zeros_like(a))
    )


def _keys_cubic(t: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel ("bicubic", ``a = -0.5``) evaluated at ``t``."""
    x = t.abs()
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


class _PhaseInterpolator(_Classical):
    """Separable interpolation with a 4-tap kernel: output sub-position ``k`` of LR voxel ``i``
    sits at ``i + (k+0.5)/s - 0.5``; subclasses choose the kernel and an optional prefilter."""

    receptive_radius = 3

    @staticmethod
    def kernel(t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _phase_kernels(self, s: int) -> torch.Tensor:
        """``(s, 1, 5)`` weights of LR taps ``-2..2`` for each of the ``s`` sub-positions."""
        phase = (torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5
        taps = torch.arange(-2, 3, dtype=torch.float64)
        return self.kernel(phase[:, None] - taps[None, :]).float().unsqueeze(1)

    def _prefilter(self, line: torch.Tensor) -> torch.Tensor:
        return line

    def _along(self, x: torch.Tensor, dim: int, s: int) -> torch.Tensor:
        moved = x.movedim(dim, -1)
        lead = moved.shape[:-1]
        line = self._prefilter(moved.reshape(-1, 1, moved.shape[-1]))
        out = F.conv1d(line, self._phase_kernels(s).to(line), padding=2)  # (N, s, L)
        out = out.transpose(1, 2).reshape(*lead, moved.shape[-1] * s)
        return out.movedim(-1, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis, s in enumerate(self._per_axis(x)):
            if s > 1:
                x = self._along(x, axis + 2, s)
        return x


class BicubicUpsampler(_PhaseInterpolator):
    """Keys cubic convolution (``a = -0.5``), the usual "bicubic"/"tricubic" baseline."""

    name = "bicubic"

    kernel = staticmethod(_keys_cubic)


class BSplineUpsampler(_PhaseInterpolator):
    """Cubic B-spline interpolation, separable, mirror boundaries through the engine's padding."""

    name = "bspline"

    receptive_radius = _PREFILTER_TAPS + 2
    kernel = staticmethod(_bspline3)

    def __init__(self, scale: int | Sequence[int]) -> None:
        super().__init__(scale)
        k = torch.arange(-_PREFILTER_TAPS, _PREFILTER_TAPS + 1, dtype=torch.float64)
        self.register_buffer("prefilter", (math.sqrt(3.0) * _POLE ** k.abs()).float().view(1, 1, -1), persistent=False)

    def _prefilter(self, line: torch.Tensor) -> torch.Tensor:
        return F.conv1d(line, self.prefilter.to(line), padding=_PREFILTER_TAPS)
