"""Options shared by the subcommands, each declared once (the shells layer).

A command module calls these to add an option; what differs between commands (a default, the
method the option serves, a clause of the help) is an argument, the flag, its type and the
meaning of its help are the same everywhere. The option names are a public interface: the QGIS
plugin (``integrations/qgis``) runs the CLI with them.

Units: ``--patch-size`` is always the tile edge in pixels of the input's finest grid (the input
voxels for ``upscale``; the finest band grid, which is the output grid, for ``sharpen``);
``--budget`` is in seconds.

Every numeric option is checked while parsing, by the rule of :mod:`geo_med_sr.options_check` that the
Python API applies too (:func:`typed`): a bad value is refused with exit 2 and one line naming the
option, before any file is opened.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from geo_med_sr import options_check as check
from geo_med_sr.degrade import DEGRADATIONS
from geo_med_sr.errors import ConfigError
from geo_med_sr.upscale.registry import METHODS

__all__ = [
    "SELF_DEFAULT_STEPS",
    "add_amp",
    "add_band_names",
    "add_bands",
    "add_budget_steps",
    "add_degrade",
    "add_device",
    "add_method_options",
    "add_model",
    "add_no_cog",
    "add_overwrite",
    "add_patch_size",
    "add_progress_options",
    "add_report_options",
    "add_scene_inputs",
    "add_seed",
    "add_series",
    "add_sr_config",
    "add_guides",
    "add_offset",
    "progress_mode",
    "sr_config",
    "typed",
]

#: the default steps of ``sharpen``/``evaluate --sharpen`` ``--method self``, as their help states them.
SELF_DEFAULT_STEPS = "1200 fine-tuning (600 from scratch) for the finest group, 200 per coarser group"
#: the one help of ``--patch-size``: its unit.
PATCH_SIZE_UNIT = "tile edge in pixels of the input's finest grid"


def typed(rule: check.Rule) -> Callable[[str], int | float]:
    """The argparse ``type=`` of a numeric option: the text parsed and checked by ``rule``.

    argparse turns the refusal into ``argument --budget: inf: expected ...`` and exit 2.
    """

    def parse(text: str) -> int | float:
        try:
            return rule.parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "whole number" if rule.whole else "number"  # argparse's word for the type
    return parse


def add_progress_options(p: argparse.ArgumentParser, quiet_help: str = "no progress bar or summary") -> None:
    """``--quiet`` and ``--progress`` on ``p`` (mutually exclusive).

    ``--progress`` keeps the progress bars on stderr when it is not a terminal (a pipe, a log file, the QGIS
    plugin, which reads the ``NN%`` of each bar to drive its own progress bar).
    """
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", help=quiet_help)
    group.add_argument(
        "--progress",
        action="store_true",
        help="show progress bars on stderr even when it is not a terminal (default: only on a terminal)",
    )


def progress_mode(args: argparse.Namespace) -> bool | None:
    """``progress=`` for the library calls: False (quiet), True (forced) or None (on a terminal only)."""
    if getattr(args, "quiet", False):
        return False
    return True if getattr(args, "progress", False) else None


def add_budget_steps(
    p: argparse.ArgumentParser, default_steps: str | None = None, exclusive: bool = False, zero_steps: bool = False
) -> None:
    """``--steps`` and ``--budget`` (seconds) of ``--method self``.

    Args:
        p: the command's parser.
        default_steps: the default the help states (e.g. ``"600 for the finest group"``); None: none stated.
        exclusive: argparse refuses both together (otherwise the command's configuration does).
        zero_steps: ``--steps 0`` is meaningful (``sharpen --method self --model M --steps 0``: the model
            unchanged); otherwise steps start at 1.
    """
    group: Any = p.add_mutually_exclusive_group() if exclusive else p
    default = f"; default {default_steps}" if default_steps else ""
    group.add_argument(
        "--budget",
        type=typed(check.BUDGET),
        default=None,
        help="--method self: train for this many seconds instead of a number of steps (a busy machine does fewer)",
    )
    group.add_argument(
        "--steps",
        type=typed(check.STEPS_OR_ZERO if zero_steps else check.STEPS),
        default=None,
        help=f"--method self: training steps (the same output however busy the machine is{default})",
    )


def add_model(p: argparse.ArgumentParser, what: str = "checkpoint", methods: str = "--method model") -> None:
    """``--model``: the network that ``methods`` run (``what``: which kind of checkpoint or name)."""
    p.add_argument("--model", default=None, help=f"{what} for {methods}")


def add_device(p: argparse.ArgumentParser, default: str | None = None, note: str = "") -> None:
    """``--device``: ``default`` None leaves it to the command's configuration (whose default is auto)."""
    p.add_argument("--device", default=default, help=f"auto (CUDA when present, default), cpu, cuda, cuda:N{note}")


def add_amp(p: argparse.ArgumentParser, default: bool | None = False) -> None:
    """``--amp`` (``default`` None: the configuration decides when the flag is absent)."""
    p.add_argument("--amp", action="store_true", default=default, help="mixed precision on CUDA")


def add_patch_size(p: argparse.ArgumentParser, default: int | None, grid: str, detail: str) -> None:
    """``--patch-size``: the tile edge in pixels of the input's finest grid (``grid`` says which it is)."""
    p.add_argument(
        "--patch-size", type=typed(check.PATCH_SIZE), default=default, help=f"{PATCH_SIZE_UNIT} ({grid}); {detail}"
    )


def add_seed(p: argparse.ArgumentParser, default: int | None, note: str) -> None:
    """``--seed`` of the training (``note``: its default or that it overrides the config)."""
    p.add_argument("--seed", type=typed(check.SEED), default=default, help=f"random training seed ({note})")


def add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: ``what`` it replaces (and what it never does)."""
    p.add_argument("--overwrite", action="store_true", help=what)


def add_no_cog(p: argparse.ArgumentParser) -> None:
    """``--no-cog`` (``args.cog``)."""
    p.add_argument(
        "--no-cog",
        dest="cog",
        action="store_false",
        help="write a tiled GeoTIFF instead of a Cloud-Optimized GeoTIFF with overviews",
    )


def add_series(p: argparse.ArgumentParser) -> None:
    """``--series``: which series of a DICOM folder."""
    p.add_argument("--series", default=None, help="SeriesInstanceUID to read from a DICOM folder with several series")


def add_bands(p: argparse.ArgumentParser, verb: str = "keep") -> None:
    """``--bands`` of a GeoTIFF input: 1-based band numbers."""
    p.add_argument("--bands", default=None, help=f"GeoTIFF bands to {verb}, 1-based, e.g. 1,2,3 (default: all)")


def add_band_names(p: argparse.ArgumentParser, verb: str, example: str) -> None:
    """``--bands`` of a multi-resolution product: band names."""
    p.add_argument("--bands", default=None, help=f"band names to {verb}, e.g. {example} (default: all)")


def add_sr_config(p: argparse.ArgumentParser) -> None:
    """``--config``: an upscale configuration (:class:`geo_med_sr.upscale.config.SRConfig`)."""
    p.add_argument("--config", default=None, help="YAML config file or bundled name (medical/mri, medical/ct)")


def add_degrade(p: argparse.ArgumentParser, default: str | None, purpose: str) -> None:
    """``--degrade``: the degradation model (``purpose``: what it is used for)."""
    p.add_argument(
        "--degrade",
        choices=DEGRADATIONS.names(),
        default=default,
        help=f"degradation model {purpose} (default blockavg)",
    )


def add_report_options(p: argparse.ArgumentParser, plot: str) -> None:
    """``--json`` and ``--plot`` of an evaluation (``plot``: what the PNG shows)."""
    p.add_argument("--json", default=None, help="write the scores as JSON here")
    p.add_argument("--plot", default=None, help=f"write a PNG with {plot}")


def add_scene_inputs(p: argparse.ArgumentParser) -> None:
    """The positional INPUT... of a multi-resolution product."""
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="S2 folder, SAFE, STAC item JSON or band files")


def add_guides(p: argparse.ArgumentParser) -> None:
    """``--pan`` or ``--guide``: a separate finer GeoTIFF."""
    source = p.add_mutually_exclusive_group()
    source.add_argument("--pan", default=None, help="panchromatic GeoTIFF: pan-sharpen the INPUT bands with it")
    source.add_argument("--guide", default=None, help="any finer GeoTIFF whose bands guide the INPUT bands")


def add_offset(p: argparse.ArgumentParser) -> None:
    """``--offset``: the DN offset of the bands."""
    p.add_argument(
        "--offset",
        type=typed(check.OFFSET),
        default=None,
        help="DN offset of the bands (S2 L2A >= 04.00: -1000) if not in metadata",
    )


def add_guide_options(p: argparse.ArgumentParser) -> None:
    """Guided MRI: ``--guide`` (a finer volume of the same patient) and how it is brought into the target's space."""
    p.add_argument(
        "--guide",
        default=None,
        metavar="GUIDE",
        help="a finer volume of the same patient (e.g. the isotropic 3D T1w; NIfTI file or DICOM series folder, any "
        "orientation) that restores the thick axis: registered rigidly onto INPUT, then guided --method self (the "
        "default with a guide); classical methods ignore it. GUIDE is never changed",
    )
    p.add_argument(
        "--guide-registered",
        action="store_true",
        help="GUIDE already shares INPUT's world space (same scanner frame, no head motion): skip the registration",
    )
    p.add_argument(
        "--allow-other-study",
        action="store_true",
        help="go on when a DICOM GUIDE's PatientID or StudyInstanceUID differs from INPUT's (recorded)",
    )


def check_guide_method(args: argparse.Namespace) -> None:
    """Refuse ``--method model`` with ``--guide`` (a bundled network takes no guide), before any work."""
    if getattr(args, "guide", None) and getattr(args, "method", None) == "model":
        raise ConfigError("--method model does not use a guide: leave --method out (guided self) or drop --guide")


def add_method_options(p: argparse.ArgumentParser) -> None:
    """Options shared by upscale and batch: method, model, engine, output values, GeoTIFF bands."""
    p.add_argument(
        "--method",
        choices=METHODS.names(),
        default=None,
        help=(
            "SR network (default), self (a network trained on INPUT itself, no download), or a classical method on "
            "the same grid; bspline-ibp = cubic B-spline + back-projection onto the input"
        ),
    )
    add_budget_steps(p, "1600 through-plane, 700 2D, 500 3D")
    p.add_argument(
        "--consistency",
        action="store_true",
        default=None,
        help="back-project the output so that, re-degraded, it equals the input",
    )
    add_degrade(p, None, "for --consistency")
    p.add_argument(
        "--ensemble",
        action="store_true",
        default=None,
        help=(
            "geometric self-ensemble: average over the 8 flips/transposes that keep the grid (8x the compute, "
            "usually +0.1-0.2 dB)"
        ),
    )
    add_model(p, "checkpoint (.safetensors with its .json)")
    p.add_argument(
        "--fast",
        action="store_true",
        default=None,
        help=(
            "use the small bundled network (satellite x2: 3.6x less compute, about 0.2 dB lower; see the README) "
            "for large scenes"
        ),
    )
    add_sr_config(p)
    add_device(p)
    add_amp(p, default=None)
    add_patch_size(
        p,
        None,
        "input voxels",
        "for tiled models, --ensemble and --consistency (default 64; bundled EDSR networks stream in columns "
        "instead, see inference.column_size)",
    )
    p.add_argument(
        "--batch-size", type=typed(check.BATCH_SIZE), default=None, help="tiles per forward pass (default 4)"
    )
    p.add_argument("--float32", action="store_true", help="write float32 values instead of the input's dtype")
    add_bands(p)
    add_no_cog(p)
    p.add_argument(
        "--fill-radius",
        type=typed(check.FILL_RADIUS),
        default=None,
        help=(
            "pixels over which nodata is filled from valid neighbours before the network (default: the model's "
            "receptive radius)"
        ),
    )


def sr_config(args: argparse.Namespace) -> Any:
    """The SRConfig that the :func:`add_method_options` options ask for (the --config file, then the flags)."""
    from geo_med_sr.upscale.config import SRConfig, load_config

    config = load_config(args.config) if args.config else SRConfig()
    return config.updated(
        model={
            "method": args.method,
            "name": args.model,
            "consistency": args.consistency,
            "ensemble": args.ensemble,
            "degradation": args.degrade,
            "budget": args.budget,
            "steps": args.steps,
            "fast": args.fast,
        },
        inference={
            "device": args.device,
            "amp": args.amp,
            "patch_size": args.patch_size,
            "batch_size": args.batch_size,
            "fill_radius": args.fill_radius,
        },
        output={"dtype": "float32" if args.float32 else None},
    )
