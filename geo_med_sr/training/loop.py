"""The training loop: L1 (or L2/Charbonnier) on on-the-fly pairs, Adam + cosine schedule,
validation PSNR on a held-out file, checkpoints that resume exactly, never pickle.

Files written for ``--out model.safetensors``:

* ``model.safetensors`` + ``model.json``: the network (see :mod:`geo_med_sr.models.checkpoint`), with
  ``extra`` = scale, degradation, normalisation, training config, step, validation history and
  the SHA-256 of every training file.
* ``model.train.safetensors``: optimizer tensors, RNG states and the step (JSON metadata), for
  ``--resume``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from geo_med_sr import io
from geo_med_sr.degrade import build_degradation
from geo_med_sr.errors import ModelError, file_error
from geo_med_sr.inference.device import resolve_device
from geo_med_sr.inference.resolver import SuperResolver
from geo_med_sr.metrics.image import crop_to_blocks, data_range, psnr, valid_region
from geo_med_sr.models.checkpoint import SUFFIX, load_checkpoint, save_checkpoint
from geo_med_sr.networks import build_network
from geo_med_sr.normalize import build_normalizer
from geo_med_sr.training.config import TrainConfig
from geo_med_sr.training.data import PatchSampler, TrainImage, load_training_images


def state_path(out: str | os.PathLike) -> Path:
    """``model.safetensors`` -> ``model.train.safetensors`` (optimizer and RNG state)."""
    out = Path(out)
    return out.with_name(out.name[: -len(".safetensors")] + ".train.safetensors")


def _loss(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "l1":
        return (pred - target).abs().mean()
    if kind == "l2":
        return ((pred - target) ** 2).mean()
    return torch.sqrt((pred - target) ** 2 + 1e-6).mean()


def optimization_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batch: tuple[torch.Tensor, torch.Tensor],
    loss: str,
    device: torch.device,
) -> float:
    """One gradient step on an ``(lr, hr)`` batch (float16 autocast when the scaler is enabled); returns the loss."""
    lr_batch, hr_batch = batch
    with torch.autocast("cuda", dtype=torch.float16, enabled=scaler.is_enabled()):
        value = _loss(loss, model(lr_batch.to(device)), hr_batch.to(device))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(value).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(value.detach())


def _save_state(path: Path, optimizer: torch.optim.Optimizer, scheduler: Any, step: int, sampler: PatchSampler) -> None:
    """Optimizer tensors + JSON metadata in a safetensors file (atomic)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, float]] = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value) and value.ndim > 0:
                tensors[f"opt.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = float(value)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        "step": step,
        "param_groups": state["param_groups"],
        "scalars": scalars,
        "scheduler": scheduler.state_dict(),
        "numpy_rng": sampler.rng.bit_generator.state,
    }
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata={"geo_med_sr_train": json.dumps(meta)})
    os.replace(tmp, path)


def _load_state(path: Path, optimizer: torch.optim.Optimizer, scheduler: Any, sampler: PatchSampler) -> int:
    if not path.is_file():
        raise file_error(
            ModelError,
            path,
            "no training state next to the checkpoint; --resume needs the .train.safetensors file written by train",
        )
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["geo_med_sr_train"])
    tensors = load_file(str(path))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta["scalars"].items():
        state.setdefault(int(idx), {}).update({k: torch.tensor(v) for k, v in entry.items()})
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    sampler.rng.bit_generator.state = meta["numpy_rng"]
    return int(meta["step"])


def validation_psnr(
    model: torch.nn.Module, images: Sequence[TrainImage], config: TrainConfig, device: torch.device
) -> float:
    """Mean PSNR (dB) of the model on the degraded validation images (normalised values)."""
    degradation = build_degradation(
        config.degradation.name, config.scale, config.spatial_dims, **config.degradation.params
    )
    scores = []
    model.eval()
    for image in images:
        hr = crop_to_blocks(image.values, config.scale)
        valid = crop_to_blocks(image.valid[np.newaxis], config.scale)[0]
        with torch.no_grad():
            lr = degradation(torch.from_numpy(np.ascontiguousarray(hr))[None])[0].numpy()
        out = SuperResolver(model, config.scale, patch_size=64, device=device, progress=False)(lr)
        region = valid_region(valid.shape, config.scale, valid)
        scores.append(psnr(hr, out, region, data_range(hr, valid)))
    model.train()
    return float(np.mean(scores))


def train(
    config: TrainConfig,
    data: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    val: Sequence[str | os.PathLike] = (),
    resume: bool = False,
    stop_at: int | None = None,
    progress: bool | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Train a network and write its checkpoint (and training state) to ``out``.

    Args:
        config: validated training configuration.
        data: HR training files.
        out: ``.safetensors`` path of the checkpoint.
        val: held-out files for validation PSNR every ``config.val_every`` steps.
        resume: continue from ``out`` and its training state.
        stop_at: stop (and save) after this step although the schedule runs to ``config.steps``;
            a later ``resume`` continues exactly where it stopped.
        progress: progress bar (None = on a terminal).
        log: callable receiving one-line progress messages.

    Returns:
        Summary: steps, final loss, validation history, seconds.
    """
    # the output pre-flight: name, folder, not an input (existence and --overwrite: the command's check)
    out = io.check_file_output(out, suffixes=(SUFFIX,), what="the checkpoint", inputs=[*data, *val])
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    normalizer = build_normalizer(config.normalize.name, **config.normalize.params)
    degradation = build_degradation(
        config.degradation.name, config.scale, config.spatial_dims, **config.degradation.params
    )
    images = load_training_images(data, normalizer, config.spatial_dims)
    val_images = load_training_images(val, normalizer, config.spatial_dims) if val else []
    sampler = PatchSampler(
        images,
        degradation,
        config.patch_size,
        seed=config.seed,
        decimate_p=config.decimate_p,
        decimate_factors=config.decimate_factors,
        transpose=config.transpose,
    )
    if resume:
        model, info = load_checkpoint(out, device=device)
        history = list(info.get("extra", {}).get("train", {}).get("val_psnr", []))
        prior_seconds = float(info.get("extra", {}).get("train", {}).get("seconds", 0.0))
    else:
        model = build_network(
            config.network.name,
            spatial_dims=config.spatial_dims,
            in_channels=1,
            scale=config.scale,
            **config.network.params,
        )
        history, prior_seconds = [], 0.0
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / config.steps))
    )
    step = _load_state(state_path(out), optimizer, scheduler, sampler) if resume else 0
    files = sorted({(im.path.name, im.sha256) for im in images})
    amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def save() -> None:
        extra = {
            "scale": list(config.scale),
            "degradation": config.degradation.model_dump(),
            "normalize": config.normalize.model_dump(),
            "train": {
                "config": config.model_dump(),
                "step": step,
                "val_psnr": history,
                "seconds": prior_seconds + time.perf_counter() - start,
                "files": [{"name": n, "sha256": h} for n, h in files],
                "val_files": [
                    {"name": im.path.name, "sha256": im.sha256} for im in val_images[:: max(1, len(val_images))]
                ],
            },
        }
        save_checkpoint(model, out, extra=extra)
        _save_state(state_path(out), optimizer, scheduler, step, sampler)

    start = time.perf_counter()
    bar = tqdm(
        total=config.steps,
        initial=step,
        desc="training",
        unit="step",
        disable=None if progress is None else not progress,
    )
    loss_value = float("nan")
    try:
        last = config.steps if stop_at is None else min(stop_at, config.steps)
        while step < last:
            loss_value = optimization_step(
                model, optimizer, scaler, sampler.batch(config.batch_size), config.loss, device
            )
            scheduler.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if val_images and (step % config.val_every == 0 or step == config.steps):
                history.append([step, validation_psnr(model, val_images, config, device)])
                log(f"step {step}: loss {loss_value:.5f}, validation PSNR {history[-1][1]:.3f} dB")
            if step % config.checkpoint_every == 0 or step == last:
                save()
    finally:
        bar.close()
    return {
        "steps": step,
        "loss": loss_value,
        "val_psnr": history,
        "seconds": time.perf_counter() - start,
        "checkpoint": str(out),
    }
