"""``geo-med-sr evaluate``: score methods on a reference; two modes, chosen by argparse.

* ``evaluate REFERENCE --scale S``: single-image SR (:func:`geo_med_sr.upscale.evaluate.evaluate`).
* ``evaluate --sharpen INPUT...``: guided sharpening by the reduced-resolution (Wald) protocol
  (:func:`geo_med_sr.sharpening.evaluate.evaluate_sharpening`).

The ``--sharpen`` flag may stand anywhere; the command's parser (:class:`~geo_med_sr.cli.common.CommandParser`)
hands the arguments to the mode's own parser, and ``--help`` documents both modes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from geo_med_sr import options_check as check
from geo_med_sr.cli.common import CommandParser
from geo_med_sr.cli.options import (
    SELF_DEFAULT_STEPS,
    add_band_names,
    add_bands,
    add_budget_steps,
    add_degrade,
    add_device,
    add_guide_options,
    add_guides,
    add_model,
    add_offset,
    add_patch_size,
    add_report_options,
    add_scene_inputs,
    add_seed,
    add_series,
    add_sr_config,
    typed,
)
from geo_med_sr.sharpening.registry import SHARPEN_METHODS
from geo_med_sr.upscale.registry import METHODS

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``evaluate`` (and its ``--sharpen`` mode) on the subcommand parser ``sub``."""
    p: CommandParser = sub.add_parser(
        "evaluate",
        help="degrade a reference image, restore it with each method and report PSNR/SSIM",
        description="Degrade REFERENCE by SCALE (block average by default: exact geometry), restore it with each "
        "--method and report PSNR and SSIM on valid pixels (border of SCALE pixels excluded, data range = "
        "reference max - min) and the data-consistency error (re-degraded output vs the LR input). "
        "For guided sharpening (Sentinel-2 bands, pan-sharpening) add --sharpen: its options follow.",
    )
    p.add_argument("reference", help="reference image (.nii/.nii.gz, DICOM folder or .tif)")
    p.add_argument("--scale", required=True, help="whole factor or one per axis in index order, e.g. 2 or 1,1,4")
    p.add_argument(
        "--method",
        action="append",
        dest="methods",
        choices=METHODS.names(),
        help="repeat for several (default: bicubic, bspline, bspline-ibp)",
    )
    add_budget_steps(p)
    add_model(p)
    p.add_argument(
        "--fast", action="store_true", help="--method model uses the small bundled network (what upscale --fast runs)"
    )
    add_degrade(p, "blockavg", "of the reference")
    p.add_argument(
        "--consistency", action="store_true", help="also score each method followed by back-projection onto the input"
    )
    p.add_argument(
        "--ensemble",
        action="store_true",
        help="run model and self with the geometric self-ensemble (8 flips/transposes; rows named +ens)",
    )
    add_patch_size(
        p,
        None,
        "the degraded reference's pixels",
        "default 64; results are tile-invariant, larger tiles repeat less halo work",
    )
    add_series(p)
    add_bands(p, "use")
    add_guide_options(p)
    add_sr_config(p)
    add_report_options(p, "LR / methods / HR panels, zoomed crops and error maps")
    _add_sharpen_mode(p)


def _add_sharpen_mode(p: CommandParser) -> None:
    """``evaluate --sharpen``: the guided-sharpening protocol, with its own arguments."""
    m = p.add_mode(
        "--sharpen",
        help="score guided sharpening instead: INPUT... and the options of 'geo-med-sr evaluate --sharpen' below",
        description="Score guided sharpening by the reduced-resolution (Wald) protocol: every band of INPUT is "
        "reduced by its group's ratio (block average; exact area averages where grids are offset), each --method "
        "restores the reduced coarse bands with the reduced finer ones (self trains on the reduced scene's own "
        "reduced copy), and the result is compared with the original bands: per band PSNR, SSIM and UIQI; ERGAS, "
        "SAM and Q2n per group; with --qnr also the full-resolution QNR (D_lambda, D_s).",
    )
    add_scene_inputs(m)
    add_guides(m)
    add_band_names(m, "use", "B02,B03,B04,B08,B05")
    m.add_argument(
        "--method",
        action="append",
        dest="methods",
        choices=SHARPEN_METHODS.names(),
        help="repeat for several (default: bicubic, brovey, glp, self)",
    )
    m.add_argument(
        "--ratio", action="append", type=typed(check.RATIO), default=None, help="only the group with this ratio (2, 6)"
    )
    add_budget_steps(m, SELF_DEFAULT_STEPS, exclusive=True)
    add_model(m, "guided checkpoint or bundled name")
    add_offset(m)
    add_device(m, "auto")
    add_seed(m, 0, "default 0")
    m.add_argument("--qnr", action="store_true", help="also run each method at full resolution and report QNR")
    add_report_options(m, "truth / each method per band, whole and zoomed")


#: what ``--plot`` may be named: the report is a PNG (the only format that carries our mark, so only a
#: PNG is recognised as an earlier report that may be replaced).
PLOT_SUFFIXES = (".png", ".PNG")


def check_reports(json_path: str | None, plot_path: str | None, *, inputs: Sequence[str] = ()) -> None:
    """The output pre-flight of both modes' reports, before any evaluation runs.

    ``--plot`` is a ``.png`` file name (:func:`geo_med_sr.io.check_file_output`), not an input and not
    the ``--json`` file; then each passes :func:`~geo_med_sr.upscale.evaluate.check_report_paths`
    (a writable folder; an existing file there must be an earlier report).

    Raises:
        OutputError: naming the report and what to do.
    """
    from geo_med_sr import io
    from geo_med_sr.errors import OutputError, file_error
    from geo_med_sr.upscale.evaluate import check_report_paths

    if json_path is not None:
        io.check_file_output(json_path, suffixes=("",), what="the --json report", inputs=inputs)
    if plot_path is not None:
        io.check_file_output(plot_path, suffixes=PLOT_SUFFIXES, what="the --plot report", inputs=inputs)
        if json_path is not None and Path(json_path).resolve() == Path(plot_path).resolve():
            raise file_error(OutputError, plot_path, "--json and --plot name the same file; give each its own name")
    check_report_paths(json_path, plot_path)


def run(args: argparse.Namespace) -> None:
    """Run the mode ``args`` were parsed in; print the table, write ``--json`` / ``--plot``."""
    if args.sharpen:
        _run_sharpen(args)
        return
    from geo_med_sr.io import parse_bands
    from geo_med_sr.upscale.config import SRConfig, load_config
    from geo_med_sr.upscale.evaluate import evaluate, format_table, save_json, save_plot

    check_reports(args.json, args.plot, inputs=[args.reference])  # before the evaluation runs, not after
    config = load_config(args.config) if args.config else SRConfig()
    methods = args.methods or ["bicubic", "bspline", "bspline-ibp"]
    config = config.updated(
        model={"budget": args.budget, "steps": args.steps, "fast": args.fast or None},
        inference={"patch_size": args.patch_size},
    )
    result = evaluate(
        args.reference,
        args.scale,
        methods,
        model=args.model,
        degrade=args.degrade,
        consistency=args.consistency,
        ensemble=args.ensemble,
        config=config,
        series=args.series,
        bands=parse_bands(args.bands),
        guide=args.guide,
        guide_registered=args.guide_registered,
        allow_other_study=args.allow_other_study,
    )
    print(format_table(result))
    if args.json:
        save_json(result, args.json)
    if args.plot:
        save_plot(result, args.plot)


def _run_sharpen(args: argparse.Namespace) -> None:
    """``evaluate --sharpen``: the guided-sharpening evaluation."""
    from geo_med_sr.sharpening.evaluate import (
        DEFAULT_METHODS,
        evaluate_sharpening,
        format_sharpen_table,
        save_sharpen_plot,
    )
    from geo_med_sr.upscale.evaluate import save_json

    check_reports(args.json, args.plot, inputs=[*args.inputs, *(p for p in (args.pan, args.guide) if p)])
    result = evaluate_sharpening(
        args.inputs,
        pan=args.pan,
        guide=args.guide,
        bands=args.bands,
        methods=args.methods or list(DEFAULT_METHODS),
        ratios=args.ratio,
        budget=args.budget,
        steps=args.steps,
        model=args.model,
        offset=args.offset,
        device=args.device,
        seed=args.seed,
        qnr=args.qnr,
        keep_arrays=bool(args.plot),
    )
    print(format_sharpen_table(result))
    if args.plot:
        save_sharpen_plot(result, args.plot)
    if args.json:
        clean = {**result, "groups": [{k: v for k, v in g.items() if k != "_arrays"} for g in result["groups"]]}
        save_json(clean, args.json)
