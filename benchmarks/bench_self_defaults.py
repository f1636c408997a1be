"""The wall time of every ``--method self`` default (a fixed number of steps), end to end, in fresh processes.

    .venv/bin/python benchmarks/bench_self_defaults.py [--cases sharpen-s2 through-plane zero-shot-2d zero-shot-3d] \
        [--json benchmarks/results/bench_self_defaults.json]

The defaults are numbers of steps (``geo_med_sr.sharpening.plan.DEFAULT_STEPS``/``DEFAULT_STEPS_COARSE``,
``geo_med_sr.training.selfsup.DEFAULT_STEPS``), so that a rerun gives the same file however busy the machine
is; they are meant to take about the time budgets they replaced on the project's 2-core CPU machine (240 s of
training for ``sharpen``, 180 s for ``upscale``). This script checks that on a quiet machine: each case is the
command a user types, without ``--steps`` or ``--budget``, timed as a whole (reading, training, inference,
writing) with its peak RSS, and the steps it trained read back from the output's provenance.

Cases (shared data, ``../shared/data``; a case whose file is absent is skipped with the reason):

* ``sharpen-s2``: ``sharpen S2B_MSIL1C_20171022_T49JGM OUT.tif`` (the 20 m group, then the 60 m group);
* ``through-plane``: ``upscale`` of ``mri/T2w_1x1x2mm.nii.gz`` made 4 mm thick (block average of 2 slices)
  with ``--scale 1,1,2 --method self``;
* ``zero-shot-2d``: ``upscale geotiff/l8_B4.tif --scale 2 --method self`` (fine-tunes the bundled sat model);
* ``zero-shot-3d``: ``upscale`` of ``mri/MR_Gd_T1gd_1mm_iso.nii.gz`` block-averaged to 2 mm with
  ``--scale 2 --method self`` (fine-tunes the bundled 3D model).

Prints a table and writes JSON (``_peak.save_report``). Run it alone: timings on a shared machine say little.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _peak import peak_run, save_report  # noqa: E402

DATA = REPO.parent / "shared" / "data"
CASES = ("sharpen-s2", "through-plane", "zero-shot-2d", "zero-shot-3d")
#: the time budgets the step defaults replaced (seconds of training, 2-core CPU).
REPLACED = {"sharpen-s2": 240.0, "through-plane": 180.0, "zero-shot-2d": 180.0, "zero-shot-3d": 180.0}


def _thick(src: Path, dst: Path, axis_factors: tuple[int, int, int]) -> Path:
    """``src`` block-averaged by ``axis_factors`` (the affine scaled alike), written as NIfTI ``dst``."""
    import nibabel as nib

    img = nib.load(str(src))
    data = np.asarray(img.dataobj, dtype=np.float32)
    shape = [n // f * f for n, f in zip(data.shape[:3], axis_factors)]
    data = data[: shape[0], : shape[1], : shape[2]]
    blocks = [v for n, f in zip(shape, axis_factors) for v in (n // f, f)]
    small = data.reshape(blocks).mean(axis=(1, 3, 5))
    affine = img.affine.copy()
    affine[:3, :3] = affine[:3, :3] @ np.diag(axis_factors)
    affine[:3, 3] += img.affine[:3, :3] @ ((np.array(axis_factors) - 1) / 2.0)
    nib.save(nib.Nifti1Image(small.astype(np.float32), affine), str(dst))
    return dst


def command(case: str, work: Path) -> tuple[list[str], Path] | str:
    """The command of ``case`` and its output, or why it cannot run here."""
    run = [sys.executable, "-m", "geo_med_sr"]
    if case == "sharpen-s2":
        scene = DATA / "s2" / "S2B_MSIL1C_20171022_T49JGM"
        if not scene.is_dir():
            return f"{scene} absent"
        out = work / "sharpen.tif"
        return [*run, "sharpen", str(scene), str(out), "--quiet"], out
    if case == "through-plane":
        src = DATA / "mri" / "T2w_1x1x2mm.nii.gz"
        if not src.exists():
            return f"{src} absent"
        out = work / "tp.nii.gz"
        thick = _thick(src, work / "t2w_4mm.nii.gz", (1, 1, 2))
        return [*run, "upscale", str(thick), str(out), "--scale", "1,1,2", "--method", "self", "--quiet"], out
    if case == "zero-shot-2d":
        src = DATA / "geotiff" / "l8_B4.tif"
        if not src.exists():
            return f"{src} absent"
        out = work / "zs2d.tif"
        return [*run, "upscale", str(src), str(out), "--scale", "2", "--method", "self", "--quiet"], out
    src = DATA / "mri" / "MR_Gd_T1gd_1mm_iso.nii.gz"
    if not src.exists():
        return f"{src} absent"
    out = work / "zs3d.nii.gz"
    small = _thick(src, work / "t1_2mm.nii.gz", (2, 2, 2))
    return [*run, "upscale", str(small), str(out), "--scale", "2", "--method", "self", "--quiet"], out


def trained_steps(out: Path) -> list[dict]:
    """Steps per trained network (and where they come from) from the output's provenance."""
    from geo_med_sr.io import read_provenance

    prov = read_provenance(out) or {}
    if "groups" in prov:
        keys = ("bands", "steps", "steps_from")
        return [{k: g.get(k) for k in keys} for g in prov["groups"]]
    info = prov.get("self_supervised", {})
    return [{"steps": info.get("steps"), "steps_from": info.get("steps_from"), "protocol": info.get("protocol")}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_self_defaults.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="self_defaults_") as tmp:
        for case in args.cases:
            made = command(case, Path(tmp))
            if isinstance(made, str):
                print(f"{case}: skipped ({made})")
                rows.append({"case": case, "skipped": made})
                continue
            cmd, out = made
            try:
                measured = peak_run(cmd)
            except subprocess.CalledProcessError as exc:
                rows.append({"case": case, "error": str(exc)})
                print(f"{case}: failed ({exc})")
                continue
            row = {"case": case, **measured, "replaced_budget_s": REPLACED[case], "trained": trained_steps(out)}
            row["command"] = " ".join(cmd[1:])
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"{'case':<15} {'wall s':>8} {'peak RSS MB':>12} {'budget replaced s':>18}  steps")
    for r in rows:
        if "seconds" in r:
            steps = ", ".join(str(t["steps"]) for t in r["trained"])
            print(
                f"{r['case']:<15} {r['seconds']:>8.1f} {r['peak_rss_mb']:>12.0f} "
                f"{r['replaced_budget_s']:>18.0f}  {steps}"
            )
    save_report(args.json, rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
