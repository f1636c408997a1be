"""Peak memory and time of ``geo-med-sr sharpen`` against scene size (streaming check): table + JSON.

    .venv/bin/python benchmarks/bench_sharpen_memory.py --sizes 1024 4096 \
        --json benchmarks/results/bench_sharpen_memory.json

Writes synthetic Sentinel-2 products (tiled, deflate GeoTIFFs in the COG folder layout: four 10 m
bands of SIZE^2 pixels, six 20 m and two 60 m bands, uint16, nodata 0) and runs the command in a fresh
process per size and method, alternating sizes, recording wall time and the child's peak RSS. Flat
memory means the peak does not grow with SIZE.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peak import peak_run, save_report  # noqa: E402

GMS = REPO / ".venv" / "bin" / "geo-med-sr"


def make_product(folder: Path, size: int, seed: int = 0) -> None:
    """Synthetic S2 band files whose 20/60 m bands are block averages of smooth 10 m structure."""
    import rasterio
    from rasterio.transform import Affine

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    coarse = rng.random((size // 64 + 2, size // 64 + 2))
    for name, step in [
        ("B02", 10),
        ("B03", 10),
        ("B04", 10),
        ("B08", 10),
        ("B05", 20),
        ("B06", 20),
        ("B07", 20),
        ("B8A", 20),
        ("B11", 20),
        ("B12", 20),
        ("B01", 60),
        ("B09", 60),
    ]:
        n = size * 10 // step
        profile = {
            "driver": "GTiff",
            "width": n,
            "height": n,
            "count": 1,
            "dtype": "uint16",
            "nodata": 0,
            "crs": "EPSG:32633",
            "transform": Affine(step, 0, 500000, 0, -step, 6000000),
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
        }
        with rasterio.open(folder / f"{name}.tif", "w", **profile) as dst:
            for row in range(0, n, 1024):
                rows = min(1024, n - row)
                y = (np.arange(row, row + rows) + 0.5) / n * (coarse.shape[0] - 2)
                x = (np.arange(n) + 0.5) / n * (coarse.shape[1] - 2)
                block = coarse[y.astype(int)][:, x.astype(int)]
                noise = rng.random((rows, n)) * 0.05
                dst.write((1000 + 3000 * (block + noise)).astype(np.uint16), 1, window=((row, row + rows), (0, n)))


def run(folder: Path, out: Path, method: str, budget: float) -> dict:
    """One run in a fresh process under a fresh ``python -c`` parent, so its peak RSS is its own."""
    cmd = [str(GMS), "sharpen", str(folder), str(out), "--method", method, "--quiet", "--overwrite"]
    if method == "self":
        cmd += ["--budget", str(budget)]
    return peak_run(cmd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--methods", nargs="+", default=["glp", "self"])
    parser.add_argument("--budget", type=float, default=30.0)
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "bench_sharpen_memory.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in sorted(args.sizes):
            make_product(tmp / f"S2_{size}", size)
        for method in args.methods:
            for size in sorted(args.sizes):
                result = run(tmp / f"S2_{size}", tmp / f"out_{size}_{method}.tif", method, args.budget)
                mpx = size * size / 1e6
                rows.append(
                    {
                        "size": size,
                        "method": method,
                        "output_mpx": mpx,
                        **result,
                        "s_per_mpx": round(result["seconds"] / mpx, 3),
                    }
                )
                print(rows[-1], flush=True)
    print(f"\n{'method':8s} {'10 m pixels':>12s} {'seconds':>8s} {'s/Mpx':>7s} {'peak RSS MB':>12s}")
    for r in rows:
        print(
            f"{r['method']:8s} {r['size']:>6d}^2     {r['seconds']:8.1f} {r['s_per_mpx']:7.2f} {r['peak_rss_mb']:12.0f}"
        )
    save_report(args.json, rows=rows)


if __name__ == "__main__":
    main()
