"""``geo-med-sr train``: train an SR network or a guided sharpening network, as the config's ``task`` says.

The config is loaded once (:func:`geo_med_sr.training.config.load_training_config`, a union on
``task``) and the command dispatches on its type: :class:`~geo_med_sr.training.config.TrainConfig`
to :func:`geo_med_sr.training.loop.train`, :class:`~geo_med_sr.training.config.GuidedTrainConfig`
to :func:`geo_med_sr.sharpening.train.train_sharpen`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geo_med_sr import options_check as check
from geo_med_sr.cli.options import add_device, add_overwrite, add_seed, typed

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` on the subcommand parser ``sub``."""
    p = sub.add_parser(
        "train",
        help="train an SR network on your HR images (pairs made on the fly by a degradation model)",
        description="Train a network from HR images: random patches from valid regions are degraded on the fly "
        "(block average, Gaussian PSF or MRI slice profile) and the network learns to restore them. Writes "
        "OUT (.safetensors + .json, usable with upscale --model OUT) and OUT's training state for --resume. "
        "A config with 'task: sharpen' trains a guided sharpening network on the Wald pairs of --data instead.",
    )
    p.add_argument(
        "--config", default=None, help="training YAML (e.g. configs/train/sat_x2.yaml); default: a small 2D EDSR x2"
    )
    p.add_argument("--data", nargs="+", required=True, help="HR training files (.nii/.nii.gz, DICOM folders, .tif)")
    p.add_argument("--val", nargs="*", default=(), help="held-out files for validation PSNR")
    p.add_argument("--out", required=True, help="checkpoint to write, ending in .safetensors")
    p.add_argument("--steps", type=typed(check.STEPS), default=None, help="training steps (overrides the config)")
    add_seed(p, None, "overrides the config")
    add_device(p, None, " (overrides the config)")
    p.add_argument("--resume", action="store_true", help="continue from OUT and its saved training state")
    add_overwrite(p, "replace an existing OUT when not resuming (only a checkpoint this tool wrote)")


def _check_out(args: argparse.Namespace, out: Path) -> None:
    """Refuse an existing OUT unless resumed, or replaced with --overwrite when this tool wrote it."""
    from geo_med_sr.errors import OutputError, file_error

    if out.exists() and not (args.resume or args.overwrite):
        raise file_error(
            OutputError, out, "the checkpoint already exists; pass --resume to continue it or --overwrite to replace it"
        )
    if out.exists() and args.overwrite and not args.resume:
        from geo_med_sr.errors import ModelError
        from geo_med_sr.models.checkpoint import read_config

        try:
            read_config(out)  # a checkpoint this tool wrote carries its configuration
        except ModelError:
            raise file_error(
                OutputError, out, "exists and is not a geo_med_sr checkpoint, so --overwrite does not replace it"
            ) from None


def run(args: argparse.Namespace) -> None:
    """Train the network the config's task asks for; print a one-line summary."""
    from geo_med_sr.training.config import GuidedTrainConfig, load_training_config

    out = Path(args.out)
    _check_out(args, out)
    config = load_training_config(args.config, steps=args.steps, seed=args.seed, device=args.device)
    if isinstance(config, GuidedTrainConfig):  # a guided sharpening network (task: sharpen)
        from geo_med_sr.sharpening.train import train_sharpen

        command = "geo-med-sr train " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else [])
        summary = train_sharpen(config, args.data, out, command=command)
        print(f"wrote {out} after {summary['steps']} steps in {summary['seconds']:.0f} s ({summary['pairs']} pairs)")
        return
    from geo_med_sr.training.loop import train

    summary = train(config, args.data, out, val=args.val, resume=args.resume)
    print(f"wrote {out} after {summary['steps']} steps in {summary['seconds']:.0f} s (last loss {summary['loss']:.5f})")
