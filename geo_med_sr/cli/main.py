"""Command-line interface: a thin shell over :mod:`geo_med_sr.upscale.pipeline`.

Every error the tool knows about is printed as one line ``geo-med-sr: error: <file>: <problem>``
and exits with status 2 (the same status argparse uses for bad options).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any

from geo_med_sr import __version__
from geo_med_sr.cli.common import add_progress_options, progress_mode
from geo_med_sr.cli.dicom import (
    add_dicom_node,
    add_pacs_options,
    check_upscale_push,
    push_upscale_result,
    run_dicom_node,
)
from geo_med_sr.cli.dicom import upscale_input as _upscale_input
from geo_med_sr.cli.sharpen import add_sharpen, run_evaluate_sharpen, run_sharpen
from geo_med_sr.degrade import DEGRADATIONS
from geo_med_sr.errors import ConfigError, GeoMedSRError
from geo_med_sr.upscale.methods import METHODS

EXIT_ERROR = 2
#: ``batch``: some inputs failed (the others were done).
EXIT_FAILED = 1


def _add_method_options(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of self-supervised training for --method self (default 180 on CPU, 60 on GPU)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="--method self: train for this many steps instead of a time budget (the same output on a busy machine)",
    )
    p.add_argument(
        "--consistency",
        action="store_true",
        default=None,
        help="back-project the output so that, re-degraded, it equals the input",
    )
    p.add_argument(
        "--degrade",
        choices=DEGRADATIONS.names(),
        default=None,
        help="degradation model for --consistency (default blockavg)",
    )
    p.add_argument(
        "--ensemble",
        action="store_true",
        default=None,
        help=(
            "geometric self-ensemble: average over the 8 flips/transposes that keep the grid (8x the compute, "
            "usually +0.1-0.2 dB)"
        ),
    )
    p.add_argument("--model", default=None, help="checkpoint (.safetensors with its .json) for --method model")
    p.add_argument(
        "--fast",
        action="store_true",
        default=None,
        help=(
            "use the small bundled network (satellite x2: 3.6x less compute, about 0.2 dB lower; see the README) "
            "for large scenes"
        ),
    )
    p.add_argument("--config", default=None, help="YAML config file or bundled name (medical/mri, medical/ct)")
    p.add_argument("--device", default=None, help="auto (CUDA when present, default), cpu, cuda, cuda:N")
    p.add_argument("--amp", action="store_true", default=None, help="mixed precision on CUDA")
    p.add_argument(
        "--patch-size",
        type=int,
        default=None,
        help=(
            "tile size in input voxels for tiled models, --ensemble and --consistency (default 64; bundled EDSR "
            "networks stream in columns instead, see inference.column_size)"
        ),
    )
    p.add_argument("--batch-size", type=int, default=None, help="tiles per forward pass (default 4)")
    p.add_argument("--float32", action="store_true", help="write float32 values instead of the input's dtype")
    p.add_argument("--bands", default=None, help="GeoTIFF bands to keep, 1-based, e.g. 1,2,3 (default: all)")
    p.add_argument(
        "--no-cog",
        dest="cog",
        action="store_false",
        help="write a tiled GeoTIFF instead of a Cloud-Optimized GeoTIFF with overviews",
    )
    p.add_argument(
        "--fill-radius",
        type=int,
        default=None,
        help=(
            "pixels over which nodata is filled from valid neighbours before the network (default: the model's "
            "receptive radius)"
        ),
    )


def _sr_config(args: argparse.Namespace) -> Any:
    """The SRConfig that upscale/batch options ask for (the --config file, then the flags)."""
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


def _add_upscale(sub: argparse._SubParsersAction) -> None:
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
        type=float,
        default=None,
        metavar="MM",
        help="--method self on thick slices: the slice thickness (default: DICOM SliceThickness, else estimated "
        "from the data); recorded in the provenance",
    )
    p.add_argument(
        "--target-spacing",
        type=float,
        default=None,
        metavar="MM",
        help="NIfTI/DICOM: instead of --scale, the whole factor per axis that brings the voxel spacing closest to "
        "MM (1.02 x 1.02 x 4.8 mm with 1 -> 1,1,5); the choice is printed and recorded",
    )
    _add_method_options(p)
    p.add_argument("--series", default=None, help="SeriesInstanceUID to read from a DICOM folder with several series")
    _add_dicom_output_options(p)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUTPUT if this tool wrote it (anything else at OUTPUT is never replaced)",
    )
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


def _add_batch(sub: argparse._SubParsersAction) -> None:
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
    _add_method_options(p)
    p.add_argument(
        "--workers",
        type=int,
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
        type=int,
        default=None,
        help="torch threads per task (default: the cores divided among the local workers)",
    )
    p.add_argument(
        "--vrt",
        default=None,
        help="also write a GDAL VRT mosaic of the GeoTIFF outputs (a bare name is put in OUT_DIR)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace outputs made from other inputs or settings (not needed to resume)",
    )
    add_progress_options(p, "no progress bar or summary table")


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="print the geometry of an image",
        description=(
            "Print shape, spacing, orientation, origin, dtype and format details of INPUT (CRS, transform, "
            "bounds, bands and nodata for GeoTIFF)."
        ),
    )
    p.add_argument("input", help=".nii/.nii.gz file, DICOM series folder or .tif GeoTIFF")
    p.add_argument("--series", default=None, help="SeriesInstanceUID for a DICOM folder with several series")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job on generated sample data",
        description=(
            "Generate a synthetic oblique MRI-like volume, make it thick-sliced, upscale it from NIfTI and "
            "from DICOM, and write outputs plus a side-by-side PNG."
        ),
    )
    p.add_argument(
        "--out",
        default="demo_output",
        help="folder for the demo's files (default demo_output); files the demo made before are replaced",
    )


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="degrade a reference image, restore it with each method and report PSNR/SSIM",
        description="Degrade REFERENCE by SCALE (block average by default: exact geometry), restore it with each "
        "--method and report PSNR and SSIM on valid pixels (border of SCALE pixels excluded, data range = "
        "reference max - min) and the data-consistency error (re-degraded output vs the LR input). "
        "For guided sharpening (Sentinel-2 bands, pan-sharpening) see: geo-med-sr evaluate --sharpen --help",
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
    p.add_argument("--budget", type=float, default=None, help="seconds of self-supervised training for --method self")
    p.add_argument("--steps", type=int, default=None, help="--method self: training steps instead of --budget")
    p.add_argument("--model", default=None, help="checkpoint for --method model")
    p.add_argument(
        "--fast", action="store_true", help="--method model uses the small bundled network (what upscale --fast runs)"
    )
    p.add_argument(
        "--degrade",
        default="blockavg",
        choices=DEGRADATIONS.names(),
        help="degradation model (default blockavg)",
    )
    p.add_argument(
        "--consistency", action="store_true", help="also score each method followed by back-projection onto the input"
    )
    p.add_argument(
        "--ensemble",
        action="store_true",
        help="run model and self with the geometric self-ensemble (8 flips/transposes; rows named +ens)",
    )
    p.add_argument(
        "--patch-size",
        type=int,
        default=None,
        help="tile size in LR pixels (default 64; results are tile-invariant, larger tiles repeat less halo work)",
    )
    p.add_argument("--series", default=None, help="SeriesInstanceUID for a DICOM folder with several series")
    p.add_argument("--bands", default=None, help="GeoTIFF bands to use, e.g. 1,2,3")
    p.add_argument("--config", default=None, help="YAML config file or bundled name")
    p.add_argument("--json", default=None, help="write the scores as JSON here")
    p.add_argument(
        "--plot", default=None, help="write a PNG with LR / methods / HR panels, zoomed crops and error maps"
    )


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an SR network on your HR images (pairs made on the fly by a degradation model)",
        description="Train a network from HR images: random patches from valid regions are degraded on the fly "
        "(block average, Gaussian PSF or MRI slice profile) and the network learns to restore them. Writes "
        "OUT (.safetensors + .json, usable with upscale --model OUT) and OUT's training state for --resume.",
    )
    p.add_argument(
        "--config", default=None, help="training YAML (e.g. configs/train/sat_x2.yaml); default: a small 2D EDSR x2"
    )
    p.add_argument("--data", nargs="+", required=True, help="HR training files (.nii/.nii.gz, DICOM folders, .tif)")
    p.add_argument("--val", nargs="*", default=(), help="held-out files for validation PSNR")
    p.add_argument("--out", required=True, help="checkpoint to write, ending in .safetensors")
    p.add_argument("--steps", type=int, default=None, help="training steps (overrides the config)")
    p.add_argument("--seed", type=int, default=None, help="random seed (overrides the config)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda (overrides the config)")
    p.add_argument("--resume", action="store_true", help="continue from OUT and its saved training state")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT when not resuming")


def build_parser() -> argparse.ArgumentParser:
    """The ``geo-med-sr`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="geo-med-sr", description="Super-resolution for medical volumes and satellite imagery with exact geometry."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_upscale(sub)
    add_sharpen(sub)
    _add_batch(sub)
    _add_info(sub)
    _add_evaluate(sub)
    _add_train(sub)
    _add_demo(sub)
    add_dicom_node(sub)
    return parser


def _run_upscale(args: argparse.Namespace) -> None:
    from geo_med_sr import super_resolve

    check_upscale_push(args)  # --send/--stow need a DICOM series output: refused before any work
    with _upscale_input(args) as source:  # a PACS series is fetched into a temporary folder, removed afterwards
        result = super_resolve(
            source,
            args.output,
            args.scale,
            _sr_config(args),
            series=args.series,
            bands=args.bands,
            overwrite=args.overwrite,
            progress=progress_mode(args),
            cog=args.cog,
            write_options=_write_options(args),
            target_spacing=args.target_spacing,
            slice_thickness=args.slice_thickness,
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
    push_upscale_result(args, result.output)


def _run_batch(args: argparse.Namespace) -> int:
    from geo_med_sr import batch

    for name in ("workers", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be at least 1")
    report = batch(
        args.inputs,
        args.out_dir,
        args.scale,
        _sr_config(args),
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


def _run_info(args: argparse.Namespace) -> None:
    from geo_med_sr.info import describe

    print(describe(args.input, series=args.series))


def _run_evaluate(args: argparse.Namespace) -> None:
    from geo_med_sr.io import parse_bands
    from geo_med_sr.upscale.config import SRConfig, load_config
    from geo_med_sr.upscale.evaluate import check_report_paths, evaluate, format_table, save_json, save_plot

    check_report_paths(args.json, args.plot)  # before the evaluation runs, not after
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
    )
    print(format_table(result))
    if args.json:
        save_json(result, args.json)
    if args.plot:
        save_plot(result, args.plot)


def _run_train(args: argparse.Namespace) -> None:
    from pathlib import Path

    from geo_med_sr.errors import OutputError, file_error
    from geo_med_sr.training.config import load_train_config
    from geo_med_sr.training.loop import train

    out = Path(args.out)
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
    from geo_med_sr.sharpening.train import is_sharpen_config

    if is_sharpen_config(args.config):  # a guided sharpening network (task: sharpen)
        from geo_med_sr.sharpening.train import load_guided_config, train_sharpen

        guided = load_guided_config(args.config, steps=args.steps, seed=args.seed, device=args.device)
        command = "geo-med-sr train " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else [])
        summary = train_sharpen(guided, args.data, out, command=command)
        print(f"wrote {out} after {summary['steps']} steps in {summary['seconds']:.0f} s ({summary['pairs']} pairs)")
        return
    config = load_train_config(args.config, steps=args.steps, seed=args.seed, device=args.device)
    summary = train(config, args.data, out, val=args.val, resume=args.resume)
    print(f"wrote {out} after {summary['steps']} steps in {summary['seconds']:.0f} s (last loss {summary['loss']:.5f})")


def _run_demo(args: argparse.Namespace) -> None:
    from geo_med_sr.cli.demo import run_demo

    run_demo(args.out)


class Terminated(BaseException):
    """SIGTERM/SIGHUP arrived (what schedulers and ``kill`` send): unwinds like Ctrl-C, so that
    temporary outputs are removed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


def _install_signal_handlers() -> dict[int, Any]:
    """SIGTERM and SIGHUP raise :class:`Terminated` in the main thread; returns the previous handlers."""
    previous = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            previous[sig] = signal.signal(sig, _terminate)
    return previous


def _show_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    """Warnings as one line each on stderr (``geo-med-sr: warning: ...``), never with a source line."""
    text = " ".join(str(message).split())
    print(f"geo-med-sr: warning: {text}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geo-med-sr`` console script; returns the exit status.

    Errors the tool knows (:class:`GeoMedSRError`), and file-system or memory errors from
    anywhere, print one line and exit 2; Ctrl-C exits 130, SIGTERM/SIGHUP 128 + the signal
    number, both after removing temporary outputs. Warnings print as one line each.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["evaluate"] and "--sharpen" in argv:
        args = argparse.Namespace(command="evaluate-sharpen", rest=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    handlers = {
        "evaluate-sharpen": lambda a: run_evaluate_sharpen(a.rest),
        "upscale": _run_upscale,
        "batch": _run_batch,
        "info": _run_info,
        "evaluate": _run_evaluate,
        "train": _run_train,
        "demo": _run_demo,
        "sharpen": run_sharpen,
        "dicom-node": run_dicom_node,
    }
    previous = _install_signal_handlers()
    try:
        with warnings.catch_warnings():  # Python's filters stay; only the way warnings are shown changes
            warnings.showwarning = _show_warning
            status = handlers[args.command](args)
    except GeoMedSRError as exc:
        print(f"geo-med-sr: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # a file-system error the tool did not foresee: still one line naming the file
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"geo-med-sr: error: {where}{exc.strerror or _one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError as exc:
        detail = f" ({_one_line(exc)})" if str(exc) else ""
        print(
            f"geo-med-sr: error: out of memory{detail}; use a smaller --scale, --patch-size or input",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("geo-med-sr: interrupted; no partial output was left", file=sys.stderr)
        return 130
    except Terminated as exc:
        name = signal.Signals(exc.signum).name
        print(f"geo-med-sr: stopped by {name}; no partial output was left", file=sys.stderr)
        return 128 + exc.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
