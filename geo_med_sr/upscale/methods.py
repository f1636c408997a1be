"""Which upsampler runs on an input, decided once: :func:`resolve_method` -> :class:`Method`.

A :class:`Method` says everything about *what* runs before anything runs: the kind
(``classical``, ``model`` or ``self``), the network configuration and the weights file with its
SHA-256, the normaliser the upsampler is fed, the scale, and how the network is applied (the
two-orientation plane ensemble for a 2D through-plane network on a thick-sliced volume, the
geometric self-ensemble, back-projection). It is computed once per input and passed down:
:func:`geo_med_sr.upscale.pipeline.super_resolve`, the batch request fingerprint
(:func:`geo_med_sr.upscale.request.request_for`), :func:`geo_med_sr.upscale.evaluate.evaluate` and the
self-supervised training all take it instead of deciding again.

:func:`resolve_method` imports no torch (checkpoint configurations are read from their
safetensors header), so a batch worker that only skips up-to-date outputs stays light;
:func:`build_upsampler` turns a Method into the module the engine runs.

:data:`METHODS` (the registry of method names, from which the configuration validation and the
command-line choices are derived) lives in the torch-free :mod:`geo_med_sr.upscale.registry`; it is
re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from geo_med_sr.digest import sha256_file
from geo_med_sr.errors import ConfigError, ModelError
from geo_med_sr.models import bundled
from geo_med_sr.models.checkpoint import model_path, read_config
from geo_med_sr.upscale.registry import CLASSICAL, METHODS, MODEL, SELF, MethodSpec, learned_methods

if TYPE_CHECKING:
    import numpy as np

    from geo_med_sr.inference.protocols import Source, Upsampler
    from geo_med_sr.normalize import Normalizer
    from geo_med_sr.upscale.config import SRConfig

__all__ = [
    "CLASSICAL",
    "IDENTITY",
    "METHODS",
    "MODEL",
    "SELF",
    "SELF_THROUGH_PLANE",
    "SELF_ZERO_SHOT",
    "Method",
    "MethodSpec",
    "build_upsampler",
    "learned_methods",
    "resolve_method",
]

#: network trained by ``--method self``: through-plane (2D, in-plane slices), and zero-shot from
#: random init in 2D / 3D (measured choices, see training/selfsup.py).
SELF_THROUGH_PLANE = {"features": 32, "num_blocks": 4}
SELF_ZERO_SHOT = {2: {"features": 32, "num_blocks": 4}, 3: {"features": 16, "num_blocks": 2}}
#: the normaliser of classical methods: interpolation is linear in the values.
IDENTITY = {"name": "none", "params": {}}


@dataclass(frozen=True)
class Method:
    """What runs on one input (JSON-able fields; no tensors).

    Attributes:
        name: the method's registered name (``"model"``, ``"self"``, ``"bicubic"``, ...).
        kind: ``"classical"``, ``"model"`` or ``"self"``.
        scale: integer factor per spatial axis (index order).
        domain: ``"medical"`` or ``"geo"``.
        normalize: ``{"name", "params"}`` of the normaliser the upsampler is fed: the one a
            checkpoint was trained with, the configured one for ``self``, identity for classical.
        model: ``model``: the bundled name or the ``--model`` value.
        model_source: ``"given"``, ``"bundled default"`` or ``"bundled fast default"``.
        weights: the checkpoint file (``model``), or the bundled weights ``self`` fine-tunes.
        weights_sha256: SHA-256 of ``weights`` for ``model`` (None otherwise).
        network: ``{"name", "params"}`` of the network that runs (``model``: from the
            checkpoint; ``self``: the one trained).
        in_channels: the network's input channels (1: a multiband image runs band by band).
        through_plane_axis: a 2D ``(s, 1)`` network runs across this axis of a 3D volume in the
            two-orientation plane ensemble (None: the network runs as it is).
        budget: ``self``: training seconds instead of steps (None: train ``steps``).
        steps: ``self``: training steps (reproducible; None without a budget: the protocol's default,
            :data:`geo_med_sr.training.selfsup.DEFAULT_STEPS`).
        protocol: ``self``: ``"through-plane"`` or ``"zero-shot"``.
        start: ``self``: the bundled model fine-tuned (None: random initialisation).
        ensemble: average over the geometric self-ensemble.
        consistency: degradation name of the back-projection run after the method (None: off).
        bands: the GeoTIFF bands read (1-based), None for all.
        guided: ``self`` through-plane with a guide volume (``--guide``): the guided network is trained
            and run with the guide channels (:mod:`geo_med_sr.upscale.guided`).
    """

    name: str
    kind: str
    scale: tuple[int, ...]
    domain: str
    normalize: dict[str, Any] = field(default_factory=lambda: dict(IDENTITY))
    model: str | None = None
    model_source: str | None = None
    weights: Path | None = None
    weights_sha256: str | None = None
    network: dict[str, Any] | None = None
    in_channels: int | None = None
    through_plane_axis: int | None = None
    budget: float | None = None
    steps: int | None = None
    protocol: str | None = None
    start: str | None = None
    ensemble: bool = False
    consistency: str | None = None
    bands: tuple[int, ...] | None = None
    guided: bool = False

    @property
    def spatial_dims(self) -> int:
        """Spatial axes of the images the method runs on."""
        return len(self.scale)


class _Common(TypedDict):
    """The :class:`Method` fields every kind sets (typed keyword arguments)."""

    name: str
    kind: str
    scale: tuple[int, ...]
    domain: str
    ensemble: bool
    consistency: str | None
    bands: tuple[int, ...] | None


class _CheckpointFields(TypedDict):
    """The :class:`Method` fields of ``model``: the checkpoint and how it runs."""

    normalize: dict[str, Any]
    model: str
    model_source: str
    weights: Path
    weights_sha256: str
    network: dict[str, Any]
    in_channels: int | None
    through_plane_axis: int | None


class _SelfFields(TypedDict, total=False):
    """The :class:`Method` fields of ``self`` (through-plane and zero-shot set different ones)."""

    protocol: str
    network: dict[str, Any]
    in_channels: int
    through_plane_axis: int
    weights: Path | None
    start: str | None
    budget: float | None
    steps: int | None


def resolve_method(
    config: SRConfig, *, domain: str, scale: Sequence[int], bands: Sequence[int] | None = None
) -> Method:
    """Decide what runs on an input of ``domain`` at ``scale`` with the settings ``config``.

    Args:
        config: the model and normalisation settings (``config.model``, ``config.normalize``).
        domain: ``"medical"`` or ``"geo"`` (the input adapter's); picks the bundled models.
        scale: one whole factor per spatial axis of the input (already broadcast).
        bands: the GeoTIFF band selection, recorded in the Method.

    Raises:
        ConfigError: an unknown method name.
        ModelError: no bundled model for the domain and scale, an unusable ``--model``, or a
            checkpoint whose scale or number of axes does not fit the input.
    """
    spec = METHODS.get(config.model.method)
    common: _Common = {
        "name": config.model.method,
        "kind": spec.kind,
        "scale": tuple(int(s) for s in scale),
        "domain": domain,
        "ensemble": bool(config.model.ensemble),
        "consistency": config.model.degradation if config.model.consistency else None,
        "bands": None if bands is None else tuple(int(b) for b in bands),
    }
    if spec.kind == CLASSICAL:
        return Method(**common)
    configured = {"name": config.normalize.name, "params": dict(config.normalize.params)}
    if spec.kind == SELF:
        return Method(
            **common,
            normalize=configured,
            **_self_training(common["scale"], domain, config.model.budget, config.model.steps),
        )
    return Method(**common, **_checkpoint(config, domain, common["scale"], configured))


def _checkpoint(config: SRConfig, domain: str, scale: tuple[int, ...], configured: dict[str, Any]) -> _CheckpointFields:
    """``model``: the checkpoint (given or bundled default), its configuration and how it runs."""
    name, source = config.model.name, "given"
    if not name:
        fast = bool(config.model.fast)
        name, source = (
            bundled.default_for(domain, scale, fast=fast).name,
            "bundled fast default" if fast else "bundled default",
        )
    path = model_path(name)
    info = read_config(path)
    net_scale, net_dims = tuple(int(s) for s in info.get("scale", ())), info.get("spatial_dims")
    axis = _through_plane_axis(scale, net_scale, net_dims)
    effective = tuple(net_scale[0] if a == axis else 1 for a in range(3)) if axis is not None else net_scale
    if effective and effective != scale:
        raise ModelError(f"model {name} upsamples by {effective} but --scale asks for {scale}")
    dims = 3 if axis is not None else net_dims
    if dims is not None and dims != len(scale):
        raise ModelError(f"model {name} is {dims}D but the image has {len(scale)} spatial axes")
    trained = info.get("extra", {}).get("normalize")
    normalize = trained if isinstance(trained, dict) and "name" in trained else configured
    return {
        "normalize": {"name": normalize["name"], "params": dict(normalize.get("params", {}))},
        "model": str(name),
        "model_source": source,
        "weights": path,
        "weights_sha256": sha256_file(path),
        "network": info["network"],
        "in_channels": info.get("in_channels"),
        "through_plane_axis": axis,
    }


def _through_plane_axis(scale: tuple[int, ...], net_scale: tuple[int, ...], net_dims: int | None) -> int | None:
    """The thick axis when a 2D ``(s, 1)`` network serves a 3D volume scaled along one axis."""
    thick = [a for a, f in enumerate(scale) if f > 1]
    if len(scale) == 3 and net_dims == 2 and len(thick) == 1 and net_scale == (scale[thick[0]], 1):
        return thick[0]
    return None


def _self_training(scale: tuple[int, ...], domain: str, budget: float | None, steps: int | None) -> _SelfFields:
    """``self``: the protocol, the network trained and where it starts from."""
    thick = [a for a, s in enumerate(scale) if s > 1]
    if len(scale) == 3 and len(thick) == 1:
        # From random init: measured on T2w (x4, 180 s) this beats fine-tuning the bundled
        # through-plane model at the lower rate (+1.22 vs +0.95 dB over B-spline).
        s = scale[thick[0]]
        params = {"spatial_dims": 2, "in_channels": 1, "scale": [s, 1], **SELF_THROUGH_PLANE}
        return {
            "protocol": "through-plane",
            "network": {"name": "edsr", "params": params},
            "in_channels": 1,
            "through_plane_axis": thick[0],
            "budget": budget,
            "steps": steps,
        }
    start = bundled.start_for(domain, scale)
    if start is not None:
        network, weights = read_config(start.path)["network"], start.path
    else:
        params = {"spatial_dims": len(scale), "in_channels": 1, "scale": list(scale), **SELF_ZERO_SHOT[len(scale)]}
        network, weights = {"name": "edsr", "params": params}, None
    return {
        "protocol": "zero-shot",
        "network": network,
        "in_channels": 1,
        "weights": weights,
        "start": None if start is None else start.name,
        "budget": budget,
        "steps": steps,
    }


def build_upsampler(
    method: Method,
    *,
    source: Source | None = None,
    norm: tuple[Normalizer, dict[str, Any]] | None = None,
    slice_thickness: float | None = None,
    device: str = "auto",
    guide: np.ndarray | None = None,
) -> tuple[Upsampler, dict[str, Any]]:
    """The module the engine runs for ``method``, and the provenance it adds to the output.

    Args:
        method: from :func:`resolve_method`.
        source: the input (``self`` trains on it).
        norm: the fitted normaliser and its statistics on ``source`` (``self`` trains in them).
        slice_thickness: ``self`` through-plane: slice thickness in HR pixels (None = the factor).
        device: where ``self`` trains.
        guide: guided ``self``: the guide channels on the input's grid, ``(2, *S)``
            (:attr:`geo_med_sr.upscale.guided.PreparedGuide.on_target`).

    Raises:
        ConfigError: ``self`` without a source to train on; a guided method without its guide, or with
            the self-ensemble or back-projection (they run the network without the guide).
        ModelError: the checkpoint cannot be loaded.
    """
    if method.guided:
        if method.ensemble or method.consistency is not None:
            raise ConfigError("--guide does not combine with --ensemble or --consistency yet")
        if method.budget is not None:
            raise ConfigError("--guide trains a fixed number of steps (--steps); it does not take --budget")
        return _guided_upsampler(method, source, norm, slice_thickness, device, guide)
    upsampler, prov = _base_upsampler(method, source, norm, slice_thickness, device)
    if method.ensemble:
        from geo_med_sr.inference.ensemble import SelfEnsemble

        ensemble = SelfEnsemble(upsampler)
        prov = {**prov, "ensemble": len(ensemble.members)}
        upsampler = ensemble
    if method.consistency is not None:
        from geo_med_sr.degrade import build_degradation
        from geo_med_sr.inference.consistency import BackProjection

        degradation = build_degradation(method.consistency, method.scale, method.spatial_dims)
        projection = BackProjection(upsampler, degradation)
        prov = {**prov, "consistency": {"degradation": method.consistency, "iterations": projection.iterations}}
        upsampler = projection
    return upsampler, prov


def _guided_upsampler(
    method: Method,
    source: Source | None,
    norm: tuple[Normalizer, dict[str, Any]] | None,
    slice_thickness: float | None,
    device: str,
    guide: np.ndarray | None,
) -> tuple[Upsampler, dict[str, Any]]:
    """Guided ``self``: the guided through-plane network trained on the input with its guide channels, its
    output back-projected onto the measured thick slices with the same slice profile (data consistency:
    on the stroke T2w/FLAIR benchmark rows +0.4 to +0.6 dB in the brain and in the lesion)."""
    from geo_med_sr.training.guided_selfsup import guided_self_supervised_upsampler

    if source is None or norm is None or guide is None or method.through_plane_axis is None:
        raise ConfigError("guided --method self needs the input, its guide and one thick axis: prepare the guide first")
    normalizer, stats = norm
    trained, info = guided_self_supervised_upsampler(
        source,
        normalizer,
        stats,
        method.scale,
        guide_on_target=guide,
        through_plane_axis=method.through_plane_axis,
        steps=method.steps,
        device=device,
        slice_thickness=slice_thickness,
    )
    from geo_med_sr.degrade import SliceProfile
    from geo_med_sr.inference.consistency import GuidedBackProjection

    profile = SliceProfile(method.scale, 3, thickness=slice_thickness)
    projected = GuidedBackProjection(trained, profile)
    consistency = {"degradation": "slice", "thickness_hr_px": slice_thickness, "iterations": projected.iterations}
    prov = {"method": "self", "guided": True, "self_supervised": info, "consistency": consistency}
    return cast("Upsampler", projected), prov


def _base_upsampler(
    method: Method,
    source: Source | None,
    norm: tuple[Normalizer, dict[str, Any]] | None,
    slice_thickness: float | None,
    device: str,
) -> tuple[Upsampler, dict[str, Any]]:
    if method.kind == CLASSICAL:
        return METHODS.get(method.name).upsampler_class()(method.scale), {"method": method.name}
    if method.kind == SELF:
        from geo_med_sr.training.selfsup import self_supervised_upsampler

        if source is None or norm is None:
            raise ConfigError("--method self needs the input image to train on")
        if method.protocol is None or method.network is None:
            raise ConfigError("--method self needs its protocol and network: resolve the method first")
        normalizer, stats = norm
        trained, info = self_supervised_upsampler(
            source,
            normalizer,
            stats,
            method.scale,
            protocol=method.protocol,
            network=method.network,
            through_plane_axis=method.through_plane_axis,
            start_weights=method.weights,
            start=method.start,
            budget=method.budget,
            steps=method.steps,
            device=device,
            slice_thickness=slice_thickness,
        )
        # the trained network (or its plane ensemble) has the Upsampler attributes; torch types it nn.Module
        return cast("Upsampler", trained), {"method": "self", "self_supervised": info}
    from geo_med_sr.models.checkpoint import load_checkpoint

    if method.weights is None or method.network is None:
        raise ModelError("--method model needs its checkpoint: resolve the method first")
    network, _ = load_checkpoint(method.weights)
    # an upscaling checkpoint's network has the Upsampler attributes; torch types it nn.Module
    model: Upsampler = cast("Upsampler", network)
    if method.through_plane_axis is not None:
        from geo_med_sr.inference.ensemble import PlaneEnsemble

        model = PlaneEnsemble(network, method.through_plane_axis)
    prov = {
        "method": "model",
        "model": method.model,
        "model_source": method.model_source,
        "network": method.network["name"],
        "weights_sha256": method.weights_sha256,
    }
    return model, prov
