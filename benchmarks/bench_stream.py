"""Streaming benchmark: upscale x2 synthetic 4-band uint16 GeoTIFFs of growing size on the CPU.

For each size, a tiled, compressed 4-band uint16 raster (with CRS and a nodata collar) is
generated window by window, then ``super_resolve`` (what ``geo-med-sr upscale IN OUT --scale 2
--method model`` calls) runs in a fresh process with a small EDSR checkpoint (bands processed
jointly), writing a COG. The time inside the call (output Mpx/s, us per output pixel), the
whole process time (imports included) and the child's peak RSS (``wait4`` rusage) are reported
in a table and written as JSON.

Targets (issue 3): peak RSS at the largest size <= 1.3x the peak at the smallest and < 2 GB;
time per output pixel within 20 % across sizes.

Usage::

    .venv/bin/python benchmarks/bench_stream.py --sizes 2000 8000 16000 --json benchmarks/results/bench_stream.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window


def make_raster(path: Path, size: int, bands: int = 4, block: int = 512, nodata: bool = True) -> None:
    """Write a ``size`` x ``size`` uint16 raster window by window (memory stays small), with a
    nodata collar (value 0) unless ``nodata`` is False."""
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": bands,
        "dtype": "uint16",
        "crs": "EPSG:32618",
        "transform": from_origin(500000.0, 4500000.0, 30.0, 30.0),
        "nodata": 0 if nodata else None,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "compress": "deflate",
        "predictor": 2,
        "BIGTIFF": "IF_SAFER",
    }
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, block):
            for col in range(0, size, block):
                h, w = min(block, size - row), min(block, size - col)
                y, x = np.mgrid[row : row + h, col : col + w].astype(np.float32)
                data = np.empty((bands, h, w), np.uint16)
                for b in range(bands):
                    smooth = np.sin(x / (37.0 + 11 * b)) * np.cos(y / (53.0 - 7 * b)) + 0.5 * np.sin((x + y) / 13.0)
                    data[b] = np.clip(8000 + 3000 * smooth + rng.normal(0, 150, (h, w)), 1, 65535).astype(np.uint16)
                if nodata:
                    data[:, (x < size * 0.02) | (y > size * 0.98)] = 0
                dst.write(data, window=Window(col, row, w, h))


def make_model(path: Path, bands: int = 4) -> None:
    """A small 2D EDSR (16 features, 2 blocks) over all bands at once."""
    from geo_med_sr.models.checkpoint import save_checkpoint
    from geo_med_sr.networks import build_network

    net = build_network("edsr", spatial_dims=2, in_channels=bands, scale=2, features=16, num_blocks=2)
    save_checkpoint(net, path)


#: run in a fresh interpreter: the same call as ``geo-med-sr upscale``, timed around the call.
CHILD = """
import json, sys, time
from geo_med_sr.upscale.config import SRConfig
from geo_med_sr.upscale.pipeline import super_resolve
src, dst, model, patch, batch = sys.argv[1:6]
config = SRConfig().updated(
    model={"method": "model", "name": model}, inference={"patch_size": int(patch), "batch_size": int(batch)}
)
start = time.perf_counter()
super_resolve(src, dst, 2, config, overwrite=True, progress=False)
print(json.dumps({"upscale_s": time.perf_counter() - start}))
"""


def run_one(src: Path, dst: Path, model: Path, patch_size: int, batch_size: int) -> tuple[float, float, float]:
    """Process wall seconds, seconds inside ``super_resolve`` and peak RSS (MB) of one upscale."""
    cmd = [sys.executable, "-c", CHILD, str(src), str(dst), str(model), str(patch_size), str(batch_size)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"upscale failed for {src} (exit {os.waitstatus_to_exitcode(status)})")
    return wall, json.loads(out.strip().splitlines()[-1])["upscale_s"], usage.ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 16000])
    parser.add_argument("--patch-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--workdir", default=None, help="scratch folder (default: a temporary folder, removed afterwards)"
    )
    parser.add_argument("--json", default="benchmarks/results/bench_stream.json")
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_stream_"))
    work.mkdir(parents=True, exist_ok=True)
    model = work / "edsr_small_x2.safetensors"
    make_model(model)
    rows = []
    try:
        for size in args.sizes:
            src, dst = work / f"scene_{size}.tif", work / f"scene_{size}_x2.tif"
            t0 = time.perf_counter()
            make_raster(src, size)
            gen = time.perf_counter() - t0
            wall, upscale, rss = run_one(src, dst, model, args.patch_size, args.batch_size)
            out_mpx = (2 * size) ** 2 / 1e6
            rows.append(
                {
                    "size": size,
                    "output_mpx": out_mpx,
                    "process_s": wall,
                    "upscale_s": upscale,
                    "startup_s": wall - upscale,
                    "mpx_per_s": out_mpx / upscale,
                    "us_per_output_px": upscale / out_mpx,
                    "peak_rss_mb": rss,
                    "output_mb": dst.stat().st_size / 1e6,
                    "generate_s": gen,
                }
            )
            print(f"  {size}^2 done: {upscale:.1f} s upscale ({wall:.1f} s process), peak RSS {rss:.0f} MB", flush=True)
            src.unlink()
            dst.unlink()
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    base = rows[0]
    print(
        f"\n{'input':>12} {'output Mpx':>11} {'upscale s':>10} {'process s':>10} {'Mpx/s':>7} {'us/px':>7} "
        f"{'peak RSS MB':>12} {'RSS vs first':>13}"
    )
    for r in rows:
        r["rss_ratio"] = r["peak_rss_mb"] / base["peak_rss_mb"]
        r["time_per_px_ratio"] = r["us_per_output_px"] / base["us_per_output_px"]
        print(
            f"{r['size']:>6}^2 x4 {r['output_mpx']:>11.0f} {r['upscale_s']:>10.1f} {r['process_s']:>10.1f} "
            f"{r['mpx_per_s']:>7.2f} {r['us_per_output_px']:>7.3f} {r['peak_rss_mb']:>12.0f} "
            f"{r['rss_ratio']:>12.2f}x"
        )
    result = {
        "benchmark": "bench_stream",
        "command": " ".join(sys.argv),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "model": "edsr features=16 num_blocks=2, in_channels=4, untrained (same arithmetic as trained)",
        "rows": rows,
        "targets": {"rss_ratio_max": 1.3, "rss_mb_max": 2048, "time_per_px_spread_max": 0.2},
        "met": {
            "rss_ratio": rows[-1]["rss_ratio"] <= 1.3,
            "rss_abs": rows[-1]["peak_rss_mb"] < 2048,
            "time_per_px": max(r["us_per_output_px"] for r in rows) / min(r["us_per_output_px"] for r in rows) - 1
            <= 0.2,
        },
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"\ntargets met: {result['met']}; JSON written to {args.json}")


if __name__ == "__main__":
    main()
