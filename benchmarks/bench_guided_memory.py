"""Guided MRI at clinical size: peak memory and time of ``upscale --guide`` beside single-contrast ``self``.

    .venv/bin/python benchmarks/bench_guided_memory.py [--shape 512 512 40] [--steps 50] [--register] \
        [--only self|guided] [--work benchmarks/.work/guided_memory] \
        [--json benchmarks/results/bench_guided_memory.json]

A synthetic thick series (``--shape``, 0.5 x 0.5 x 4 mm voxels, smooth random anatomy, float32 NIfTI) and a
1 mm isotropic guide over the same field of view (its contrast inverted); the target is restored x4 along its
thick axis (a 512 x 512 x 160 output for the default shape) by ``geo-med-sr upscale`` in a fresh process per
run (``_peak.peak_run``: wall time and peak RSS of that process): single-contrast ``self`` and guided ``self``
with the same ``--steps`` (a few: memory does not depend on them; the time does, see bench_guided_mri.py),
the guide declared registered unless ``--register`` (then the tool registers it too). Prints a table and
writes JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _peak import peak_run, save_report  # noqa: E402


def anatomy(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Smooth random positive values of ``shape`` (low-frequency noise, float32)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(50, 250, size=[max(2, n // 16) for n in shape]).astype(np.float32)
    from scipy import ndimage

    return ndimage.zoom(coarse, [n / c for n, c in zip(shape, coarse.shape)], order=1)[
        tuple(slice(0, n) for n in shape)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", nargs=3, type=int, default=[512, 512, 40])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--register", action="store_true", help="let the tool register the guide")
    parser.add_argument("--only", choices=("self", "guided"), default=None, help="run one of the two rows")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".work" / "guided_memory")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_guided_memory.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    x, y, z = args.shape
    target_affine = np.diag([0.5, 0.5, 4.0, 1.0])
    target = args.work / "target.nii.gz"
    guide = args.work / "guide.nii.gz"
    hr = anatomy((x // 2, y // 2, z * 4))  # the 1 mm anatomy
    nib.save(nib.Nifti1Image((300.0 - hr).astype(np.float32), np.diag([1.0, 1.0, 1.0, 1.0])), guide)
    thick = hr.reshape(x // 2, y // 2, z, 4).mean(axis=3)
    values = np.repeat(np.repeat(thick, 2, axis=0), 2, axis=1)  # 0.5 mm in plane
    affine = target_affine.copy()
    affine[:3, 3] = [-0.25, -0.25, 1.5]  # the thick grid inside the 1 mm guide's field of view
    nib.save(nib.Nifti1Image(values.astype(np.float32), affine), target)
    rows = []
    print(f"{'run':<34} {'seconds':>8} {'peak MB':>8}")
    runs = {
        "self": ("self (single contrast)", []),
        "guided": (
            "self --guide" + (" (registered by the tool)" if args.register else " --guide-registered"),
            ["--guide", str(guide)] + ([] if args.register else ["--guide-registered"]),
        ),
    }
    for key, (label, extra) in runs.items():
        if args.only not in (None, key):
            continue
        out = args.work / f"out_{len(rows)}.nii.gz"
        cmd = [sys.executable, "-m", "geo_med_sr", "upscale", str(target), str(out), "--scale", "1,1,4"]
        cmd += ["--method", "self", "--steps", str(args.steps), "--quiet", "--overwrite", *extra]
        measured = peak_run(cmd)
        rows.append({"run": label, **measured, "output_shape": [x, y, 4 * z]})
        print(f"{label:<34} {measured['seconds']:>8} {measured['peak_rss_mb']:>8}", flush=True)
    save_report(args.json, shape=args.shape, steps=args.steps, rows=rows)


if __name__ == "__main__":
    main()
