"""Guided self-supervised through-plane training: a thick-slice contrast restored with an isotropic guide.

Guided MRI (a thick-slice T2w/FLAIR with the patient's own isotropic T1w): the through-plane
protocol of :mod:`geo_med_sr.training.selfsup` with guide channels. A 2D
:class:`~geo_med_sr.networks.guided_plane.GuidedPlaneNet` (scale ``(s, 1)``) learns from the
target's own high-resolution in-plane slices (perpendicular to the thick axis), each degraded
along one in-plane axis by the slice profile, with the guide's same plane at full resolution as
its guide input; it then runs across the thick axis in the two plane orientations, averaged
(:class:`~geo_med_sr.networks.guided_plane.GuidedPlaneEnsemble`), with the guide on the output grid.

**Guide dropout**: each training sample loses its guide channels (values and mask set to 0) with
probability :data:`GUIDE_DROPOUT`, so the same network also learns the single-contrast restoration
it does where the guide does not reach (mask 0).

Training runs a fixed number of steps: with the same ``steps`` and ``seed`` the result is the
same bit for bit on the CPU (seeded initial weights, patches and dropout).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from geo_med_sr.degrade import SliceProfile
from geo_med_sr.errors import ConfigError, InputError
from geo_med_sr.inference.device import resolve_device
from geo_med_sr.inference.ensemble import GuidedPlaneEnsemble
from geo_med_sr.inference.protocols import Source
from geo_med_sr.networks import build_network
from geo_med_sr.networks.guided_plane import GuidedPlaneNet
from geo_med_sr.normalize import Normalizer
from geo_med_sr.training.data import PatchSampler, TrainImage
from geo_med_sr.training.selfsup import DEFAULT_STEPS, SCRATCH_LR, _in_plane_slices, _training_arrays

__all__ = ["GUIDE_DROPOUT", "PROTOCOL", "guided_self_supervised_upsampler"]

#: probability that a training sample's guide channels are all set to 0 (values and mask).
GUIDE_DROPOUT = 0.25
#: training samples per step (2D planes).
BATCH = 16
#: the protocol recorded in the provenance.
PROTOCOL = "guided through-plane (in-plane slices, slice profile, guide channels)"


class GuidedPatchSampler(PatchSampler):
    """Random ``(lr, guide, hr)`` training triplets from images holding a target and its guide.

    Each image is ``(1 + G, *S)``: channel 0 the target, channels ``1..G`` the guide on the same
    pixels. An HR patch of every channel is taken (flipped alike, see :class:`PatchSampler`); the
    target's channel is degraded to the LR input, the guide's stay at full resolution, and with
    probability ``dropout`` per sample the guide is set to 0.

    Args:
        images: the target-and-guide images.
        degradation: HR -> LR model of the target (its ``scale`` is the SR factor).
        patch_size: LR patch size per axis (HR patches are ``patch_size * scale``).
        seed: random seed (patches, flips and dropout).
        dropout: probability of dropping a sample's guide.
    """

    def __init__(
        self,
        images: Sequence[TrainImage],
        degradation: SliceProfile,
        patch_size: int,
        seed: int = 0,
        dropout: float = GUIDE_DROPOUT,
    ) -> None:
        super().__init__(images, degradation, patch_size, seed=seed)
        self.dropout = float(dropout)

    def triplet(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(lr, guide, hr)``: ``(B, 1, *patch)``, ``(B, G, *patch*scale)`` and ``(B, 1, *patch*scale)`` float32."""
        both = torch.from_numpy(np.stack([self._patch() for _ in range(size)]))
        hr, guide = both[:, :1], both[:, 1:]
        dropped = torch.from_numpy(self.rng.random(size) < self.dropout)
        guide = torch.where(dropped.view(-1, 1, 1, 1), torch.zeros_like(guide), guide)
        with torch.no_grad():
            lr = self.degradation(hr)
        return lr, guide, hr


def _check_inputs(
    source: Source, scale: Sequence[int], guide_on_target: np.ndarray, through_plane_axis: int
) -> tuple[int, ...]:
    """The scale as integers, after checking the target, the guide and the thick axis agree."""
    shape = tuple(int(n) for n in source.shape)
    if len(shape) != 4 or shape[0] != 1:
        raise InputError(f"guided through-plane training needs a one-channel 3D target (1, X, Y, Z), got {shape}")
    factors = tuple(int(s) for s in scale)
    if through_plane_axis not in (0, 1, 2) or len(factors) != 3:
        raise ConfigError(f"need a 3D scale and a thick axis in 0..2, got scale {factors}, axis {through_plane_axis}")
    if any(s != 1 for a, s in enumerate(factors) if a != through_plane_axis) or factors[through_plane_axis] < 2:
        raise ConfigError(f"scale {factors} must be s >= 2 on the thick axis {through_plane_axis} and 1 elsewhere")
    if guide_on_target.ndim != 4 or tuple(guide_on_target.shape[1:]) != shape[1:]:
        raise InputError(
            f"the guide on the target grid must be (G, {', '.join(map(str, shape[1:]))}), got {guide_on_target.shape}"
        )
    return factors


def _network(network: dict[str, Any] | None, s: int, guide_channels: int) -> GuidedPlaneNet:
    """The guided plane network of ``network`` (``{"name", "params"}``), scale and guide channels filled in."""
    network = dict(network or {})
    params = {"scale": s, "guide_channels": guide_channels, **dict(network.get("params") or {})}
    net = build_network(network.get("name", GuidedPlaneNet.name), params)
    if not getattr(net, "guided", False) or tuple(net.scale) != (s, 1) or net.guide_channels != guide_channels:
        raise ConfigError(
            f"guided through-plane training needs a guided 2D network of scale ({s}, 1) with {guide_channels} "
            f"guide channels, got {net.config()}"
        )
    return net


def _train(
    net: GuidedPlaneNet, sampler: GuidedPatchSampler, steps: int, device: torch.device
) -> tuple[float | None, float]:
    """Adam with a cosine schedule over ``steps``, L1 loss; returns (last loss or None, seconds).

    Gradients are enabled here whatever the caller's context (``no_grad``, ``inference_mode``)."""
    net.to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=SCRATCH_LR)
    loss: float | None = None
    start = time.perf_counter()
    with torch.enable_grad():
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = SCRATCH_LR * 0.5 * (1 + math.cos(math.pi * step / steps))
            lr, guide, hr = sampler.triplet(BATCH)
            value = torch.mean(torch.abs(net(lr.to(device), guide.to(device)) - hr.to(device)))
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            loss = float(value.detach())
    net.eval()
    return loss, time.perf_counter() - start


def guided_self_supervised_upsampler(
    source: Source,
    normalizer: Normalizer,
    stats: dict[str, Any],
    scale: Sequence[int],
    *,
    guide_on_target: np.ndarray,
    through_plane_axis: int,
    network: dict[str, Any] | None = None,
    steps: int | None = None,
    device: str = "auto",
    seed: int = 0,
    slice_thickness: float | None = None,
    log: Any = None,
) -> tuple[GuidedPlaneEnsemble, dict[str, Any]]:
    """Train a guided through-plane upsampler on the thick-slice target itself and its guide.

    Args:
        source: the LR target (``shape (1, X, Y, Z)``, ``read(window)``, ``read_valid(window)``);
            patches touching an invalid pixel are never used.
        normalizer, stats: the pipeline's normaliser and its statistics for the target.
        scale: integer factor per spatial axis (``s`` on ``through_plane_axis``, 1 elsewhere).
        guide_on_target: ``(G, X, Y, Z)`` float32: the guide (normalised) and its 0/1 inside-mask
            resampled onto the target's own grid (the training planes take the guide from it).
        through_plane_axis: the thick axis (0, 1 or 2).
        network: ``{"name", "params"}`` of the network (default ``guided-plane`` with its default
            width); ``scale`` and ``guide_channels`` are filled in.
        steps: training steps (default ``DEFAULT_STEPS["through-plane"]``); 0 returns the untrained
            network (linear interpolation across the thick axis).
        device: training device.
        seed: random seed of the initial weights, the patches and the guide dropout.
        slice_thickness: slice thickness in HR pixels (default: the factor ``s``).
        log: callable receiving a one-line summary.

    Returns:
        ``(upsampler, info)``: the :class:`GuidedPlaneEnsemble` (``forward(x, guide)``, guide on the
        output grid) and the provenance (no wall-clock keys: reproducible).
    """
    factors = _check_inputs(source, scale, guide_on_target, through_plane_axis)
    s = factors[through_plane_axis]
    steps_from = "--steps" if steps is not None else "default"
    steps = DEFAULT_STEPS["through-plane"] if steps is None else int(steps)
    if steps < 0:
        raise ConfigError(f"steps must be >= 0, got {steps}")
    dev = resolve_device(device)
    guide = np.asarray(guide_on_target, dtype=np.float32)
    torch.manual_seed(seed)  # the initial weights: with ``steps`` the output is reproducible
    net = _network(network, s, guide.shape[0])
    arrays = _training_arrays(source, normalizer, stats, seed, extra=guide)
    images = _in_plane_slices(arrays, through_plane_axis, split_channels=False)
    if not images:
        raise InputError("the target has no valid pixel to train on")
    largest = max(min(im.values.shape[1] // s, im.values.shape[2]) for im in images)
    patch = int(min(32, max(4, largest // 2)))  # LR pixels, as the through-plane self (HR patch s*patch x patch)
    degradation = SliceProfile((s, 1), 2, thickness=slice_thickness)
    sampler = GuidedPatchSampler(images, degradation, patch, seed=seed, dropout=GUIDE_DROPOUT)
    loss, seconds = _train(net, sampler, steps, dev)
    if log:
        final = "n/a" if loss is None else f"{loss:.4f}"
        log(f"guided self-supervised training: {steps} steps in {seconds:.1f} s, last L1 {final}")
    info = {
        "protocol": PROTOCOL,
        "steps": steps,
        "steps_from": steps_from,
        "budget_s": None,
        "patch_size": patch,
        "final_l1": loss,
        "start": "random init",
        "guide_dropout": GUIDE_DROPOUT,
        "guide_channels": int(guide.shape[0]),
    }
    return GuidedPlaneEnsemble(net, through_plane_axis), info
