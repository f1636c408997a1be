"""``geo-med-sr sharpen``: a thin shell over :func:`geo_med_sr.sharpening.pipeline.sharpen`.

Its evaluation (``evaluate --sharpen``) is a mode of :mod:`geo_med_sr.cli.evaluate`.
"""

from __future__ import annotations

import argparse

from geo_med_sr.cli.options import (
    SELF_DEFAULT_STEPS,
    add_amp,
    add_band_names,
    add_budget_steps,
    add_device,
    add_guides,
    add_model,
    add_no_cog,
    add_offset,
    add_overwrite,
    add_patch_size,
    add_progress_options,
    add_scene_inputs,
    add_seed,
    progress_mode,
)
from geo_med_sr.sharpening.registry import DEFAULT_METHOD, SHARPEN_METHODS

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    add_scene_inputs(p)
    p.add_argument("output", help="output .tif (on the finest grid)")
    p.add_argument(
        "--item",
        default=None,
        help="the id of the item to sharpen when INPUT is a STAC ItemCollection JSON (its assets are found from the "
        "collection's folder; 'geo-med-sr batch --sharpen' runs every item)",
    )
    add_guides(p)
    add_band_names(p, "keep", "B05,B06,B8A")
    p.add_argument(
        "--method", default=DEFAULT_METHOD, choices=SHARPEN_METHODS.names(), help=f"default {DEFAULT_METHOD}"
    )
    add_budget_steps(p, SELF_DEFAULT_STEPS, exclusive=True, zero_steps=True)
    add_model(p, "guided checkpoint or bundled name", "--method model (or self)")
    add_offset(p)
    add_device(p, "auto")
    add_amp(p)
    add_patch_size(p, 512, "the finest band grid, which is the output grid", "default 512; results are tile-invariant")
    add_seed(p, 0, "default 0")
    add_no_cog(p)
    add_overwrite(p, "replace OUTPUT if this tool wrote it (anything else at OUTPUT is never replaced)")
    add_progress_options(p)


def run(args: argparse.Namespace) -> None:
    """Run ``sharpen`` from parsed arguments and print a summary: what was written, then the seconds per stage
    (:attr:`~geo_med_sr.sharpening.pipeline.SharpenResult.stages`)."""
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
        item=args.item,
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
        print("seconds: " + ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in result.stages.items()))
