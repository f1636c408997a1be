"""Geometric self-ensemble: average an upsampler over flips (and, in 2D, the transpose).

SR networks are trained on flipped and rotated patches but are not exactly equivariant; the
mean of ``T^-1 f(T x)`` over a group of transforms ``T`` is (Lim et al. 2017, "EDSR+"; Shocher
et al. 2018, ZSSR) a cheap, well-known gain of about 0.1-0.2 dB at ``len(group)`` times the
compute. Transforms must map the scale grid onto itself, so:

* every spatial axis may be flipped (the geometry of DESIGN §3 is symmetric under a flip:
  output pixel ``i`` of a flipped input is output pixel ``n*s - 1 - i``);
* in 2D the two axes are also swapped when their factors are equal (the dihedral group of
  8); in 3D only the 8 flips are used (48 rotations would cost too much for too little).

Each transform acts on the tile as a whole, so the ensemble keeps the receptive radius of the
network and runs tile-invariantly in the patch engine.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def transforms(scale: tuple[int, ...]) -> list[tuple[tuple[int, ...], bool]]:
    """The ``(flipped spatial axes, transposed)`` pairs of the ensemble for ``scale`` (index order)."""
    dims = len(scale)
    flips = [tuple(a for a, f in zip(range(dims), bits) if f) for bits in itertools.product((False, True), repeat=dims)]
    swaps = (False, True) if dims == 2 and scale[0] == scale[1] else (False,)
    return [(f, t) for t in swaps for f in flips]


class SelfEnsemble(nn.Module):
    """Mean of ``upsampler`` over the flips (and 2D transpose) that keep the scale grid.

    Args:
        upsampler: ``(B, C, *S) -> (B, C, *S*s)`` with ``scale`` and ``receptive_radius``.

    Shapes: same as ``upsampler``.
    """

    def __init__(self, upsampler: nn.Module) -> None:
        super().__init__()
        self.upsampler = upsampler
        self.scale = tuple(int(s) for s in upsampler.scale)
        self.spatial_dims = len(self.scale)
        self.in_channels = getattr(upsampler, "in_channels", None)
        self.out_channels = getattr(upsampler, "out_channels", None)
        self.receptive_radius = int(upsampler.receptive_radius)
        self.members = transforms(self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for flipped, transposed in self.members:
            dims = [a + 2 for a in flipped]
            y = torch.flip(x, dims) if dims else x
            y = y.transpose(-1, -2) if transposed else y
            y = self.upsampler(y)
            y = y.transpose(-1, -2) if transposed else y
            y = torch.flip(y, dims) if dims else y
            total = y if total is None else total + y
        return total / len(self.members)
