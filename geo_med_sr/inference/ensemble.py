"""Ensembles of an upsampler: the geometric self-ensemble and the through-plane plane ensemble.

:class:`SelfEnsemble`: average an upsampler over flips (and, in 2D, the transpose).

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

:class:`PlaneEnsemble`: a 2D network with scale ``(s, 1)`` applied to a 3D volume across its
thick axis, in the two plane orientations that contain that axis, averaged (SMORE-like
through-plane super-resolution; the bundled ``mri-throughplane-x*`` models and
``--method self`` on thick-sliced volumes run this way).

:class:`GuidedPlaneEnsemble`: the same for a guided 2D network
(:class:`~geo_med_sr.networks.guided_plane.GuidedPlaneNet`), with the guide's planes taken alike (guided MRI).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from geo_med_sr.errors import ModelError

if TYPE_CHECKING:
    from geo_med_sr.inference.protocols import Upsampler


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

    def __init__(self, upsampler: Upsampler) -> None:
        super().__init__()
        self.upsampler = upsampler
        self.scale = tuple(int(s) for s in upsampler.scale)
        self.spatial_dims = len(self.scale)
        self.in_channels = upsampler.in_channels
        self.out_channels = upsampler.out_channels
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


#: output pixels of one batch of planes through the 2D network of :class:`PlaneEnsemble` (bounds its feature maps:
#: about 64 feature channels x 4 bytes x a few live maps per pixel, a few hundred MB).
PLANE_CHUNK_PIXELS = 1 << 18
#: the same for :class:`GuidedPlaneEnsemble`, whose network also holds the guide, its detail and their features:
#: on one 84 x 84 x 62 tile (x4 along z) 1 << 17 peaked 130 MB below 1 << 18 (guided MRI's 2 GB bound).
GUIDED_PLANE_CHUNK_PIXELS = 1 << 17


class PlaneEnsemble(nn.Module):
    """Apply a 2D through-plane network to a 3D volume in two plane orientations and average.

    Args:
        net2d: 2D network with scale ``(s, 1)``: it upsamples axis 0 of an image, keeps axis 1.
        thick_axis: the 3D spatial axis (0, 1 or 2) to upsample by ``s``.

    The planes go through the 2D network in chunks of at most :data:`PLANE_CHUNK_PIXELS` output pixels, so
    memory does not grow with the tile (each plane is computed on its own, so the result does not depend on
    the chunking).

    Shapes: ``(B, C, X, Y, Z) -> (B, C, X', Y', Z')`` with only ``thick_axis`` scaled.
    """

    def __init__(self, net2d: nn.Module, thick_axis: int) -> None:
        super().__init__()
        self.net2d = net2d
        self.thick_axis = int(thick_axis)
        s = int(net2d.scale[0])
        self.scale = tuple(s if a == self.thick_axis else 1 for a in range(3))
        self.in_channels = self.out_channels = 1
        self.spatial_dims = 3
        self.receptive_radius = int(net2d.receptive_radius)

    def _one_orientation(self, x: torch.Tensor, in_plane: int, stacked: int) -> torch.Tensor:
        a, p, q = self.thick_axis + 2, in_plane + 2, stacked + 2
        planes = x.permute(0, 1, q, a, p)  # (B, C, Q, A, P)
        b, c, nq, na, npl = planes.shape
        flat = planes.reshape(b * c * nq, 1, na, npl)
        s = self.scale[self.thick_axis]
        # planes are independent: run them in chunks of at most PLANE_CHUNK_PIXELS output pixels, so the
        # network's feature maps stay bounded whatever the tile (one chunk = one batch of the 2D network)
        chunk = max(1, PLANE_CHUNK_PIXELS // max(1, na * s * npl))
        out = None
        for start in range(0, flat.shape[0], chunk):
            part = self.net2d(flat[start : start + chunk])
            if out is None:
                out = part.new_empty((flat.shape[0], *part.shape[1:]))
            out[start : start + len(part)] = part
        out = out.reshape(b, c, nq, out.shape[-2], npl)
        order = [0, 1, 0, 0, 0]
        order[q], order[a], order[p] = 2, 3, 4
        return out.permute(*order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, q = [ax for ax in range(3) if ax != self.thick_axis]
        return 0.5 * (self._one_orientation(x, p, q) + self._one_orientation(x, q, p))


def _planes(t: torch.Tensor, thick: int, in_plane: int, stacked: int) -> torch.Tensor:
    """The planes ``(B * Q, C, A, P)`` of a ``(B, C, X, Y, Z)`` tensor, batch-major then plane-major
    (``A`` = the thick axis, ``P`` = the in-plane axis, ``Q`` = the stacked axis)."""
    a, p, q = thick + 2, in_plane + 2, stacked + 2
    planes = t.permute(0, q, 1, a, p)  # (B, Q, C, A, P)
    return planes.reshape(planes.shape[0] * planes.shape[1], *planes.shape[2:])


class GuidedPlaneEnsemble(PlaneEnsemble):
    """Apply a :class:`GuidedPlaneNet` to a volume across its thick axis in two plane orientations and average.

    The same planes as :class:`~geo_med_sr.inference.ensemble.PlaneEnsemble` (through the 2D network in
    chunks of at most :data:`GUIDED_PLANE_CHUNK_PIXELS` output pixels; each
    plane is computed on its own, so the result does not depend on the chunking); the guide's planes
    are taken in exactly the same permutation as the target's.

    Args:
        net2d: the 2D guided network with scale ``(s, 1)`` (``forward(x, guide)``).
        thick_axis: the 3D spatial axis (0, 1 or 2) to upsample by ``s``.

    Attributes:
        scale: 3D, ``s`` on ``thick_axis``.
        receptive_radii: LR pixels of context per 3D axis (the 2D net's thick-axis radius on
            ``thick_axis``, its in-plane radius on the two others).
        receptive_radius: their maximum.
        guided: True (the resolver hands it the guides).

    Shapes:
        ``forward(x (B, C, X, Y, Z), guide (B, G, *XYZ*scale)) -> (B, C, *XYZ*scale)`` (every target
        channel with the same guide).
    """

    guided: ClassVar[bool] = True

    def __init__(self, net2d: nn.Module, thick_axis: int) -> None:
        if thick_axis not in (0, 1, 2):
            raise ModelError(f"thick_axis must be 0, 1 or 2, got {thick_axis!r}")
        super().__init__(net2d, thick_axis)  # net2d, thick_axis, scale, channels, spatial_dims
        self.guide_channels = int(net2d.guide_channels)
        thick_radius, plane_radius = (int(r) for r in net2d.receptive_radii)
        self.receptive_radii = tuple(thick_radius if a == self.thick_axis else plane_radius for a in range(3))
        self.receptive_radius = max(self.receptive_radii)

    def _one_orientation(self, x: torch.Tensor, guide: torch.Tensor, in_plane: int, stacked: int) -> torch.Tensor:
        b, c = x.shape[:2]
        flat = _planes(x, self.thick_axis, in_plane, stacked)  # (B*Q, C, A, P)
        nq = flat.shape[0] // b
        flat = flat.reshape(b * nq * c, 1, *flat.shape[2:])  # (B*Q*C, 1, A, P)
        guides = _planes(guide, self.thick_axis, in_plane, stacked)  # (B*Q, G, A*s, P)
        if c > 1:
            guides = guides.repeat_interleave(c, dim=0)
        na, npl = flat.shape[2:]
        s = self.scale[self.thick_axis]
        chunk = max(1, GUIDED_PLANE_CHUNK_PIXELS // max(1, na * s * npl))
        out = None
        for start in range(0, flat.shape[0], chunk):
            part = self.net2d(flat[start : start + chunk], guides[start : start + chunk])
            if out is None:
                out = part.new_empty((flat.shape[0], *part.shape[1:]))
            out[start : start + len(part)] = part
        out = out.reshape(b, nq, c, out.shape[-2], npl)  # (B, Q, C, A*s, P)
        a, p, q = self.thick_axis + 2, in_plane + 2, stacked + 2
        order = [0, 0, 0, 0, 0]
        order[1], order[q], order[a], order[p] = 2, 1, 3, 4
        return out.permute(*order)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` ``(B, C, X, Y, Z)`` along the thick axis with ``guide`` ``(B, G, *XYZ*scale)``."""
        expected = (x.shape[0], self.guide_channels, *(n * s for n, s in zip(x.shape[2:], self.scale)))
        if x.ndim != 5 or tuple(guide.shape) != expected:
            raise ModelError(
                f"the guided plane ensemble expects (B, C, X, Y, Z) and a guide {expected}, got "
                f"{tuple(x.shape)} and {tuple(guide.shape)}"
            )
        p, q = [ax for ax in range(3) if ax != self.thick_axis]
        return 0.5 * (self._one_orientation(x, guide, p, q) + self._one_orientation(x, guide, q, p))
