"""Guided MRI: a thick T2w / FLAIR restored with the subject's own isotropic T1w, beside single-contrast SR.

    .venv/bin/python benchmarks/bench_guided_mri.py [--steps 1600] [--cases stroke-T2w-z glioma-FLAIR-x ...] \
        [--moved] [--work benchmarks/.work/guided_mri] [--json benchmarks/results/bench_guided_mri.json]

Data: ``../shared/data/mri/multicontrast/`` (see its README): the stroke subject's T1w, T2w and FLAIR
(124 x 160 x 140 at 1 mm, one grid) and the glioma subject's t1, t2 and FLAIR (240 x 240 x 155 at 1 mm,
one grid; its z was interpolated upstream, so only the in-plane axes x and y serve as truth).

Protocol, per case (target contrast, thick axis):

* the 1 mm target is cropped to whole blocks of 4 along the thick axis and block-averaged by 4 along it
  (:func:`geo_med_sr.degrade.block_average_array`'s model: exact geometry), written as a float32 NIfTI
  with its 4 mm grid; the truth is the cropped 1 mm target;
* every method runs as the real command in a fresh process (wall time and peak RSS by
  ``_peak.peak_run``): ``python -m geo_med_sr upscale LR OUT --scale ... --method M`` for ``bspline``, ``self``
  (single-contrast through-plane self, ``--steps N``) and ``self`` with ``--guide T1w --guide-registered``
  (guided self, the same ``--steps N``: the guide shares the target's grid in this data);
* ``inject``: the classical detail-injection baseline, no learning: the B-spline result plus the guide's
  detail (the guide minus its own block-averaged, B-spline-restored copy) times a local regression gain of
  the target on the guide (both at the thick resolution; 5 x 5 x 5 box windows, gain clipped to +-4);
* ``--moved``: the guide's affine moved by a known rigid transform (2 mm, 3 degrees about an oblique axis
  through the brain's centre; the voxels untouched) and registered by the tool (no ``--guide-registered``):
  its PSNR should be within 0.2 dB of the aligned guided run.

Scores inside the brain (truth > 0; the volumes are skull-stripped): PSNR with data range = max - min of
the truth in the brain, and PSNR inside the lesion: the FLAIR-hyperintense region (FLAIR > mean + 2.5 SD
of the brain's FLAIR, its largest connected component), the stroke's gliotic rim / the glioma's tumour and
oedema. Prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _peak import peak_run, save_report  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "mri" / "multicontrast"
FACTOR = 4
AXES = "xyz"
#: the rows a case can have (``--runs``).
RUNS = ("bspline", "self", "self+guide", "self+guide moved+reg", "inject")


@dataclass(frozen=True)
class Case:
    """One restoration: ``target`` made thick along ``axis`` (0, 1, 2), restored with ``guide``."""

    name: str
    target: Path
    guide: Path
    flair: Path
    axis: int


def cases() -> list[Case]:
    """The stroke T2w and FLAIR along each axis, the glioma t2 and FLAIR along the in-plane axes."""
    stroke, glioma = DATA / "stroke_cstar", DATA / "tcga_du7294_brats"
    out = []
    for contrast in ("T2w", "FLAIR"):
        for axis in range(3):
            out.append(
                Case(
                    f"stroke-{contrast}-{AXES[axis]}",
                    stroke / f"{contrast}_brain_1mm_iso.nii.gz",
                    stroke / "T1w_brain_1mm_iso.nii.gz",
                    stroke / "FLAIR_brain_1mm_iso.nii.gz",
                    axis,
                )
            )
    for contrast, name in (("t2", "T2"), ("fla", "FLAIR")):
        for axis in (0, 1):
            out.append(
                Case(
                    f"glioma-{name}-{AXES[axis]}",
                    glioma / f"{contrast}_brain_sri24_1mm.nii.gz",
                    glioma / "t1_brain_sri24_1mm.nii.gz",
                    glioma / "fla_brain_sri24_1mm.nii.gz",
                    axis,
                )
            )
    return out


def _crop(values: np.ndarray, axis: int) -> np.ndarray:
    """``values`` cropped to whole blocks of :data:`FACTOR` along ``axis``."""
    n = values.shape[axis] // FACTOR * FACTOR
    return np.take(values, np.arange(n), axis=axis)


def block_average(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean of every :data:`FACTOR` consecutive voxels along ``axis``."""
    shape = list(values.shape)
    shape[axis : axis + 1] = [shape[axis] // FACTOR, FACTOR]
    return values.reshape(shape).mean(axis=axis + 1)


def lr_affine(affine: np.ndarray, axis: int) -> np.ndarray:
    """The thick grid of a block average by :data:`FACTOR` along ``axis`` (voxel centres, same field of view)."""
    out = affine.copy()
    out[:3, axis] *= FACTOR
    out[:3, 3] += affine[:3, axis] * (FACTOR - 1) / 2
    return out


def rigid(angle_deg: float, shift_mm: float, centre: np.ndarray) -> np.ndarray:
    """A 4x4 world rotation by ``angle_deg`` about the oblique axis (1, 2, 3) through ``centre``, then a shift of
    ``shift_mm`` along (3, -2, 1)."""
    k = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    a = np.deg2rad(angle_deg)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + np.sin(a) * cross + (1 - np.cos(a)) * cross @ cross
    t = np.array([3.0, -2.0, 1.0]) / np.sqrt(14.0) * shift_mm
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = centre - rot @ centre + t
    return out


def lesion_mask(flair: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """FLAIR > mean + 2.5 SD of the brain's FLAIR, largest connected component (see the module docstring)."""
    from scipy import ndimage

    values = flair[brain]
    hot = brain & (flair > values.mean() + 2.5 * values.std())
    labels, count = ndimage.label(hot)
    if count == 0:
        return hot
    sizes = ndimage.sum(hot, labels, range(1, count + 1))
    return labels == (1 + int(np.argmax(sizes)))


def psnr(truth: np.ndarray, out: np.ndarray, mask: np.ndarray, peak: float) -> float:
    """PSNR (dB) on ``mask`` with data range ``peak``."""
    mse = float(np.mean((truth[mask].astype(np.float64) - out[mask]) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def bspline_up(values: np.ndarray, axis: int) -> np.ndarray:
    """Cubic B-spline along ``axis`` by :data:`FACTOR` on the exact grid (DESIGN §3: output voxel i sits at
    input coordinate (i + 0.5) / FACTOR - 0.5), mirror boundary."""
    from scipy import ndimage

    n = values.shape[axis]
    coords = (np.arange(n * FACTOR) + 0.5) / FACTOR - 0.5
    grid = np.meshgrid(*[coords if a == axis else np.arange(s) for a, s in enumerate(values.shape)], indexing="ij")
    return ndimage.map_coordinates(values.astype(np.float64), grid, order=3, mode="mirror").astype(np.float32)


def inject(lr: np.ndarray, guide: np.ndarray, axis: int) -> np.ndarray:
    """The classical detail-injection baseline (module docstring): B-spline + local gain x guide detail."""
    from scipy import ndimage

    guide = guide.astype(np.float64)
    guide_lr = block_average(guide, axis)
    up_t, up_g = bspline_up(lr, axis).astype(np.float64), bspline_up(guide_lr, axis).astype(np.float64)
    box = lambda a: ndimage.uniform_filter(a, 5, mode="mirror")  # noqa: E731
    mean_t, mean_g = box(up_t), box(up_g)
    cov = box(up_t * up_g) - mean_t * mean_g
    var = box(up_g * up_g) - mean_g**2
    gain = np.clip(cov / np.maximum(var, 1e-6 * max(float(var.max()), 1e-12)), -4.0, 4.0)
    return (up_t + gain * (guide - up_g)).astype(np.float32)


def prepare(case: Case, work: Path) -> dict:
    """Write the case's LR target, aligned and moved guides; return the truth, masks and paths."""
    folder = work / case.name
    folder.mkdir(parents=True, exist_ok=True)
    target_img, guide_img, flair_img = (nib.load(p) for p in (case.target, case.guide, case.flair))
    truth = _crop(np.asarray(target_img.dataobj, dtype=np.float32), case.axis)
    guide = _crop(np.asarray(guide_img.dataobj, dtype=np.float32), case.axis)
    flair = _crop(np.asarray(flair_img.dataobj, dtype=np.float32), case.axis)
    affine = target_img.affine
    lr = block_average(truth, case.axis)
    paths = {"lr": folder / "lr.nii.gz", "guide": folder / "guide.nii.gz", "moved": folder / "guide_moved.nii.gz"}
    nib.save(nib.Nifti1Image(lr, lr_affine(affine, case.axis)), paths["lr"])
    nib.save(nib.Nifti1Image(guide, affine), paths["guide"])
    centre = (affine @ np.r_[(np.array(guide.shape) - 1) / 2, 1.0])[:3]
    nib.save(nib.Nifti1Image(guide, rigid(3.0, 2.0, centre) @ affine), paths["moved"])
    brain = truth > 0
    return {
        "truth": truth,
        "guide": guide,
        "lr": lr,
        "brain": brain,
        "lesion": lesion_mask(flair, brain),
        "peak": float(truth[brain].max() - truth[brain].min()),
        "paths": paths,
        "folder": folder,
    }


def run_tool(case: Case, prep: dict, method: str, steps: int, guide: str | None, registered: bool) -> dict:
    """One ``geo-med-sr upscale`` in a fresh process: its output, seconds and peak RSS."""
    scale = ",".join(str(FACTOR if a == case.axis else 1) for a in range(3))
    tag = method + ("" if guide is None else "-guide" if guide == "guide" else "-guide-moved")
    out = prep["folder"] / f"{tag}.nii.gz"
    cmd = [sys.executable, "-m", "geo_med_sr", "upscale", str(prep["paths"]["lr"]), str(out), "--scale", scale]
    cmd += ["--method", method, "--quiet", "--overwrite", "--float32"]
    if method == "self":
        cmd += ["--steps", str(steps)]
    if guide:
        cmd += ["--guide", str(prep["paths"][guide])] + (["--guide-registered"] if registered else [])
    try:
        measured = peak_run(cmd)
    except subprocess.CalledProcessError as error:
        return {"error": (error.stderr or error.stdout or str(error)).strip().splitlines()[-1:]}
    values = np.asarray(nib.load(out).dataobj, dtype=np.float32)
    return {**measured, "values": values, "command": " ".join(cmd[2:])}


def score(prep: dict, values: np.ndarray) -> dict:
    """PSNR in the brain and in the lesion."""
    return {
        "psnr_brain": round(psnr(prep["truth"], values, prep["brain"], prep["peak"]), 3),
        "psnr_lesion": round(psnr(prep["truth"], values, prep["lesion"], prep["peak"]), 3)
        if prep["lesion"].any()
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1600, help="self and guided self training steps (both)")
    parser.add_argument("--cases", nargs="+", default=None, help="case names (default: all)")
    parser.add_argument("--moved", action="store_true", help="also the moved guide registered by the tool")
    parser.add_argument(
        "--runs",
        nargs="+",
        default=None,
        choices=RUNS,
        help="only these rows (default: all; the others are deterministic, e.g. rerun only the guided rows)",
    )
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".work" / "guided_mri")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_guided_mri.json")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"absent: {DATA} (the shared multicontrast MRI data)")
    chosen = [c for c in cases() if args.cases is None or c.name in args.cases]
    if not chosen:
        sys.exit(f"no case matches {args.cases}; cases: {' '.join(c.name for c in cases())}")
    rows = []
    header = f"{'case':<18} {'method':<22} {'PSNR brain':>10} {'lesion':>8} {'seconds':>8} {'peak MB':>8}"
    print(header)
    for case in chosen:
        prep = prepare(case, args.work)
        runs = [
            ("bspline", "bspline", None, True),
            ("self", "self", None, True),
            ("self+guide", "self", "guide", True),
        ]
        if args.moved:
            runs.append(("self+guide moved+reg", "self", "moved", False))
        runs = [run for run in runs if args.runs is None or run[0] in args.runs]
        for label, method, guide, registered in runs:
            result = run_tool(case, prep, method, args.steps, guide, registered)
            values = result.pop("values", None)
            row = {"case": case.name, "method": label, **result}
            if values is not None:
                row.update(score(prep, values))
            rows.append(row)
            _print(row)
            save_report(args.json, steps=args.steps, factor=FACTOR, rows=rows)  # kept if a later row is killed
        if args.runs is not None and "inject" not in args.runs:
            continue
        start = time.monotonic()
        injected = inject(prep["lr"], prep["guide"], case.axis)
        row = {"case": case.name, "method": "inject (classical)", "seconds": round(time.monotonic() - start, 2)}
        row.update(score(prep, injected))
        rows.append(row)
        _print(row)
    save_report(args.json, steps=args.steps, factor=FACTOR, rows=rows)


def _print(row: dict) -> None:
    if "error" in row:
        print(f"{row['case']:<18} {row['method']:<22} failed: {json.dumps(row['error'])}")
        return
    lesion = "-" if row.get("psnr_lesion") is None else f"{row['psnr_lesion']:.2f}"
    peak = row.get("peak_rss_mb", "-")
    print(
        f"{row['case']:<18} {row['method']:<22} {row['psnr_brain']:>10.2f} {lesion:>8} {row['seconds']:>8} {peak!s:>8}",
        flush=True,
    )


if __name__ == "__main__":
    main()
