"""Quality benchmark: ``geo-med-sr evaluate`` on the shared validation files, as one table.

Each case degrades a validation file (block average, or 4 slices averaged for through-plane
``1,1,s``), restores it with the classical baselines, the bundled model and ``--method self``,
and records PSNR/SSIM (protocol in the README's Evaluation section). One JSON per case goes to
``--out`` (so cases can be run separately, e.g. ``--only sat-x2``); ``--table`` prints the
Markdown table of every JSON there, with the gains over the best of bicubic/B-spline and over
``bspline-ibp``, and the issue-4 target for the row.

The validation files live in ``../shared/data/{geotiff,mri}`` (never in the repository);
the bundled models were trained on ``../shared/data/train`` only.

Usage::

    .venv/bin/python benchmarks/bench_quality.py --only sat-x2 sat-x4      # run some cases
    .venv/bin/python benchmarks/bench_quality.py --table                    # README table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from geo_med_sr.upscale.config import SRConfig
from geo_med_sr.upscale.evaluate import evaluate, format_table, gains, save_json

SAT = ("geotiff/l8_B4.tif", "geotiff/LC08_232066_20190727.tif", "geotiff/RGB.byte.tif")
MRI = ("mri/MR_Gd_T1gd_1mm_iso.nii.gz", "mri/T2w_1x1x2mm.nii.gz")
BASE = ("bicubic", "bspline", "bspline-ibp")

#: tile size for the 3D volumes (LR voxels).
PATCH_3D = 96

#: case name -> (files, scale, methods, {method: target gain over best of bicubic/bspline, dB})
CASES = {
    "sat-x2": (SAT, "2", (*BASE, "model"), {"model": 0.5}),
    "sat-x2-self": (SAT, "2", (*BASE, "self"), {"self": 1.0}),
    "sat-x2-fast": (SAT, "2", (*BASE, "model"), {}),
    "sat-x4": (SAT, "4", (*BASE, "model"), {"model": 0.3}),
    "mri-x2": (MRI, "2", (*BASE, "model"), {"model": 0.5}),
    "mri-tp-x4": (MRI, "1,1,4", (*BASE, "model", "self"), {"self": 1.0}),
    "mri-tp-x2": (MRI, "1,1,2", (*BASE, "model"), {}),
    "mri-tp-x3": (MRI, "1,1,3", (*BASE, "model"), {}),
}


def machine() -> str:
    """CPU model and core count, e.g. ``AMD EPYC, 2 cores, x86_64``."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores, {platform.machine()}"


def run(shared: Path, out: Path, names: list[str], patch_size: int, budget: float | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        files, scale, methods, targets = CASES[name]
        for rel in files:
            path = shared / rel
            if not path.exists():
                print(f"skip {name} {rel}: {path} not found", file=sys.stderr)
                continue
            # Larger tiles than the default 64: results are tile-invariant, time is not.
            config = SRConfig().updated(
                inference={"patch_size": patch_size if path.suffix == ".tif" else PATCH_3D},
                model={"budget": budget, "fast": name.endswith("-fast")},
            )
            start = time.perf_counter()
            result = evaluate(path, scale, methods, config=config)
            result["case"], result["file"], result["targets_db"] = name, rel, targets
            result["machine"] = machine()
            result["wall_s"] = time.perf_counter() - start
            print(format_table(result), flush=True)
            save_json(result, out / f"{name}__{Path(rel).name.split('.')[0]}.json")


def table(out: Path) -> str:
    rows = [
        "| case | file | scale | bicubic | bspline | bspline-ibp | method | PSNR dB | gain over best of "
        "bicubic/bspline | gain over bspline-ibp | target | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(out.glob("*.json")):
        result = json.loads(path.read_text())
        psnr = {m["method"]: m["psnr"] for m in result["methods"]}
        gain = gains(result)
        for method in ("model", "self"):
            if method not in psnr:
                continue
            target = result.get("targets_db", {}).get(method)
            g = gain[method]
            met = (
                ""
                if target is None
                else ("yes" if g["over_classical"] >= target else f"no ({g['over_classical'] - target:+.2f})")
            )
            rows.append(
                f"| {result['case']} | {Path(result['file']).name} | {','.join(map(str, result['scale']))} | "
                f"{psnr['bicubic']:.2f} | {psnr['bspline']:.2f} | {psnr['bspline-ibp']:.2f} "
                f"| {method} | {psnr[method]:.2f} | {g['over_classical']:+.2f} | {g['over_bspline_ibp']:+.2f} | "
                f"{'' if target is None else f'>= +{target:.1f}'} | {met} |"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path("../shared/data"), help="shared data folder (default ../shared/data)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/quality"), help="folder for one JSON per case and file"
    )
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), default=None, help="cases to run (default: all)")
    parser.add_argument("--patch-size", type=int, default=512, help="tile size for 2D scenes (default 512)")
    parser.add_argument(
        "--budget", type=float, default=None, help="--method self budget in seconds (default: the product default)"
    )
    parser.add_argument("--table", action="store_true", help="print the Markdown table of the JSONs in --out and exit")
    args = parser.parse_args()
    if args.table:
        print(table(args.out))
        return
    if not args.shared.is_dir():
        parser.error(f"{args.shared} not found: the validation files are not part of the repository")
    run(args.shared, args.out, args.only or list(CASES), args.patch_size, args.budget)


if __name__ == "__main__":
    main()
