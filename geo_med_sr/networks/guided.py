"""Guided sharpening network: coarse bands restored with the detail of finer bands (MONAI blocks).

The network works on the output grid. Its inputs are the coarse target bands already sampled at
the output pixel centres (cubic convolution, the geometry-correct baseline) and the guide bands
(the 10 m bands, a panchromatic band, in-between bands sampled like the targets), all
normalised; it predicts a residual over the upsampled targets with a zero-initialised last
layer, so an untrained network returns exactly the cubic baseline (DSen2's design, built from
``monai.networks.blocks``)::

    y = up + tail(body(head([up, guides])))

``bandwise=True`` runs every target band separately with the same guides (one input band plus
the guides, one output), so one set of weights serves any number of multispectral bands (the
bundled pan-sharpening models).
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

from geo_med_sr.errors import ModelError
from geo_med_sr.networks.edsr import check_int


def residual_body(features: int, blocks: int) -> nn.Sequential:
    """``blocks`` 2D MONAI residual units of two 3x3 convolutions (ReLU, no norm) at ``features`` channels.

    Shapes: ``(B, features, W, H) -> (B, features, W, H)``.
    """
    return nn.Sequential(
        *[ResidualUnit(2, features, features, kernel_size=3, subunits=2, act="relu", norm=None) for _ in range(blocks)]
    )


def zero_conv(conv: Convolution) -> None:
    """Zero a MONAI convolution's weights and bias (a residual tail that starts at the identity)."""
    with torch.no_grad():
        conv.conv.weight.zero_()
        conv.conv.bias.zero_()


class GuidedNet(nn.Module):
    """Residual guided CNN on the output grid.

    Args:
        target_channels: bands restored together (ignored by the layers when ``bandwise``: each
            band is one input channel; kept to check the inputs).
        guide_channels: guide bands.
        ratio: the coarse/fine pixel-size ratio it was trained for (recorded, per axis).
        features: width of the feature maps.
        blocks: residual units (two 3x3 convolutions each).
        bandwise: restore each target band on its own (weights independent of the band count).

    Shapes:
        ``forward(up (B, T, W, H), guides (B, G, W, H)) -> (B, T, W, H)``.
    """

    name: ClassVar[str] = "guided"
    spatial_dims = 2

    def __init__(
        self,
        target_channels: int,
        guide_channels: int,
        ratio: int | list[int] = 2,
        features: int = 64,
        blocks: int = 6,
        bandwise: bool = False,
    ) -> None:
        super().__init__()
        self.target_channels = check_int("target_channels", target_channels)
        self.guide_channels = check_int("guide_channels", guide_channels)
        ratios = [ratio, ratio] if isinstance(ratio, int) else list(ratio)
        self.scale = tuple(check_int("ratio", r) for r in ratios)
        self.features = check_int("features", features)
        self.blocks = check_int("blocks", blocks, minimum=0)
        self.bandwise = bool(bandwise)
        channels = 1 if self.bandwise else self.target_channels
        self.in_channels = channels + self.guide_channels
        self.out_channels = channels
        self.head = Convolution(2, self.in_channels, self.features, kernel_size=3, act="relu", norm=None)
        self.body = residual_body(self.features, self.blocks)
        self.tail = Convolution(2, self.features, channels, kernel_size=3, conv_only=True)
        self.reset_tail()

    def reset_tail(self) -> None:
        """Zero the last convolution: the network then returns its ``up`` input exactly."""
        zero_conv(self.tail)

    @property
    def receptive_radius(self) -> int:
        """Output-grid pixels of context an output depends on (head + 2 per block + tail)."""
        return 2 + 2 * self.blocks

    def config(self) -> dict[str, Any]:
        """``{"name", "params"}``: ``build_network(**net.config())`` rebuilds it."""
        params = {
            "target_channels": self.target_channels,
            "guide_channels": self.guide_channels,
            "ratio": list(self.scale),
            "features": self.features,
            "blocks": self.blocks,
            "bandwise": self.bandwise,
        }
        return {"name": self.name, "params": copy.deepcopy(params)}

    def forward(self, up: torch.Tensor, guides: torch.Tensor) -> torch.Tensor:
        """Restore ``up`` ``(B, T, W, H)`` with ``guides`` ``(B, G, W, H)`` (normalised values)."""
        if up.ndim != 4 or guides.ndim != 4 or up.shape[2:] != guides.shape[2:] or up.shape[0] != guides.shape[0]:
            raise ModelError(
                f"guided network inputs must be (B, T, W, H) and (B, G, W, H), got {up.shape}, {guides.shape}"
            )
        if guides.shape[1] != self.guide_channels or (not self.bandwise and up.shape[1] != self.target_channels):
            raise ModelError(
                f"this guided network takes {'any number of' if self.bandwise else self.target_channels} target "
                f"bands and {self.guide_channels} guide bands, got {up.shape[1]} and {guides.shape[1]}"
            )
        if not self.bandwise:
            return up + self.tail(self.body(self.head(torch.cat([up, guides], dim=1))))
        b, t = up.shape[:2]
        flat = up.reshape(b * t, 1, *up.shape[2:])
        rep = guides.repeat_interleave(t, dim=0)
        out = flat + self.tail(self.body(self.head(torch.cat([flat, rep], dim=1))))
        return out.reshape(up.shape)
