"""Bundled default models: which checkpoint serves which domain and scale.

Only entries whose weights file is installed are offered; ``make weights`` (re)trains them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from geo_med_sr.errors import ModelError


@dataclass(frozen=True)
class BundledModel:
    """A bundled checkpoint: ``domain`` is ``"medical"`` or ``"geo"``; ``scale`` per spatial axis."""

    name: str
    domain: str
    scale: tuple[int, ...]
    file: str
    description: str
    fast: bool = False

    @property
    def path(self) -> Path:
        return Path(str(resources.files("geo_med_sr.models.weights").joinpath(self.file)))


CATALOGUE = (
    BundledModel(
        "sat-edsr-x2", "geo", (2, 2), "sat_edsr_x2.safetensors", "2D EDSR x2 for satellite bands (band by band)"
    ),
    BundledModel(
        "sat-edsr-x2-fast",
        "geo",
        (2, 2),
        "sat_edsr_x2_fast.safetensors",
        "small 2D EDSR x2 for large scenes (--fast): 3.6x less compute, lower quality",
        fast=True,
    ),
    BundledModel(
        "sat-edsr-x4", "geo", (4, 4), "sat_edsr_x4.safetensors", "2D EDSR x4 for satellite bands (band by band)"
    ),
    BundledModel("mri-edsr3d-x2", "medical", (2, 2, 2), "mri_edsr3d_x2.safetensors", "3D EDSR x2 for MRI volumes"),
    BundledModel(
        "mri-throughplane-x2",
        "medical",
        (1, 1, 2),
        "mri_throughplane_x2.safetensors",
        "2D through-plane EDSR x2, applied across the thick axis in two plane orientations",
    ),
    BundledModel(
        "mri-throughplane-x3",
        "medical",
        (1, 1, 3),
        "mri_throughplane_x3.safetensors",
        "2D through-plane EDSR x3, applied across the thick axis in two plane orientations",
    ),
    BundledModel(
        "mri-throughplane-x4",
        "medical",
        (1, 1, 4),
        "mri_throughplane_x4.safetensors",
        "2D through-plane EDSR x4, applied across the thick axis in two plane orientations",
    ),
    BundledModel(
        "s2-guided-x2",
        "sharpen",
        (2, 2),
        "s2_guided_x2.safetensors",
        "guided net: Sentinel-2 20 m bands (B05 B06 B07 B8A B11 B12) x2 with the 10 m bands (sharpen --method model)",
    ),
    BundledModel(
        "s2-guided-x6",
        "sharpen",
        (6, 6),
        "s2_guided_x6.safetensors",
        "guided net, band by band: Sentinel-2 60 m bands x6 with the 10 m bands (sharpen --method model)",
    ),
    BundledModel(
        "pan-guided-x2",
        "sharpen",
        (2, 2),
        "pan_guided_x2.safetensors",
        "guided net, band by band: pan-sharpening x2, any multispectral bands (sharpen --pan --method model)",
    ),
    BundledModel(
        "pan-guided-x4",
        "sharpen",
        (4, 4),
        "pan_guided_x4.safetensors",
        "guided net, band by band: pan-sharpening x4, any multispectral bands (sharpen --pan --method model)",
    ),
)


def available() -> list[BundledModel]:
    """The catalogue entries whose weights are installed."""
    return [m for m in CATALOGUE if m.path.is_file()]


def find(name: str) -> BundledModel | None:
    """The installed bundled model called ``name``, or None."""
    return next((m for m in available() if m.name == name), None)


def _serves(catalogued: tuple[int, ...], scale: tuple[int, ...]) -> bool:
    """Exact match, or a through-plane model (one 3D axis scaled) for any thick axis."""
    if catalogued == scale:
        return True
    single_axis = len(scale) == 3 and sum(f > 1 for f in scale) == 1
    return single_axis and sorted(catalogued) == sorted(scale)


def default_for(domain: str, scale: tuple[int, ...], fast: bool = False) -> BundledModel:
    """The bundled model for ``domain`` and ``scale`` (the small one when ``fast``); ModelError
    listing what exists otherwise."""
    for model in available():
        if model.domain == domain and model.fast == fast and _serves(model.scale, tuple(scale)):
            return model
    offered = (
        ", ".join(f"{m.name} ({m.domain}, scale {m.scale}{', fast' if m.fast else ''})" for m in available())
        or "none installed"
    )
    kind = "fast bundled model" if fast else "bundled model"
    hint = "drop --fast, " if fast else ""
    raise ModelError(
        f"no {kind} for {domain} images at scale {tuple(scale)} (bundled: {offered}); "
        f"{hint}pass --model PATH.safetensors, or use --method self (trains on your image) or bspline-ibp"
    )


def start_for(domain: str, scale: tuple[int, ...]) -> BundledModel | None:
    """The bundled model ``--method self`` fine-tunes for ``domain`` and exactly ``scale`` (the
    first in the catalogue), or None (self-supervision then starts from random weights)."""
    return next((m for m in available() if m.domain == domain and m.scale == tuple(scale)), None)
