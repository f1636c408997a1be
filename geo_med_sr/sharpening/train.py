"""``geo-med-sr train`` for guided sharpening: one guided network from the reduced-resolution pairs of many scenes.

A training config with ``task: sharpen`` (``configs/train/*_guided_*.yaml``, validated into
:class:`~geo_med_sr.training.config.GuidedTrainConfig` by
:func:`~geo_med_sr.training.config.load_training_config`) names the group to
learn (``ratio``; S2 target ``bands``), the network and the schedule; ``--data`` lists products
(an S2 folder, a STAC item) or pan-sharpening pairs written ``MS.tif::PAN.tif``. Every scene gives
its Wald pairs (:func:`geo_med_sr.sharpening.training.wald_pairs`, normalised with the scene's own
band statistics, optionally only a ``region`` of its columns so that the rest stays held out),
all pairs are pooled and :func:`~geo_med_sr.sharpening.training.train_guided` runs for ``steps``.
The checkpoint records the bands, guides, data files (with SHA-256) and the command.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geo_med_sr import io
from geo_med_sr.digest import sha256_file
from geo_med_sr.errors import InputError, file_error
from geo_med_sr.sharpening.pipeline import open_scene
from geo_med_sr.sharpening.scene import band_stats, plan
from geo_med_sr.training.config import GuidedTrainConfig

__all__ = ["GuidedTrainConfig", "train_sharpen"]


def _split(item: str) -> tuple[list[Path], Path | None]:
    ms, _, pan = item.partition("::")
    return [Path(ms)], Path(pan) if pan else None


def _scene_arrays(item: str, config: GuidedTrainConfig, model: Any) -> tuple[list, dict[str, Any]]:
    """Training arrays of one data item and what the checkpoint records of it."""
    from geo_med_sr.sharpening.methods import NetworkMethod
    from geo_med_sr.sharpening.training import training_arrays, wald_pairs

    inputs, pan = _split(item)
    with open_scene(inputs, pan=pan, bands=config.bands) as scene:
        layout = plan(scene)
        matching = [g for g in layout.groups if g.ratio == (config.ratio, config.ratio)]
        if not matching:
            raise file_error(InputError, inputs[0], f"has no bands at ratio {config.ratio} to its finest bands")
        group = matching[0]
        stats = [band_stats(b) for b in scene.bands]
        pairs = wald_pairs(scene, layout, group, stats, config.max_pixels, config.seed, config.region, config.scale)
        method = NetworkMethod(
            model, [stats[i] for i in group.targets], [stats[i] for i in (*layout.guides, *group.between)]
        )
        arrays = training_arrays(pairs, group, stats, method.normalised)
        record = {
            "targets": [scene.bands[i].name for i in group.targets],
            "guides": [scene.bands[i].name for i in (*layout.guides, *group.between)],
            "files": sorted({str(b.source.path) for b in scene.bands}),
        }
    return arrays, record


def train_sharpen(config: GuidedTrainConfig, data: Sequence[str], out: str | os.PathLike, command: str = "") -> dict:
    """Train one guided network on the pooled Wald pairs of ``data``; write it to ``out``.

    Returns:
        ``{"steps", "seconds", "loss", "pairs"}``.
    """
    from geo_med_sr.models.checkpoint import SUFFIX
    from geo_med_sr.training.config import check_network_size

    check_network_size(config, "the training config")  # a config built in Python skips the loader's check
    # the output pre-flight, before any scene is read or any step trained (existence: the command's check)
    out = io.check_file_output(out, suffixes=(SUFFIX,), what="the checkpoint", inputs=list(data))

    import torch

    from geo_med_sr.inference.device import resolve_device
    from geo_med_sr.models.checkpoint import save_checkpoint
    from geo_med_sr.networks.guided import GuidedNet
    from geo_med_sr.sharpening.training import train_guided

    torch.manual_seed(config.seed)
    first, records, arrays, scenes = None, [], [], []
    for item in data:
        if first is None:  # the first item decides the band layout; the network is built for it
            probe, record = _probe(item, config)
            first = GuidedNet(
                1 if config.bandwise else len(record["targets"]),
                len(record["guides"]),
                config.scale or config.ratio,
                config.features,
                config.blocks,
                config.bandwise,
            )
        got, record = _scene_arrays(item, config, first)
        if not config.bandwise and [a.up.shape[0] for a in got][:1] != [first.target_channels]:
            raise file_error(
                InputError, item, f"has {got[0].up.shape[0]} target bands, the first item {first.target_channels}"
            )
        if got and got[0].guides.shape[0] != first.guide_channels:
            raise file_error(
                InputError, item, f"has {got[0].guides.shape[0]} guides, the first item {first.guide_channels}"
            )
        scenes.append(list(range(len(arrays), len(arrays) + len(got))))
        arrays.extend(got)
        records.append(record)
    device = resolve_device(config.device)
    report = train_guided(
        first,
        arrays,
        steps=config.steps,
        device=device,
        seed=config.seed,
        lr=config.lr,
        patch=config.patch_size,
        batch=config.batch_size,
        scenes=scenes if config.balance == "scene" else None,
    )
    hashes = {f: sha256_file(f) for r in records for f in r["files"]}
    extra = {
        "task": "sharpen",
        "targets": records[0]["targets"] if not config.bandwise else None,
        "guides": records[0]["guides"],
        "ratio": config.scale or config.ratio,
        "trained_on": records,
        "files_sha256": hashes,
        "train_config": config.model_dump(),
        "command": command,
        "steps": report["steps"],
        "loss": report["loss"],
    }
    save_checkpoint(first.cpu(), out, extra)
    return {**report, "pairs": len(arrays)}


def _probe(item: str, config: GuidedTrainConfig) -> tuple[None, dict[str, Any]]:
    inputs, pan = _split(item)
    with open_scene(inputs, pan=pan, bands=config.bands) as scene:
        layout = plan(scene)
        group = next((g for g in layout.groups if g.ratio == (config.ratio, config.ratio)), None)
        if group is None:
            raise file_error(InputError, inputs[0], f"has no bands at ratio {config.ratio} to its finest bands")
        return None, {
            "targets": [scene.bands[i].name for i in group.targets],
            "guides": [scene.bands[i].name for i in (*layout.guides, *group.between)],
        }


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m geo_med_sr.sharpening.train card MODEL.safetensors [--bench JSON]``: write MODEL.md."""
    import argparse

    parser = argparse.ArgumentParser(description="write the model card of a guided checkpoint")
    parser.add_argument("action", choices=["card"])
    parser.add_argument("checkpoint")
    parser.add_argument("--bench", default="benchmarks/results/bench_sharpen.json")
    args = parser.parse_args(argv)
    from geo_med_sr.models.card import guided_card

    path = Path(args.checkpoint)
    path.with_suffix(".md").write_text(guided_card(path, Path(args.bench)))


if __name__ == "__main__":
    main()
