"""Super-resolution networks built from ``monai.networks.blocks`` (2D/3D, per-axis integer scale).

Every network predicts a residual over :func:`interpolate_linear` with a zero-initialised last
layer, exposes ``scale``, ``spatial_dims``, ``in_channels``, ``out_channels``,
``receptive_radius`` (the inference halo, in LR voxels) and ``config()``; ``NETWORKS`` maps
names to classes and ``build_network(**net.config())`` rebuilds a network.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from geo_med_sr.errors import ModelError
from geo_med_sr.networks.edsr import EDSR, EDSRBlock, ResidualSRNetwork
from geo_med_sr.networks.guided import GuidedNet
from geo_med_sr.networks.guided_plane import GuidedPlaneNet
from geo_med_sr.networks.rcan import RCAB, RCAN, LocalChannelSELayer, ResidualGroup
from geo_med_sr.networks.upsample import PerAxisSubpixelUpsample, interpolate_linear, pixel_shuffle_nd
from geo_med_sr.registry import Registry

__all__ = [
    "EDSR",
    "NETWORKS",
    "RCAB",
    "RCAN",
    "EDSRBlock",
    "GuidedNet",
    "GuidedPlaneNet",
    "LocalChannelSELayer",
    "PerAxisSubpixelUpsample",
    "ResidualGroup",
    "ResidualSRNetwork",
    "build_network",
    "interpolate_linear",
    "pixel_shuffle_nd",
]

NETWORKS: Registry[type[ResidualSRNetwork]] = Registry("network", ModelError)
NETWORKS.add(EDSR.name, EDSR)
NETWORKS.add(RCAN.name, RCAN)
NETWORKS.add(GuidedNet.name, GuidedNet)
NETWORKS.add(GuidedPlaneNet.name, GuidedPlaneNet)


def build_network(name: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> ResidualSRNetwork:
    """Instantiate the registered network ``name``.

    Accepts parameters as a mapping, as keywords, or both, so ``build_network(**net.config())``
    and ``build_network("edsr", spatial_dims=2, in_channels=1, scale=2)`` both work.

    Args:
        name: registered network name (case-insensitive), e.g. ``"edsr"`` or ``"rcan"``.
        params: constructor arguments.
        **kwargs: more constructor arguments; a key may not appear in both.

    Returns:
        The network, freshly initialised (its output equals the linear interpolation).

    Raises:
        ModelError: unknown name (with the closest match), unknown, missing or invalid parameters.
    """
    cls = NETWORKS.get(name)
    if params is not None and not isinstance(params, Mapping):
        raise ModelError(f"params of network {name!r} must be a mapping, got {type(params).__name__}")
    merged = dict(params or {})
    both = sorted(set(merged) & set(kwargs))
    if both:
        raise ModelError(f"network {name!r}: parameters {both} given twice (in params and as keywords)")
    merged.update(kwargs)
    signature = inspect.signature(cls.__init__)
    accepted = [p for p in signature.parameters if p != "self"]
    unknown = sorted(set(merged) - set(accepted))
    if unknown:
        raise ModelError(f"network {name!r} has no parameter(s) {unknown}; accepted: {', '.join(accepted)}")
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.name != "self" and p.default is inspect.Parameter.empty and p.name not in merged
    ]
    if missing:
        raise ModelError(f"network {name!r} needs parameter(s) {missing}")
    return cls(**merged)
