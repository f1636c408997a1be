"""``geo-med-sr batch``: a thin shell over :func:`geo_med_sr.upscale.batch.batch` (many inputs, resumable)
and, with ``--sharpen``, over :func:`geo_med_sr.sharpening.batch.batch_sharpen` (many products).

The ``--sharpen`` flag may stand anywhere; the command's parser (:class:`~geo_med_sr.cli.common.CommandParser`)
then parses the arguments with the options of ``sharpen`` instead of those of ``upscale``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from geo_med_sr import options_check as check
from geo_med_sr.cli.common import EXIT_FAILED, CommandParser
from geo_med_sr.cli.options import (
    SELF_DEFAULT_STEPS,
    add_amp,
    add_band_names,
    add_budget_steps,
    add_device,
    add_method_options,
    add_model,
    add_no_cog,
    add_offset,
    add_overwrite,
    add_patch_size,
    add_progress_options,
    add_seed,
    progress_mode,
    sr_config,
    typed,
)
from geo_med_sr.errors import ConfigError
from geo_med_sr.sharpening.registry import DEFAULT_METHOD, SHARPEN_METHODS

__all__ = ["add_parser", "run"]


class _NotWithSharpen(argparse.Action):
    """An option of the default mode met with ``--sharpen`` (``--scale``): refused in one line, saying why
    (``reason``); hidden from the mode's help."""

    def __init__(self, *args: Any, reason: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reason = reason

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        raise argparse.ArgumentError(self, f"not allowed with --sharpen ({self.reason})")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``batch`` (and its ``--sharpen`` mode) on the subcommand parser ``sub``."""
    p: CommandParser = sub.add_parser(
        "batch",
        help="super-resolve many files on a Dask cluster, resumably",
        description="Upscale every INPUT (files, DICOM series folders or quoted glob patterns such as 'scenes/*.tif') "
        "into OUT_DIR, one Dask task per input, on a local cluster of --workers processes or on the cluster at "
        "--scheduler. Outputs keep the inputs' names. Re-running skips outputs already made from the same input "
        "with the same settings (provenance request: input hash, method, model hash, scale, options) and finishes "
        "what a crashed or killed run left; one bad input does not stop the others. A summary is printed and "
        "written to OUT_DIR/geo-med-sr-batch.json and .csv. Exit status: 0 all done or skipped, 1 some inputs "
        "failed, 2 bad options. To sharpen Sentinel-2 products instead, add --sharpen: its options follow.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="input files, DICOM folders or glob patterns (quote them; ** recurses)",
    )
    p.add_argument("--out-dir", required=True, help="output folder (created if missing)")
    p.add_argument(
        "--scale", required=True, help="as for upscale, the same for every input (GeoTIFF 2 axes, NIfTI/DICOM 3)"
    )
    add_method_options(p)
    _add_cluster_options(p)
    _add_sharpen_mode(p)


def _add_sharpen_mode(p: CommandParser) -> None:
    """``batch --sharpen``: every product sharpened, with the options of ``sharpen``."""
    m = p.add_mode(
        "--sharpen",
        help="sharpen products instead: PRODUCT... and the options of 'geo-med-sr batch --sharpen' below",
        description="Sharpen every PRODUCT (a Sentinel-2 folder in COG layout, a .SAFE folder, a STAC item JSON, a "
        "STAC ItemCollection JSON: one product per item, its assets found from the collection's folder; or quoted "
        "glob patterns of them) into OUT_DIR/<product name>.tif (the folder's name without .SAFE, or the STAC "
        "item's id), one Dask task per product, as 'geo-med-sr sharpen' would with the same options. Re-running "
        "skips outputs already made from the same band files with the same settings, and finishes what a killed "
        "run left; one bad product does not stop the others. Report and exit status as for batch.",
    )
    m.add_argument(
        "inputs",
        nargs="+",
        metavar="PRODUCT",
        help="S2 folders, SAFE folders, STAC item or ItemCollection JSONs, or glob patterns (quote them)",
    )
    m.add_argument("--out-dir", required=True, help="output folder (created if missing)")
    m.add_argument(
        "--scale",
        action=_NotWithSharpen,
        reason="sharpening restores the coarse bands onto each product's finest grid: drop --scale",
        help=argparse.SUPPRESS,
    )
    m.add_argument(
        "--method", default=DEFAULT_METHOD, choices=SHARPEN_METHODS.names(), help=f"default {DEFAULT_METHOD}"
    )
    add_band_names(m, "keep", "B05,B06,B8A")
    add_budget_steps(m, SELF_DEFAULT_STEPS, exclusive=True, zero_steps=True)
    add_model(m, "guided checkpoint or bundled name", "--method model (or self)")
    add_offset(m)
    add_device(m, "auto")
    add_amp(m)
    add_patch_size(m, 512, "the finest band grid, which is the output grid", "default 512; results are tile-invariant")
    add_seed(m, 0, "default 0")
    add_no_cog(m)
    _add_cluster_options(m)


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    """The options of both modes: the cluster, the mosaic, overwrite and progress."""
    p.add_argument(
        "--workers",
        type=typed(check.WORKERS),
        default=None,
        help="worker processes of the local Dask cluster (default: one per 4 cores)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help=(
            "address of a running Dask scheduler (tcp://host:8786) instead of a local cluster; its workers need "
            "geo_med_sr and the same paths"
        ),
    )
    p.add_argument(
        "--threads",
        type=typed(check.WORKERS),
        default=None,
        help="torch threads per task (default: the cores divided among the local workers)",
    )
    p.add_argument(
        "--vrt",
        default=None,
        help="also write a GDAL VRT mosaic of the GeoTIFF outputs (a bare name is put in OUT_DIR)",
    )
    add_overwrite(p, "replace outputs made from other inputs or settings (not needed to resume)")
    add_progress_options(p, "no progress bar or summary table")


def run(args: argparse.Namespace) -> int:
    """Run the batch; print its table and report files; 1 when some inputs failed (:data:`EXIT_FAILED`)."""
    from geo_med_sr import batch, batch_sharpen

    for name in ("workers", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be at least 1")
    cluster = {
        "workers": args.workers,
        "scheduler": args.scheduler,
        "threads": args.threads,
        "overwrite": args.overwrite,
        "vrt": args.vrt,
        "progress": progress_mode(args),
    }
    if args.sharpen:
        report = batch_sharpen(
            args.inputs,
            args.out_dir,
            method=args.method,
            bands=args.bands,
            budget=args.budget,
            steps=args.steps,
            model=args.model,
            offset=args.offset,
            device=args.device,
            amp=args.amp,
            tile=args.patch_size,
            seed=args.seed,
            cog=args.cog,
            **cluster,
        )
    else:
        report = batch(
            args.inputs, args.out_dir, args.scale, sr_config(args), bands=args.bands, cog=args.cog, **cluster
        )
    if not args.quiet:
        print(report.table())
        print(f"report: {', '.join(str(p) for p in report.files)}" + (f"; mosaic: {report.vrt}" if report.vrt else ""))
    for outcome in report.failed:
        print(f"geo-med-sr: failed: {outcome.error}", file=sys.stderr)
    return EXIT_FAILED if report.failed else 0
