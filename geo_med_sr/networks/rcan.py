"""RCAN-style network: residual groups of residual channel-attention blocks.

The channel attention reuses MONAI's :class:`~monai.networks.blocks.ChannelSELayer` (its
squeeze/excitation MLP), but squeezes with a *local* average over an
``attention_window``-wide neighbourhood instead of the whole image. Global pooling would make
every output voxel depend on every input voxel, so no finite halo could make tiled inference
equal whole-image inference; the local window keeps :attr:`RCAN.receptive_radius` finite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from monai.networks.blocks import ChannelSELayer
from monai.networks.layers.factories import Pool
from torch import nn

from geo_med_sr.errors import ModelError
from geo_med_sr.networks.edsr import ResidualSRNetwork, check_float, check_int, make_conv


class LocalChannelSELayer(ChannelSELayer):
    """Squeeze-and-excitation channel attention with a local (sliding-window) squeeze.

    ``y = x * sigmoid(W2 relu(W1 avgpool_w(x)))`` evaluated at every voxel, where ``avgpool_w``
    averages a ``window``-wide cube (stride 1, borders averaged over in-image voxels only).
    The MLP ``W1, W2`` is MONAI's ``ChannelSELayer.fc``.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: channels ``C``.
        r: reduction ratio of the hidden layer (``C // r >= 1``).
        window: odd width of the averaging window, in voxels.

    Shapes:
        ``(B, C, *S)`` -> same.
    """

    def __init__(self, spatial_dims: int, in_channels: int, r: int = 2, window: int = 7) -> None:
        super().__init__(spatial_dims, in_channels, r=r)
        self.window = check_int("attention_window", window, odd=True)
        del self.avg_pool  # the global pool of the parent class is not used
        self.local_pool = Pool[Pool.AVG, spatial_dims](
            kernel_size=self.window, stride=1, padding=self.window // 2, count_include_pad=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = self.local_pool(x).movedim(1, -1)  # (B, *S, C)
        weights = self.fc(squeezed).movedim(-1, 1)  # (B, C, *S)
        return x * weights


class RCAB(nn.Module):
    """Residual channel-attention block ``x + res_scale * CA(conv(relu(conv(x))))``.

    Shapes:
        ``(B, features, *S)`` -> same.
    """

    def __init__(
        self,
        spatial_dims: int,
        features: int,
        kernel_size: int = 3,
        reduction: int = 8,
        attention_window: int = 7,
        res_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = make_conv(spatial_dims, features, features, kernel_size, act="RELU")
        self.conv2 = make_conv(spatial_dims, features, features, kernel_size)
        self.attention = LocalChannelSELayer(spatial_dims, features, r=reduction, window=attention_window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.attention(self.conv2(self.conv1(x)))


class ResidualGroup(nn.Module):
    """``num_blocks`` RCABs and a convolution, wrapped in a skip connection.

    Shapes:
        ``(B, features, *S)`` -> same.
    """

    def __init__(
        self,
        spatial_dims: int,
        features: int,
        num_blocks: int,
        kernel_size: int,
        reduction: int,
        attention_window: int,
        res_scale: float,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            RCAB(spatial_dims, features, kernel_size, reduction, attention_window, res_scale) for _ in range(num_blocks)
        ]
        layers.append(make_conv(spatial_dims, features, features, kernel_size))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class RCAN(ResidualSRNetwork):
    """Residual Channel Attention Network (Zhang et al. 2018) with per-axis sub-pixel upsampling.

    ``head conv -> num_groups x ResidualGroup -> body conv (+ long skip) ->
    PerAxisSubpixelUpsample -> tail conv``, added to ``interpolate_linear(x, scale)``; the tail
    is zero-initialised so the untrained network equals the interpolation.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels; defaults to (and must equal) ``in_channels``.
        scale: one positive integer or one per axis.
        features: feature channels.
        num_groups: residual groups (``>= 0``).
        num_blocks: RCABs per group (``>= 0``).
        reduction: channel-attention reduction ratio (``features // reduction >= 1``).
        attention_window: odd width, in LR voxels, of the channel-attention squeeze window.
        res_scale: multiplier of each RCAB's residual branch.
        kernel_size: odd size of every convolution.

    Shapes:
        input ``(B, C, H, W[, D])`` -> output ``(B, C, H*s_0, W*s_1[, D*s_2])``.
    """

    name: ClassVar[str] = "rcan"

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int | None = None,
        scale: int | Sequence[int] = 2,
        features: int = 32,
        num_groups: int = 2,
        num_blocks: int = 4,
        reduction: int = 8,
        attention_window: int = 7,
        res_scale: float = 1.0,
        kernel_size: int = 3,
    ) -> None:
        super().__init__(spatial_dims, in_channels, out_channels, scale, features, kernel_size)
        self.num_groups = check_int("num_groups", num_groups, minimum=0)
        self.num_blocks = check_int("num_blocks", num_blocks, minimum=0)
        self.reduction = check_int("reduction", reduction)
        if self.features // self.reduction < 1:
            raise ModelError(
                f"reduction ({self.reduction}) must be <= features ({self.features}) so the attention keeps a channel"
            )
        self.attention_window = check_int("attention_window", attention_window, odd=True)
        self.res_scale = check_float("res_scale", res_scale)
        groups: list[nn.Module] = [
            ResidualGroup(
                self.spatial_dims,
                self.features,
                self.num_blocks,
                self.kernel_size,
                self.reduction,
                self.attention_window,
                self.res_scale,
            )
            for _ in range(self.num_groups)
        ]
        groups.append(make_conv(self.spatial_dims, self.features, self.features, self.kernel_size))
        self.body = nn.Sequential(*groups)

    def _body_radius(self) -> int:
        half = self.kernel_size // 2
        block = 2 * half + self.attention_window // 2
        group = self.num_blocks * block + half
        return self.num_groups * group + half

    def _params(self) -> dict[str, Any]:
        return {
            **self._base_params(),
            "num_groups": self.num_groups,
            "num_blocks": self.num_blocks,
            "reduction": self.reduction,
            "attention_window": self.attention_window,
            "res_scale": self.res_scale,
        }
