"""Data consistency: iterative back-projection so the output re-degraded equals the input.

``y <- y + step * U(x - D(y))`` for a fixed number of iterations, with ``D`` a degradation
model (:mod:`geo_med_sr.degrade`) and ``U`` geometry-correct linear interpolation.
The eigenvalues of ``D U`` lie in about ``[0.125, 1]`` (3D, x2), so ``step = 1.5`` converges
faster than 1 while staying stable (``|1 - step * mu| < 1``). Every
step is local, so the whole thing has a finite receptive radius and runs tile-invariantly in
the patch engine like any other upsampler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from geo_med_sr.degrade import BlockAverage, Degradation
from geo_med_sr.inference.classical import BSplineUpsampler
from geo_med_sr.networks.upsample import interpolate_linear

if TYPE_CHECKING:
    from geo_med_sr.inference.protocols import Upsampler

#: iterations used by ``bspline-ibp`` and ``--consistency``; the residual shrinks geometrically.
DEFAULT_ITERATIONS = 20
#: back-projection step size (over-relaxation).
STEP = 1.5


class BackProjection(nn.Module):
    """Wrap an upsampler with iterative back-projection onto the measured LR data.

    Args:
        upsampler: ``(B, C, *S) -> (B, C, *S*s)`` module with ``receptive_radius``.
        degradation: HR -> LR model whose ``scale`` matches the upsampler's.
        iterations: back-projection steps.
    """

    def __init__(self, upsampler: Upsampler, degradation: Degradation, iterations: int = DEFAULT_ITERATIONS) -> None:
        super().__init__()
        self.upsampler = upsampler
        self.degradation = degradation
        self.iterations = int(iterations)
        self.scale = tuple(degradation.scale)
        self.in_channels = upsampler.in_channels
        self.out_channels = upsampler.out_channels
        self.spatial_dims = degradation.spatial_dims

    @property
    def receptive_radii(self) -> tuple[int, ...]:
        """LR pixels of context per axis: the upsampler's (its ``receptive_radii`` when it has them) plus,
        per iteration, the degradation's reach along the axis and the interpolation's (1 LR pixel where
        the axis is upsampled; none where its factor is 1: linear interpolation by 1 is the identity)."""
        own = getattr(self.upsampler, "receptive_radii", None)
        base = tuple(own) if own is not None else (int(self.upsampler.receptive_radius),) * self.spatial_dims
        return tuple(
            int(r) + self.iterations * (d + (1 if s > 1 else 0))
            for r, d, s in zip(base, self.degradation.receptive_radii, self.scale)
        )

    @property
    def receptive_radius(self) -> int:
        """The largest of :attr:`receptive_radii` (one halo for every axis)."""
        return max(self.receptive_radii)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``y`` ``(B, C, *S*s)`` back-projected onto the measured ``x`` ``(B, C, *S)`` (:attr:`iterations` steps)."""
        for _ in range(self.iterations):
            y = y + STEP * interpolate_linear(x - self.degradation(y), self.scale)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x, self.upsampler(x))


class BSplineIBP(BackProjection):
    """Cubic B-spline followed by back-projection onto the block average of the output."""

    name = "bspline-ibp"

    def __init__(self, scale: int | Sequence[int]) -> None:
        bspline = BSplineUpsampler(scale)
        super().__init__(bspline, BlockAverage(bspline.scale, len(bspline.scale)))


#: back-projection steps after guided ``self``: on the stroke T2w (4 mm along x and along y, 800 steps) 5 and
#: 20 iterations gave the same PSNR to 0.001 dB, and fewer keep the engine's halo small.
GUIDED_ITERATIONS = 5


class GuidedBackProjection(BackProjection):
    """Back-projection of a guided upsampler's output onto the measured thick slices.

    The guide supplies the detail between the slices; the slice profile ``degradation`` (the one the
    network was trained with) says what each thick slice measured. The correction is the linear
    interpolation of the thick-slice residual, so where the guide's anatomy disagrees with what the
    target measured (a lesion seen by one contrast only) the measured mean wins.

    Args:
        upsampler: guided ``forward(x, guide) -> (B, C, *S*s)`` with ``receptive_radius`` and ``guide_channels``.
        degradation: HR -> LR slice profile whose ``scale`` matches the upsampler's.
        iterations: back-projection steps.

    Shapes:
        ``forward(x (B, C, *S), guide (B, G, *S*scale)) -> (B, C, *S*scale)``.
    """

    guided = True

    def __init__(self, upsampler: nn.Module, degradation: Degradation, iterations: int = GUIDED_ITERATIONS) -> None:
        super().__init__(upsampler, degradation, iterations)  # type: ignore[arg-type]
        self.guide_channels = int(upsampler.guide_channels)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Tile by tile through the batch (tiles are independent): the temporaries of the network's
        two plane orientations and of the projection are those of one tile at a time."""
        out = None
        for i in range(x.shape[0]):
            y = self.project(x[i : i + 1], self.upsampler(x[i : i + 1], guide[i : i + 1]))
            if out is None:
                out = y.new_empty((x.shape[0], *y.shape[1:]))
            out[i] = y[0]
            del y
        if out is None:
            raise ValueError("GuidedBackProjection needs at least one tile")
        return out
