"""``geo-med-sr upscale``: a thin shell over :func:`geo_med_sr.upscale.pipeline.super_resolve`."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from geo_med_sr import options_check as check
from geo_med_sr.cli.dicom import add_pacs_options, check_upscale_push, push_upscale_result, upscale_input, uses_pacs
from geo_med_sr.cli.options import (
    add_guide_options,
    add_method_options,
    add_overwrite,
    add_progress_options,
    add_series,
    check_guide_method,
    progress_mode,
    sr_config,
    typed,
)

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``upscale`` on the subcommand parser ``sub``."""
    p = sub.add_parser(
        "upscale",
        help="super-resolve a NIfTI file, a DICOM series folder or a GeoTIFF",
        description="Upscale INPUT by SCALE keeping the exact field of view and write OUTPUT "
        "(.nii/.nii.gz file, a folder name for a DICOM series, or a .tif Cloud-Optimized GeoTIFF). "
        "GeoTIFF scenes are streamed window by window, so any scene size works.",
    )
    p.add_argument(
        "input",
        nargs="?",
        help="input .nii/.nii.gz file, DICOM series folder, .tif GeoTIFF or dicomweb:// series URL (or --from)",
    )
    p.add_argument("output", help="output .nii/.nii.gz file, folder (DICOM series) or .tif (GeoTIFF input)")
    p.add_argument(
        "--scale",
        default=None,
        help=(
            "whole factor, or one per pixel axis in index order, fastest first (NIfTI i,j,k; DICOM "
            "column,row,slice; GeoTIFF column,row), e.g. 2 or 1,1,4 (this or --target-spacing is required)"
        ),
    )
    p.add_argument(
        "--slice-thickness",
        type=typed(check.MM),
        default=None,
        metavar="MM",
        help="--method self on thick slices: the slice thickness (default: DICOM SliceThickness, else estimated "
        "from the data); recorded in the provenance",
    )
    p.add_argument(
        "--target-spacing",
        type=typed(check.MM),
        default=None,
        metavar="MM",
        help="NIfTI/DICOM: instead of --scale, the whole factor per axis that brings the voxel spacing closest to "
        "MM (1.02 x 1.02 x 4.8 mm with 1 -> 1,1,5); the choice is printed and recorded",
    )
    add_guide_options(p)
    add_method_options(p)
    add_series(p)
    _add_dicom_output_options(p)
    add_overwrite(p, "replace OUTPUT if this tool wrote it (anything else at OUTPUT is never replaced)")
    add_pacs_options(p)
    add_progress_options(p)


def _add_dicom_output_options(p: argparse.ArgumentParser) -> None:
    """Options of DICOM series outputs: the IOD and the patient/study identity."""
    p.add_argument(
        "--modality",
        choices=("MR", "CT", "OT"),
        default=None,
        help=(
            "DICOM output: write MR or CT Image Storage (geometry that PACS, GDCM and ITK read) or OT (Secondary "
            "Capture); default: the source's modality for DICOM inputs, OT for NIfTI inputs"
        ),
    )
    p.add_argument(
        "--template",
        default=None,
        help="DICOM output: a DICOM series folder whose patient and study the new series joins",
    )
    p.add_argument("--patient-id", default=None, help="DICOM output: PatientID (default: template's or source's)")
    p.add_argument("--patient-name", default=None, help="DICOM output: PatientName")


def _write_options(args: argparse.Namespace) -> dict[str, Any]:
    """The DICOM output options given on the command line (None when not given)."""
    return {
        "modality": args.modality,
        "template": args.template,
        "patient_id": args.patient_id,
        "patient_name": args.patient_name,
    }


def run(args: argparse.Namespace) -> None:
    """Upscale ``args.input`` (or the series fetched with ``--from``) and print what was written."""
    from geo_med_sr import super_resolve

    pacs = uses_pacs(args)  # a file-to-file run never enters the PACS code
    check_guide_method(args)
    if pacs:
        check_upscale_push(args)  # --send/--stow need a DICOM series output: refused before any work
    # a PACS series is fetched into a temporary folder, removed afterwards
    with upscale_input(args) if pacs else contextlib.nullcontext(args.input) as source:
        result = super_resolve(
            source,
            args.output,
            args.scale,
            sr_config(args),
            series=args.series,
            bands=args.bands,
            overwrite=args.overwrite,
            progress=progress_mode(args),
            cog=args.cog,
            write_options=_write_options(args),
            target_spacing=args.target_spacing,
            slice_thickness=args.slice_thickness,
            guide=args.guide,
            guide_registered=args.guide_registered,
            allow_other_study=args.allow_other_study,
        )
    chosen = result.provenance.get("target_spacing")
    if chosen and not args.quiet:
        mm = " x ".join
        print(
            f"target spacing {chosen['target_mm']:g} mm: {mm(f'{v:g}' for v in chosen['input_mm'])} mm -> scale "
            f"{','.join(map(str, chosen['scale']))} ({mm(f'{v:g}' for v in chosen['output_mm'])} mm)"
        )
    if not args.quiet:
        print(
            f"wrote {result.output}: {result.input_shape} -> {result.output_shape} voxels, method "
            f"{result.provenance['method']}, scale {tuple(result.provenance['scale'])}"
        )
    if pacs:
        push_upscale_result(args, result.output)
