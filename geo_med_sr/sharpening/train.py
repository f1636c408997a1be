"""``geo-med-sr train`` for guided sharpening: one guided network from the reduced-resolution pairs of many scenes.

A training config with ``task: sharpen`` (``configs/train/*_guided_*.yaml``) names the group to
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
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geo_med_sr.digest import sha256_file
from geo_med_sr.errors import ConfigError, InputError, file_error
from geo_med_sr.sharpening.pipeline import open_scene
from geo_med_sr.sharpening.scene import band_stats, plan

__all__ = ["GuidedTrainConfig", "is_sharpen_config", "load_guided_config", "train_sharpen"]


class GuidedTrainConfig(BaseModel):
    """What a guided sharpening network is trained on and how (``task: sharpen``)."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["sharpen"]
    ratio: int = Field(2, ge=2, le=16)
    factor: int | None = Field(None, ge=2, le=16)
    bands: list[str] | None = None
    features: int = Field(64, ge=4)
    blocks: int = Field(6, ge=0)
    bandwise: bool = False
    region: tuple[float, float] | None = None
    max_pixels: int = Field(1 << 20, ge=1024)
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(8, ge=1)
    patch_size: int = Field(48, ge=8)
    lr: float = Field(1e-3, gt=0)
    seed: int = 0
    device: str = "auto"


def is_sharpen_config(path: str | os.PathLike | None) -> bool:
    """Whether the YAML at ``path`` is a guided-sharpening training config (``task: sharpen``)."""
    if path is None:
        return False
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and data.get("task") == "sharpen"


def load_guided_config(path: str | os.PathLike, **overrides: Any) -> GuidedTrainConfig:
    """Validate the config at ``path`` (unknown keys are errors) with ``overrides`` applied."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return GuidedTrainConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise file_error(ConfigError, path, f"invalid training configuration: {problems}") from exc


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
        pairs = wald_pairs(scene, layout, group, stats, config.max_pixels, config.seed, config.region, config.factor)
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
    import torch

    from geo_med_sr.inference.device import resolve_device
    from geo_med_sr.models.checkpoint import save_checkpoint
    from geo_med_sr.networks.guided import GuidedNet
    from geo_med_sr.sharpening.training import train_guided

    torch.manual_seed(config.seed)
    first, records, arrays = None, [], []
    for item in data:
        if first is None:  # the first item decides the band layout; the network is built for it
            probe, record = _probe(item, config)
            first = GuidedNet(
                1 if config.bandwise else len(record["targets"]),
                len(record["guides"]),
                config.factor or config.ratio,
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
    )
    hashes = {f: sha256_file(f) for r in records for f in r["files"]}
    extra = {
        "task": "sharpen",
        "targets": records[0]["targets"] if not config.bandwise else None,
        "guides": records[0]["guides"],
        "ratio": config.factor or config.ratio,
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


def guided_card(checkpoint: Path, bench: Path | None = None) -> str:
    """The Markdown model card of a guided checkpoint (from its JSON sidecar; scores from ``bench``)."""
    import json
    import platform

    from geo_med_sr.models.checkpoint import sidecar_path

    info = json.loads(sidecar_path(checkpoint).read_text())
    extra = info.get("extra", {})
    config = extra.get("train_config", {})
    lines = [
        f"# {checkpoint.stem}",
        "",
        f"- Guided sharpening network `{info['network']['name']}` {json.dumps(info['network']['params'])}: residual "
        "over the cubic-upsampled bands, zero-initialised last layer (MONAI Convolution/ResidualUnit blocks).",
        f"- Ratio x{extra.get('ratio')}; targets {extra.get('targets') or 'any band (band-wise)'}; guides "
        f"{extra.get('guides')}.",
        f"- Trained by this project's own `geo-med-sr train` (task: sharpen), {extra.get('steps')} steps, last L1 "
        f"{extra.get('loss', 0):.4f} (normalised units), on {platform.machine()} CPU:",
        "",
        "```bash",
        extra.get("command", ""),
        "```",
        "",
        f"- Training config: `{json.dumps(config)}`",
        "- Protocol: reduced-resolution (Wald) pairs of each scene, every band reduced by the ratio (block average, "
        "exact area averages where grids are offset); per-scene band statistics for normalisation.",
    ]
    if config.get("region"):
        lines.append(
            f"- Only the columns {config['region']} (fractions) of each scene were used; the rest is held out."
        )
    if bench and bench.is_file():
        rows = _bench_rows(json.loads(bench.read_text()), checkpoint.stem)
        if rows:
            lines += ["", f"## Scores (`benchmarks/bench_sharpen.py`, {bench.name}; mean PSNR dB)", "", *rows]
    lines += ["", "## Training data (SHA-256)", "", "| file | sha256 |", "|---|---|"]
    lines += [
        f"| {Path(f).parent.name}/{Path(f).name} | `{h}` |" for f, h in sorted(extra.get("files_sha256", {}).items())
    ]
    lines += ["", "Sources and licences of these files: `../shared/data/README.md` of the project workspace."]
    return "\n".join(lines) + "\n"


def _bench_rows(report: dict, stem: str) -> list[str]:
    ratio = {"s2_guided_x2": 2, "s2_guided_x6": 6, "pan_guided_x2": 2}.get(stem)
    rows = ["| scene | ratio | bicubic | glp | model | model - bicubic |", "|---|---|---|---|---|---|"]
    for run in report.get("runs", []):
        for group in run.get("groups", []):
            m = group["methods"]
            if group["ratio"][0] != ratio or "psnr_mean" not in m.get("model", {}):
                continue
            if stem.startswith("s2") != run["scene"].startswith("S2"):
                continue
            b, g, k = (
                m["bicubic"]["psnr_mean"],
                m.get("glp", {}).get("psnr_mean", float("nan")),
                m["model"]["psnr_mean"],
            )
            rows.append(f"| {run['scene']} | x{ratio} | {b:.2f} | {g:.2f} | {k:.2f} | {k - b:+.2f} |")
    return rows if len(rows) > 2 else []


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m geo_med_sr.sharpening.train card MODEL.safetensors [--bench JSON]``: write MODEL.md."""
    import argparse

    parser = argparse.ArgumentParser(description="write the model card of a guided checkpoint")
    parser.add_argument("action", choices=["card"])
    parser.add_argument("checkpoint")
    parser.add_argument("--bench", default="benchmarks/results/bench_sharpen.json")
    args = parser.parse_args(argv)
    path = Path(args.checkpoint)
    path.with_suffix(".md").write_text(guided_card(path, Path(args.bench)))


if __name__ == "__main__":
    main()
