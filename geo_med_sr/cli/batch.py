"""``geo-med-sr batch``: a thin shell over :func:`geo_med_sr.upscale.batch.batch` (many inputs, resumable)."""

from __future__ import annotations

import argparse
import sys

from geo_med_sr import options_check as check
from geo_med_sr.cli.common import EXIT_FAILED
from geo_med_sr.cli.options import (
    add_method_options,
    add_overwrite,
    add_progress_options,
    progress_mode,
    sr_config,
    typed,
)
from geo_med_sr.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``batch`` on the subcommand parser ``sub``."""
    p = sub.add_parser(
        "batch",
        help="super-resolve many files on a Dask cluster, resumably",
        description="Upscale every INPUT (files, DICOM series folders or quoted glob patterns such as 'scenes/*.tif') "
        "into OUT_DIR, one Dask task per input, on a local cluster of --workers processes or on the cluster at "
        "--scheduler. Outputs keep the inputs' names. Re-running skips outputs already made from the same input "
        "with the same settings (provenance request: input hash, method, model hash, scale, options) and finishes "
        "what a crashed or killed run left; one bad input does not stop the others. A summary is printed and "
        "written to OUT_DIR/geo-med-sr-batch.json and .csv. Exit status: 0 all done or skipped, 1 some inputs "
        "failed, 2 bad options.",
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
    from geo_med_sr import batch

    for name in ("workers", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be at least 1")
    report = batch(
        args.inputs,
        args.out_dir,
        args.scale,
        sr_config(args),
        workers=args.workers,
        scheduler=args.scheduler,
        threads=args.threads,
        bands=args.bands,
        cog=args.cog,
        overwrite=args.overwrite,
        vrt=args.vrt,
        progress=progress_mode(args),
    )
    if not args.quiet:
        print(report.table())
        print(f"report: {', '.join(str(p) for p in report.files)}" + (f"; mosaic: {report.vrt}" if report.vrt else ""))
    for outcome in report.failed:
        print(f"geo-med-sr: failed: {outcome.error}", file=sys.stderr)
    return EXIT_FAILED if report.failed else 0
