"""``geo-med-sr info``: a thin shell over :func:`geo_med_sr.info.describe`."""

from __future__ import annotations

import argparse

from geo_med_sr.cli.options import add_series

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``info`` on the subcommand parser ``sub``."""
    p = sub.add_parser(
        "info",
        help="print the geometry of an image",
        description=(
            "Print shape, spacing, orientation, origin, dtype and format details of INPUT (CRS, transform, "
            "bounds, bands and nodata for GeoTIFF)."
        ),
    )
    p.add_argument("input", help=".nii/.nii.gz file, DICOM series folder or .tif GeoTIFF")
    add_series(p)


def run(args: argparse.Namespace) -> None:
    """Print the description of ``args.input``."""
    from geo_med_sr.info import describe

    print(describe(args.input, series=args.series))
