"""Peak memory and time of through-plane ``upscale --method self`` against volume size: table + JSON.

    .venv/bin/python benchmarks/bench_thick_memory.py --sizes 128 512 --slices 40 --steps 200 \
        --json benchmarks/results/bench_thick_memory.json

Writes synthetic thick-slice NIfTI series (SIZE x SIZE x SLICES int16, 0.5 x 0.5 x 4 mm, smooth
random anatomy-like structure) and runs ``geo-med-sr upscale --method self --scale 1,1,4 --steps N``
on each in a fresh process, recording wall time, peak RSS and seconds per output megavoxel. The
issue's targets: peak <= 2 GB at 512 x 512 x 40 and within 1.3x of the peak at 128 x 128 x 40.
``--steps`` (not a time budget) makes the training part the same work at every size.
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


def make_volume(path: Path, size: int, slices: int, seed: int = 0) -> None:
    """A smooth random int16 volume: coarse noise upsampled by nearest, lightly blurred along rows."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    coarse = rng.random((size // 8 + 1, size // 8 + 1, slices))
    vol = coarse.repeat(8, 0).repeat(8, 1)[:size, :size]
    vol = (vol + np.roll(vol, 1, 0) + np.roll(vol, 1, 1)) / 3
    affine = np.diag([0.5, 0.5, 4.0, 1.0])
    nib.save(nib.Nifti1Image((200 + 800 * vol).astype(np.int16), affine), str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "bench_thick_memory.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in sorted(args.sizes):
            src, out = tmp / f"thick_{size}.nii.gz", tmp / f"sr_{size}.nii.gz"
            make_volume(src, size, args.slices)
            cmd = [str(GMS), "upscale", str(src), str(out), "--scale", "1,1,4", "--method", "self"]
            result = peak_run([*cmd, "--steps", str(args.steps), "--quiet"])
            mvox = size * size * args.slices * 4 / 1e6
            rows.append({"shape": [size, size, args.slices], "output_mvox": mvox, **result})
            rows[-1]["s_per_mvox"] = round(result["seconds"] / mvox, 3)
            print(rows[-1], flush=True)
    base = rows[0]["peak_rss_mb"]
    print(f"\n{'input':>14s} {'seconds':>8s} {'s/Mvox':>7s} {'peak RSS MB':>12s} {'vs smallest':>11s}")
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        ratio = r["peak_rss_mb"] / base
        print(f"{shape:>14s} {r['seconds']:8.1f} {r['s_per_mvox']:7.2f} {r['peak_rss_mb']:12.0f} {ratio:10.2f}x")
        r["peak_vs_smallest"] = round(ratio, 3)
    save_report(args.json, steps=args.steps, rows=rows)


if __name__ == "__main__":
    main()
