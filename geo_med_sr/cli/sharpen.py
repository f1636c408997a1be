"""The ``sharpen`` subcommand: a thin shell over :func:`geo_med_sr.sharpening.pipeline.sharpen`."""

from __future__ import annotations

import argparse

from geo_med_sr.cli.common import add_progress_options, progress_mode
from geo_med_sr.sharpening.pipeline import SHARPEN_METHODS

__all__ = ["add_sharpen", "run_sharpen"]


def add_sharpen(sub: argparse._SubParsersAction) -> None:
    """Register ``geo-med-sr sharpen`` on the subcommand parser ``sub``."""
    p = sub.add_parser(
        "sharpen",
        help="sharpen coarse bands with the sensor's finer bands (Sentinel-2 20/60 m, pan-sharpening)",
        description="Restore the coarse bands of INPUT with its finer bands and write one multiband Cloud-Optimized "
        "GeoTIFF on the finest grid. INPUT is a Sentinel-2 folder (COG layout B02.tif ... or a SAFE product), a "
        "STAC item JSON, band files, or a multispectral GeoTIFF with --pan/--guide. Bands of different "
        "resolutions must share the CRS and axis-aligned pixels with an integer ratio of pixel sizes; sub-pixel "
        "offsets between the grids (Landsat's half pan pixel) are handled exactly. Categorical bands (SCL) are "
        "carried by nearest neighbour. --method self (default) trains a guided network on the scene's own "
        "reduced-resolution copy within --budget seconds; glp and brovey are classical baselines.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="S2 folder, SAFE, STAC item JSON or band files")
    p.add_argument("output", help="output .tif (on the finest grid)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--pan", default=None, help="panchromatic GeoTIFF: pan-sharpen the INPUT bands with it")
    source.add_argument("--guide", default=None, help="any finer GeoTIFF whose bands guide the INPUT bands")
    p.add_argument("--bands", default=None, help="band names to keep, e.g. B05,B06,B8A (default: all)")
    p.add_argument("--method", default="self", choices=SHARPEN_METHODS.names(), help="default self")
    training = p.add_mutually_exclusive_group()
    training.add_argument(
        "--budget", type=float, default=None, help="seconds of self-training (default 240 on a CPU, 60 on a GPU)"
    )
    training.add_argument("--steps", type=int, default=None, help="training steps instead of a time budget")
    p.add_argument("--model", default=None, help="guided checkpoint or bundled name for --method model (or self)")
    p.add_argument(
        "--offset", type=float, default=None, help="DN offset of the bands (S2 L2A >= 04.00: -1000) if not in metadata"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when present, default), cpu, cuda, cuda:N")
    p.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
    p.add_argument(
        "--patch-size", type=int, default=512, help="output pixels per tile side (default 512; tile-invariant)"
    )
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--no-cog", dest="cog", action="store_false", help="write a tiled GeoTIFF instead of a COG")
    p.add_argument(
        "--overwrite", action="store_true", help="replace OUTPUT if this tool wrote it (nothing else is replaced)"
    )
    add_progress_options(p)


def run_sharpen(args: argparse.Namespace) -> None:
    """Run ``sharpen`` from parsed arguments and print a one-line summary."""
    from geo_med_sr.sharpening.pipeline import sharpen

    result = sharpen(
        args.inputs,
        args.output,
        pan=args.pan,
        guide=args.guide,
        bands=args.bands,
        method=args.method,
        budget=args.budget,
        steps=args.steps,
        model=args.model,
        offset=args.offset,
        device=args.device,
        amp=args.amp,
        tile=args.patch_size,
        overwrite=args.overwrite,
        progress=progress_mode(args),
        cog=args.cog,
        seed=args.seed,
    )
    if not args.quiet:
        groups = "; ".join(
            f"{','.join(g['bands'])} x{g['ratio'][0]}" + (f" ({g['steps']} steps)" if "steps" in g else "")
            for g in result.provenance["groups"]
        )
        print(
            f"wrote {result.output}: {result.shape[0]}x{result.shape[1]} pixels, {len(result.bands)} bands, "
            f"method {args.method}: {groups}"
        )


def evaluate_sharpen_parser() -> argparse.ArgumentParser:
    """The parser of ``geo-med-sr evaluate --sharpen`` (the guided-sharpening protocol)."""
    p = argparse.ArgumentParser(
        prog="geo-med-sr evaluate --sharpen",
        description="Score guided sharpening by the reduced-resolution (Wald) protocol: every band of INPUT is "
        "reduced by its group's ratio (block average; exact area averages where grids are offset), each --method "
        "restores the reduced coarse bands with the reduced finer ones (self trains on the reduced scene's own "
        "reduced copy), and the result is compared with the original bands: per band PSNR, SSIM and UIQI; ERGAS, "
        "SAM and Q2n per group; with --qnr also the full-resolution QNR (D_lambda, D_s).",
    )
    p.add_argument("--sharpen", action="store_true", required=True, help=argparse.SUPPRESS)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="S2 folder, SAFE, STAC item JSON or band files")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--pan", default=None, help="panchromatic GeoTIFF")
    source.add_argument("--guide", default=None, help="finer GeoTIFF whose bands guide the INPUT bands")
    p.add_argument("--bands", default=None, help="band names to use, e.g. B02,B03,B04,B08,B05")
    p.add_argument(
        "--method",
        action="append",
        dest="methods",
        choices=SHARPEN_METHODS.names(),
        help="repeat for several (default: bicubic, brovey, glp, self)",
    )
    p.add_argument("--ratio", action="append", type=int, default=None, help="only the group with this ratio (2, 6)")
    training = p.add_mutually_exclusive_group()
    training.add_argument("--budget", type=float, default=None, help="seconds of self-training (default 240 on CPU)")
    training.add_argument("--steps", type=int, default=None, help="training steps instead of a time budget")
    p.add_argument("--model", default=None, help="guided checkpoint or bundled name for --method model")
    p.add_argument("--offset", type=float, default=None, help="DN offset of the bands if not in the metadata")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--qnr", action="store_true", help="also run each method at full resolution and report QNR")
    p.add_argument("--json", default=None, help="write the scores as JSON here")
    p.add_argument("--plot", default=None, help="PNG: truth / each method per band, whole and zoomed")
    return p


def run_evaluate_sharpen(argv: list[str]) -> None:
    """Parse ``argv`` (after ``evaluate``) and run the guided-sharpening evaluation."""
    from geo_med_sr.sharpening.evaluate import evaluate_sharpening, format_sharpen_table, save_sharpen_plot
    from geo_med_sr.upscale.evaluate import check_report_paths, save_json

    args = evaluate_sharpen_parser().parse_args(argv)
    check_report_paths(args.json, args.plot)
    result = evaluate_sharpening(
        args.inputs,
        pan=args.pan,
        guide=args.guide,
        bands=[b.strip() for b in args.bands.split(",")] if args.bands else None,
        methods=args.methods or ["bicubic", "brovey", "glp", "self"],
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
