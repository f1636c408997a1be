"""Self-supervised adaptation to the image being upscaled (``--method self``), no download.

Two protocols, chosen from the scale by :func:`geo_med_sr.upscale.methods.resolve_method` (which also
picks the network and its starting weights; this module trains what it is given):

* **Through-plane MRI** (3D, exactly one axis with ``s > 1``; SMORE/ECLARE idea): a 2D network
  learns from the high-resolution in-plane slices, degraded along one in-plane axis by the
  slice profile (rectangular, thickness = the slice step unless the file says otherwise), and
  is applied across the thick axis in the two orthogonal plane orientations, averaged.
* **Everything else** (2D scenes, isotropic 3D; Wald / zero-shot protocol): the network learns
  to undo the block average of the image's own downscaled copy, then upscales the image.

Training stops at the time ``budget`` (seconds), or after ``steps`` optimisation steps (then the
result is the same bit for bit on the CPU however busy the machine is: seeded initial weights,
patches and hold-out checks at fixed steps). The values are those the engine feeds the
network (the pipeline's normaliser and statistics); patches touching invalid pixels are never
used. The result is an ordinary upsampler with a finite ``receptive_radius``, so it runs in the
streaming, tile-invariant engine like any other.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geo_med_sr.degrade import BlockAverage, SliceProfile
from geo_med_sr.errors import InputError
from geo_med_sr.inference.device import resolve_device
from geo_med_sr.inference.ensemble import PlaneEnsemble
from geo_med_sr.inference.protocols import Source
from geo_med_sr.inference.radiometry import sample_boxes
from geo_med_sr.models.checkpoint import load_checkpoint
from geo_med_sr.networks import build_network
from geo_med_sr.normalize import Normalizer
from geo_med_sr.training.data import PatchSampler, TrainImage
from geo_med_sr.training.loop import optimization_step

#: training budget in seconds when ``--budget`` is given without a value by a caller (a 2-core CPU; a GPU
#: gets a third of it); the command's default is :data:`DEFAULT_STEPS`.
DEFAULT_BUDGET_CPU = 180.0
DEFAULT_BUDGET_GPU = 60.0
#: training steps without ``--budget`` or ``--steps``, per protocol: a fixed number, so that a rerun gives the
#: same file however busy the machine is, calibrated to about :data:`DEFAULT_BUDGET_CPU` seconds on the 2-core
#: CPU (see the README's performance section).
DEFAULT_STEPS = {"through-plane": 1600, "zero-shot-2d": 700, "zero-shot-3d": 500}
#: how much of the image (pixels) training may read, sampled in windows for large scenes.
MAX_TRAIN_PIXELS = 1 << 22
#: Adam learning rates from random initialisation and when fine-tuning a bundled model.
SCRATCH_LR = 1e-3
FINE_TUNE_LR = 2e-4
#: zero-shot early stopping: share of each image held out, hold-out patch (LR pixels) and batch,
#: and how many times during the budget the hold-out L1 is checked.
HOLDOUT_SHARE = 0.2
HOLDOUT_PATCH = 16
HOLDOUT_BATCH = 32
HOLDOUT_CHECKS = 12


#: training-report keys that hold wall-clock times: logged, never written into an output (they would make the
#: same job's outputs differ).
WALL_CLOCK_KEYS = ("seconds", "kept_weights_at_s")


def _reproducible(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` without :data:`WALL_CLOCK_KEYS`."""
    return {k: v for k, v in info.items() if k not in WALL_CLOCK_KEYS}


def default_steps(protocol: str, spatial_dims: int) -> int:
    """:data:`DEFAULT_STEPS` of ``protocol`` (``"through-plane"`` or ``"zero-shot"``) on a ``spatial_dims``-D image."""
    return DEFAULT_STEPS[
        "through-plane" if protocol == "through-plane" else f"zero-shot-{3 if spatial_dims == 3 else 2}d"
    ]


def _training_arrays(
    source: Source, normalizer: Normalizer, stats: dict[str, Any], seed: int, extra: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Normalised ``(C, *S)`` windows of the image with their valid masks (bounded in size).

    With ``extra`` (``(E, *S_image)`` float values on the image's grid, e.g. a guide already
    normalised), each window is ``(C + E, *S)``: the image's channels then ``extra``'s on the same
    box (0 where the image is invalid).
    """
    spatial = tuple(source.shape[1:])
    out = []
    for box in sample_boxes(spatial, MAX_TRAIN_PIXELS, 512 if len(spatial) == 2 else 96, seed):
        raw = source.read(box)
        valid = source.read_valid(box)
        valid = np.ones(raw.shape[1:], bool) if valid is None else valid
        valid = valid & np.all(np.isfinite(raw), axis=0)
        values = np.where(valid, normalizer.forward(raw, stats), 0.0).astype(np.float32)
        if extra is not None:
            more = np.where(valid, extra[(slice(None), *box.toslices())], 0.0).astype(np.float32)
            values = np.concatenate([values, more])
        out.append((values, valid))
    return out


def _images(arrays: list[tuple[np.ndarray, np.ndarray]]) -> list[TrainImage]:
    return [
        TrainImage(Path("<input>"), values[c : c + 1], valid, "")
        for values, valid in arrays
        for c in range(values.shape[0])
    ]


def _in_plane_slices(
    arrays: list[tuple[np.ndarray, np.ndarray]], thick_axis: int, split_channels: bool = True
) -> list[TrainImage]:
    """2D HR slices perpendicular to the thick axis, each also transposed (both in-plane directions).

    One one-channel image per channel, or with ``split_channels=False`` one image holding every
    channel of the slice (a target and its guide, transposed alike).
    """
    images = []
    for values, valid in arrays:
        vol, mask = np.moveaxis(values, thick_axis + 1, 1), np.moveaxis(valid, thick_axis, 0)
        groups = [slice(c, c + 1) for c in range(vol.shape[0])] if split_channels else [slice(None)]
        for k in range(vol.shape[1]):
            for group in groups:
                plane, plane_valid = vol[group, k], mask[k]
                if plane_valid.any():
                    images.append(TrainImage(Path("<input>"), plane, plane_valid, ""))
                    images.append(
                        TrainImage(
                            Path("<input>"),
                            np.ascontiguousarray(plane.transpose(0, 2, 1)),
                            np.ascontiguousarray(plane_valid.T),
                            "",
                        )
                    )
    return images


def _holdout_split(
    images: list[TrainImage], scale: tuple[int, ...], share: float = HOLDOUT_SHARE
) -> tuple[list[TrainImage], list[TrainImage]]:
    """Split each image along its longest axis: the last ``share`` (at least one hold-out patch
    of ``HOLDOUT_PATCH * scale`` pixels) is held out; training patches never touch it."""
    train, held = [], []
    for im in images:
        spatial = im.values.shape[1:]
        axis = int(np.argmax(spatial))
        width = max(int(math.ceil(share * spatial[axis])), HOLDOUT_PATCH * scale[axis])
        if spatial[axis] - width < 2 * width:  # too small to give up a strip: train on all of it
            train.append(im)
            continue
        index = np.arange(spatial[axis]).reshape([-1 if a == axis else 1 for a in range(len(spatial))])
        cut = index >= spatial[axis] - width
        train.append(TrainImage(im.path, im.values, im.valid & ~cut, im.sha256))
        held.append(TrainImage(im.path, im.values, im.valid & cut, im.sha256))
    return train, held


def _holdout_batch(
    holdout: list[TrainImage], degradation: nn.Module, seed: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A fixed batch of hold-out pairs, or None when no all-valid hold-out patch exists."""
    try:
        return PatchSampler(holdout, degradation, HOLDOUT_PATCH, seed=seed + 1, max_tries=20).batch(HOLDOUT_BATCH)
    except InputError:
        return None


def _holdout_l1(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> float:
    model.eval()
    with torch.no_grad():
        value = float(torch.mean(torch.abs(model(batch[0].to(device)) - batch[1].to(device))))
    model.train()
    return value


def _fit(
    model: nn.Module,
    images: list[TrainImage],
    degradation: nn.Module,
    budget: float | None,
    device: torch.device,
    seed: int,
    log: Any,
    base_lr: float = SCRATCH_LR,
    holdout: list[TrainImage] | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``images`` until ``budget`` seconds have passed or ``steps`` are done (cosine LR
    over the time or the steps).

    With ``holdout`` images, the L1 on a fixed batch of hold-out pairs is checked before training
    and ``HOLDOUT_CHECKS`` times during it, and the weights with the lowest hold-out L1 are kept
    (early stopping: on a small scene fine-tuning can otherwise end worse than it started).
    """
    smallest = min(min(n // s for n, s in zip(im.values.shape[1:], degradation.scale)) for im in images)
    largest = max(min(n // s for n, s in zip(im.values.shape[1:], degradation.scale)) for im in images)
    patch = int(min(24 if model.spatial_dims == 3 else 32, max(4, largest // 2)))
    if patch < 4:
        raise InputError(
            f"the image is too small for self-supervised training at scale {degradation.scale} (smallest side "
            f"{smallest} LR pixels after degradation)"
        )
    sampler = PatchSampler(images, degradation, patch, seed=seed)
    torch.manual_seed(seed)
    model.to(device).train()
    held_batch = _holdout_batch(holdout, degradation, seed) if holdout else None
    best = (
        {
            "l1": _holdout_l1(model, held_batch, device),
            "seconds": 0.0,
            "step": 0,
            "state": copy.deepcopy(model.state_dict()),
        }
        if held_batch
        else None
    )
    start_l1 = best["l1"] if best else None
    optimizer = torch.optim.Adam(model.parameters(), lr=base_lr)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    batch = 4 if model.spatial_dims == 3 else 16
    start = time.perf_counter()
    total = steps
    steps, loss, next_check = 0, float("nan"), 1.0 / HOLDOUT_CHECKS

    def progress() -> float:
        return steps / total if total is not None else (time.perf_counter() - start) / budget

    while (fraction := progress()) < 1.0:
        for group in optimizer.param_groups:
            group["lr"] = base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, fraction)))
        loss = optimization_step(model, optimizer, scaler, sampler.batch(batch), "l1", device)
        steps += 1
        if best is not None and progress() >= next_check:
            next_check += 1.0 / HOLDOUT_CHECKS
            value = _holdout_l1(model, held_batch, device)
            if value < best["l1"]:
                best = {
                    "l1": value,
                    "seconds": time.perf_counter() - start,
                    "step": steps,
                    "state": copy.deepcopy(model.state_dict()),
                }
    info: dict[str, Any] = {
        "steps": steps,
        "seconds": time.perf_counter() - start,
        "patch_size": patch,
        "final_l1": loss,
    }
    if best is not None:
        final = _holdout_l1(model, held_batch, device)
        if final < best["l1"]:
            best = {"l1": final, "seconds": info["seconds"], "step": steps, "state": None}
        if best["state"] is not None:
            model.load_state_dict(best["state"])
        info.update(
            {
                "holdout_l1_start": start_l1,
                "holdout_l1_kept": best["l1"],
                "kept_weights_at_s": best["seconds"],
                "kept_step": best["step"],
            }
        )
    model.eval()
    if log:
        log(f"self-supervised training: {steps} steps in {info['seconds']:.1f} s, last L1 {loss:.4f}")
    return info


def self_supervised_upsampler(
    source: Source,
    normalizer: Normalizer,
    stats: dict[str, Any],
    scale: Sequence[int],
    *,
    protocol: str,
    network: dict[str, Any],
    through_plane_axis: int | None = None,
    start_weights: str | os.PathLike | None = None,
    start: str | None = None,
    budget: float | None = None,
    steps: int | None = None,
    device: str = "auto",
    seed: int = 0,
    slice_thickness: float | None = None,
    log: Any = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train an upsampler on the input image itself, as :func:`geo_med_sr.upscale.methods.resolve_method` decided.

    Args:
        source: the LR image (``shape (C, *S)``, ``read(window)``, ``read_valid(window)``).
        normalizer, stats: the pipeline's normaliser and its statistics for this image.
        scale: integer factor per spatial axis.
        protocol: ``"through-plane"`` (a 2D ``(s, 1)`` network learns from the in-plane slices
            and runs across ``through_plane_axis`` in the plane ensemble) or ``"zero-shot"``.
        network: ``{"name", "params"}`` of the network to train (built here, or loaded from
            ``start_weights``).
        through_plane_axis: the thick axis (through-plane protocol).
        start_weights: checkpoint to fine-tune (at a lower learning rate); None: random init.
        start: the name of that checkpoint, for the provenance.
        budget: training seconds instead of steps (the time decides: not reproducible on a busy machine).
        steps: training steps (default :data:`DEFAULT_STEPS` of the protocol when no ``budget`` is given).
        device: training device.
        seed: random seed.
        slice_thickness: through-plane slice thickness in HR pixels (default: the factor ``s``).

    Returns:
        ``(upsampler, info)`` where info describes the protocol for provenance.
    """
    dev = resolve_device(device)
    steps_from = "--steps" if steps is not None else "--budget" if budget is not None else "default"
    if steps is not None:
        budget = None
    elif budget is not None:
        budget = float(budget)
    else:
        steps = default_steps(protocol, len(scale))
    torch.manual_seed(seed)  # the initial weights too: with ``steps`` the output is reproducible
    scale = tuple(int(s) for s in scale)
    arrays = _training_arrays(source, normalizer, stats, seed)
    if protocol == "through-plane":
        s = scale[through_plane_axis]
        net = build_network(**network)
        degradation = SliceProfile((s, 1), 2, thickness=slice_thickness)
        info = _fit(net, _in_plane_slices(arrays, through_plane_axis), degradation, budget, dev, seed, log, steps=steps)
        protocol_text = "through-plane (in-plane slices, slice profile)"
        ensemble = PlaneEnsemble(net, through_plane_axis)
        return ensemble, {
            **_reproducible(info),
            "protocol": protocol_text,
            "budget_s": budget,
            "steps_from": steps_from,
            "start": "random init",
        }
    net = load_checkpoint(start_weights)[0] if start_weights is not None else build_network(**network)
    train, held = _holdout_split(_images(arrays), scale)
    info = _fit(
        net,
        train,
        BlockAverage(scale, len(scale)),
        budget,
        dev,
        seed,
        log,
        base_lr=FINE_TUNE_LR if start_weights is not None else SCRATCH_LR,
        holdout=held,
        steps=steps,
    )
    return net, {
        "protocol": "zero-shot (the image's own block-averaged copy)",
        "budget_s": budget,
        "steps_from": steps_from,
        "start": start or "random init",
        **_reproducible(info),
    }
