"""EDSR-style residual network, and the shared skeleton of all geo_med_sr SR networks.

Every network here predicts a residual on top of a geometry-correct linear interpolation::

    y = tail(upsample(body(head(x)) + head(x))) + interpolate_linear(x, scale)

with ``tail`` zero-initialised, so an untrained network returns exactly
:func:`~geo_med_sr.networks.upsample.interpolate_linear` and training starts at the baseline.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import torch
from monai.networks.blocks import Convolution
from torch import nn

from geo_med_sr.errors import ModelError
from geo_med_sr.networks.upsample import PerAxisSubpixelUpsample, interpolate_linear
from geo_med_sr.scale import as_scale


def check_int(name: str, value: object, minimum: int = 1, odd: bool = False) -> int:
    """Return ``value`` as an int after checking it is an integer ``>= minimum`` (odd if asked).

    Raises:
        ModelError: with a message naming the parameter.
    """
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum or (odd and value % 2 == 0):
        kind = "an odd integer" if odd else "an integer"
        raise ModelError(f"{name} must be {kind} >= {minimum}, got {value!r}")
    return int(value)


def check_float(name: str, value: object, minimum: float = 0.0) -> float:
    """Return ``value`` as a float after checking it is a finite real number ``> minimum``.

    Raises:
        ModelError: with a message naming the parameter.
    """
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= minimum:
        raise ModelError(f"{name} must be a finite number > {minimum}, got {value!r}")
    return float(value)


def make_conv(
    spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int, act: str | None = None
) -> Convolution:
    """A ``same``-padded MONAI convolution, plain (``act=None``) or followed by an activation.

    Shapes:
        ``(B, in_channels, *S)`` -> ``(B, out_channels, *S)``.
    """
    if act is None:
        return Convolution(spatial_dims, in_channels, out_channels, kernel_size=kernel_size, conv_only=True)
    return Convolution(spatial_dims, in_channels, out_channels, kernel_size=kernel_size, act=act, norm=None)


class ResidualSRNetwork(nn.Module):
    """Skeleton shared by the SR networks: head, body (subclass), long skip, upsampler, tail.

    Subclasses build ``self.body`` (a module mapping ``(B, features, *S)`` to the same shape),
    set ``name`` and implement :meth:`_body_radius`. The forward pass, receptive radius,
    configuration and input checks live here.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels; must equal ``in_channels`` (global residual).
        scale: one positive integer or one per spatial axis, e.g. ``(1, 1, 4)``.
        features: width of the feature maps.
        kernel_size: odd size of every convolution.

    Attributes:
        scale: per-axis integer factors.
        spatial_dims, in_channels, out_channels, features, kernel_size: as given.
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int | None,
        scale: int | Sequence[int],
        features: int,
        kernel_size: int,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3) or isinstance(spatial_dims, bool):
            raise ModelError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        self.spatial_dims = int(spatial_dims)
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = self.in_channels if out_channels is None else check_int("out_channels", out_channels)
        if self.out_channels != self.in_channels:
            raise ModelError(
                f"out_channels ({self.out_channels}) must equal in_channels ({self.in_channels}): the network "
                "adds its output to the interpolated input; leave out_channels unset"
            )
        self.scale = as_scale(scale, self.spatial_dims, exact=True)
        self.features = check_int("features", features)
        self.kernel_size = check_int("kernel_size", kernel_size, odd=True)

        self.head = make_conv(self.spatial_dims, self.in_channels, self.features, self.kernel_size)
        self.body: nn.Module = nn.Identity()
        self.upsample = PerAxisSubpixelUpsample(
            self.spatial_dims, self.features, self.features, self.scale, kernel_size=self.kernel_size
        )
        self.tail = make_conv(self.spatial_dims, self.features, self.out_channels, self.kernel_size)
        self.reset_tail()

    # -- subclass hooks ---------------------------------------------------------------------
    def _body_radius(self) -> int:
        """How far, in LR voxels, ``body`` spreads information."""
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able) that rebuild this network."""
        raise NotImplementedError

    # -- public API -------------------------------------------------------------------------
    def reset_tail(self) -> None:
        """Zero the last convolution so the network returns exactly the linear interpolation."""
        layer = self.tail.conv
        with torch.no_grad():
            layer.weight.zero_()
            if layer.bias is not None:
                layer.bias.zero_()

    @property
    def receptive_radius(self) -> int:
        """Upper bound, in LR voxels (per axis), of how far an output depends on the input.

        HR voxel ``j`` belongs to LR voxel ``j // s``; its value depends only on LR voxels
        within this distance (Chebyshev) of ``j // s``. Counted as: each LR-space convolution
        adds ``k // 2``, the body adds :meth:`_body_radius`, the HR-space tail convolution adds
        ``ceil((k // 2) / min(scale))``; the interpolation branch reaches 1 LR voxel and runs in
        parallel, so the total is ``max(network path, 1)``. Use it as the inference halo.
        """
        half = self.kernel_size // 2
        lr_path = half + self._body_radius() + half  # head, body, upsampler conv
        tail = math.ceil(half / min(self.scale))
        return max(lr_path + tail, 1)

    def config(self) -> dict[str, Any]:
        """``{"name": ..., "params": {...}}``; ``build_network(**net.config())`` rebuilds the network."""
        return {"name": self.name, "params": copy.deepcopy(self._params())}

    def _base_params(self) -> dict[str, Any]:
        return {
            "spatial_dims": self.spatial_dims,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "scale": list(self.scale),
            "features": self.features,
            "kernel_size": self.kernel_size,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve a batch.

        Args:
            x: ``(B, in_channels, H, W[, D])`` floating-point tensor.

        Returns:
            ``(B, out_channels, H*s_0, W*s_1[, D*s_2])``.
        """
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ModelError(
                f"{self.name} expects input of shape (B, {self.in_channels}, {self.spatial_dims} spatial axes), "
                f"got {tuple(x.shape)}"
            )
        features = self.head(x)
        features = self.body(features) + features
        residual = self.tail(self.upsample(features))
        return residual + interpolate_linear(x, self.scale)

    def extra_repr(self) -> str:
        return f"spatial_dims={self.spatial_dims}, scale={self.scale}, receptive_radius={self.receptive_radius}"


class EDSRBlock(nn.Module):
    """Residual block ``x + res_scale * conv(relu(conv(x)))`` without normalisation.

    Shapes:
        ``(B, features, *S)`` -> same.
    """

    def __init__(self, spatial_dims: int, features: int, kernel_size: int = 3, res_scale: float = 0.1) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = make_conv(spatial_dims, features, features, kernel_size, act="RELU")
        self.conv2 = make_conv(spatial_dims, features, features, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(self.conv1(x))


class EDSR(ResidualSRNetwork):
    """Enhanced Deep Residual network (Lim et al. 2017) with per-axis sub-pixel upsampling.

    ``head conv -> num_blocks x EDSRBlock -> body conv (+ long skip) -> PerAxisSubpixelUpsample
    -> tail conv``, added to ``interpolate_linear(x, scale)``. The tail is zero-initialised.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels; defaults to (and must equal) ``in_channels``.
        scale: one positive integer or one per axis, e.g. ``2``, ``(2, 1)``, ``(1, 1, 4)``.
        features: feature channels.
        num_blocks: residual blocks (``>= 0``).
        res_scale: multiplier of each block's residual branch.
        kernel_size: odd size of every convolution.

    Shapes:
        input ``(B, C, H, W[, D])`` -> output ``(B, C, H*s_0, W*s_1[, D*s_2])``.

    Example:
        >>> net = EDSR(2, 1, scale=2, features=8, num_blocks=2)
        >>> net(torch.zeros(1, 1, 5, 7)).shape
        torch.Size([1, 1, 10, 14])
    """

    name: ClassVar[str] = "edsr"

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int | None = None,
        scale: int | Sequence[int] = 2,
        features: int = 32,
        num_blocks: int = 8,
        res_scale: float = 0.1,
        kernel_size: int = 3,
    ) -> None:
        super().__init__(spatial_dims, in_channels, out_channels, scale, features, kernel_size)
        self.num_blocks = check_int("num_blocks", num_blocks, minimum=0)
        self.res_scale = check_float("res_scale", res_scale)
        blocks: list[nn.Module] = [
            EDSRBlock(self.spatial_dims, self.features, self.kernel_size, self.res_scale)
            for _ in range(self.num_blocks)
        ]
        blocks.append(make_conv(self.spatial_dims, self.features, self.features, self.kernel_size))
        self.body = nn.Sequential(*blocks)

    def _body_radius(self) -> int:
        half = self.kernel_size // 2
        return half * (2 * self.num_blocks + 1)

    def _params(self) -> dict[str, Any]:
        return {**self._base_params(), "num_blocks": self.num_blocks, "res_scale": self.res_scale}
