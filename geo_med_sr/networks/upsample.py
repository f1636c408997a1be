"""Geometry-correct upsampling: per-axis pixel shuffle, a sub-pixel upsampler, linear interpolation.

All functions follow the package grid convention (DESIGN.md §3): upscaling by ``s`` along an
axis keeps the field of view, so HR voxel ``j`` has its centre at LR index coordinate
``(j + 0.5) / s - 0.5``. Along each axis HR voxels ``i*s .. i*s + s - 1`` lie inside LR voxel
``i``; nothing here shifts an image by ``(s - 1) / 2`` HR voxels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn

from geo_med_sr.errors import ModelError
from geo_med_sr.scale import as_scale

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def pixel_shuffle_nd(x: torch.Tensor, scale: int | Sequence[int]) -> torch.Tensor:
    """Rearrange channels into space, with an independent factor per spatial axis.

    Input channel ``c * P + k`` (``P = prod(scale)``, ``k`` the row-major index of the
    sub-position ``(k_0, ..., k_{n-1})``) of LR voxel ``i`` becomes output voxel
    ``i * scale + k`` of output channel ``c``. For equal factors in 2D this is exactly
    :func:`torch.nn.functional.pixel_shuffle`.

    Args:
        x: tensor of shape ``(B, C * prod(scale), *S)`` with any number of spatial axes.
        scale: one integer or one integer per spatial axis.

    Returns:
        Tensor of shape ``(B, C, *(S * scale))``.

    Raises:
        ModelError: the channel count is not divisible by ``prod(scale)``.
    """
    nd = x.ndim - 2
    if nd < 1:
        raise ModelError(
            f"pixel_shuffle_nd expects (B, C, *S) with at least one spatial axis, got shape {tuple(x.shape)}"
        )
    factors = as_scale(scale, nd, exact=True)
    n_sub = math.prod(factors)
    batch, channels, *size = x.shape
    if channels % n_sub:
        raise ModelError(
            f"pixel_shuffle_nd: {channels} channels are not divisible by prod(scale)={n_sub} for scale {list(factors)}"
        )
    out_channels = channels // n_sub
    x = x.reshape(batch, out_channels, *factors, *size)
    perm = [0, 1]
    for axis in range(nd):
        perm += [2 + nd + axis, 2 + axis]
    return x.permute(perm).reshape(batch, out_channels, *(n * f for n, f in zip(size, factors)))


def interpolate_linear(x: torch.Tensor, scale: int | Sequence[int]) -> torch.Tensor:
    """Linear / bilinear / trilinear upsampling on the field-of-view-preserving grid.

    Uses ``align_corners=False`` with the exact integer factors, so HR voxel ``j`` samples LR
    coordinate ``(j + 0.5) / s - 0.5`` (values at the borders are clamped to the edge voxel).

    Args:
        x: floating-point tensor of shape ``(B, C, H, W[, D])`` (1 to 3 spatial axes).
        scale: one integer or one integer per spatial axis.

    Returns:
        Tensor of shape ``(B, C, *(S * scale))``.

    Raises:
        ModelError: unsupported number of axes, non-float input or invalid scale.
    """
    nd = x.ndim - 2
    if nd not in _LINEAR_MODES:
        raise ModelError(f"interpolate_linear expects (B, C, *S) with 1 to 3 spatial axes, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ModelError(f"interpolate_linear needs a floating-point tensor, got {x.dtype}; convert with x.float()")
    factors = as_scale(scale, nd, exact=True)
    out = F.interpolate(
        x,
        scale_factor=tuple(float(f) for f in factors),
        mode=_LINEAR_MODES[nd],
        align_corners=False,
        recompute_scale_factor=False,
    )
    expected = tuple(n * f for n, f in zip(x.shape[2:], factors))
    if tuple(out.shape[2:]) != expected:  # guard against a change in PyTorch's size rounding
        raise ModelError(f"interpolate_linear produced size {tuple(out.shape[2:])}, expected {expected}")
    return out


class PerAxisSubpixelUpsample(nn.Module):
    """Sub-pixel convolution upsampler with a separate integer factor per axis.

    A convolution in LR space produces ``out_channels * prod(scale)`` channels which
    :func:`pixel_shuffle_nd` rearranges into an HR grid. Unlike MONAI's
    ``SubpixelUpsample(apply_pad_pool=True)`` no box filter is applied afterwards, so an edge
    at LR position ``p`` stays at HR position ``p * s``; unlike ``UpSample(mode="pixelshuffle")``
    anisotropic factors such as ``(1, 1, 4)`` or ``(2, 3)`` are supported.

    Args:
        spatial_dims: number of spatial axes (1, 2 or 3).
        in_channels: channels of the LR feature map.
        out_channels: channels of the HR output; defaults to ``in_channels``.
        scale: one integer or one integer per axis.
        kernel_size: odd size of the LR-space convolution.
        bias: whether the convolution has a bias.
        icnr: initialise so every sub-position starts with the same weights (ICNR, no
            checkerboard at initialisation) and a zero bias.

    Shapes:
        input ``(B, in_channels, *S)`` -> output ``(B, out_channels, *(S * scale))``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int | None = None,
        scale: int | Sequence[int] = 2,
        kernel_size: int = 3,
        bias: bool = True,
        icnr: bool = True,
    ) -> None:
        super().__init__()
        if spatial_dims not in (1, 2, 3):
            raise ModelError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
        if not _is_int(kernel_size) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ModelError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        self.spatial_dims = spatial_dims
        self.scale = as_scale(scale, spatial_dims, exact=True)
        self.in_channels = in_channels
        self.out_channels = in_channels if out_channels is None else out_channels
        self.kernel_size = int(kernel_size)
        self.conv = Convolution(
            spatial_dims,
            in_channels,
            self.out_channels * math.prod(self.scale),
            kernel_size=kernel_size,
            bias=bias,
            conv_only=True,
        )
        if icnr:
            self.reset_icnr()

    @property
    def layer(self) -> nn.Module:
        """The underlying ``torch.nn.ConvNd`` (weights ``(out_channels * prod(scale), in_channels, k, ...)``)."""
        return self.conv.conv

    def reset_icnr(self) -> None:
        """ICNR initialisation: the weights of sub-position ``k`` equal those of sub-position 0."""
        conv = self.layer
        n_sub = math.prod(self.scale)
        base = torch.empty(self.out_channels, *conv.weight.shape[1:], dtype=conv.weight.dtype)
        nn.init.kaiming_normal_(base)
        with torch.no_grad():
            conv.weight.copy_(base.repeat_interleave(n_sub, dim=0))
            if conv.bias is not None:
                conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` of shape ``(B, in_channels, *S)`` to ``(B, out_channels, *(S * scale))``."""
        return pixel_shuffle_nd(self.conv(x), self.scale)
