"""Through-plane SR side by side with a peer: our ``--method self`` vs ECLARE (issue 16), one table + JSON.

Over 500 lines because one runnable script installs the peer in its own virtualenv, calibrates it and runs it.

    .venv/bin/python benchmarks/bench_peers.py [--only t1 t2w] [--scales 2 4] [--memory] \
        [--json benchmarks/results/bench_peers.json]

Cases: the shared validation MRI (``../shared/data/mri``: ``t1`` = MR_Gd_T1gd_1mm_iso, ``t2w`` =
T2w_1x1x2mm), made thick along the last axis by averaging every S slices
(:func:`geo_med_sr.degrade.block_average`: the thick affine puts each slice at its slab centre). The
HR truth is the original, cut to a whole number of S-slice blocks. ``--memory`` (or ``--only synthetic512``)
adds a synthetic 512x512x40 thick series (1 mm HR voxels, so ECLARE's grid is the truth's). ``--crop N``
keeps the central N x N of each slice (smoke runs). The thick files are float32 NIfTIs (``geo_med_sr.io.write``),
so every method reads the same values.

Each case runs, each in a fresh process whose wall time and peak RSS are measured (``_peak.peak_run``;
the RSS is the largest single process, so ECLARE's DataLoader workers are not added to it):

* ``bspline``: ``geo-med-sr upscale THICK OUT --scale 1,1,S --method bspline`` (the baseline);
* ``self``: ``geo-med-sr upscale THICK OUT --scale 1,1,S --method self`` (default budget, or
  ``--budget`` / ``--steps``);
* ``eclare-gpu``: ECLARE at its defaults on CUDA, when torch in ECLARE's venv sees a GPU;
* ``eclare-cpu``: ECLARE on the CPU with the true slice profile (a box S HR slices wide, given as a
  kernel file, so its ESPRESO estimation is skipped) and as many training patches as fit our wall time:
  calibration runs of 1 and 4 batches of 128 give its fixed cost (start-up + whole-volume inference) and
  seconds per batch, the count follows from our measured time; when 1 batch already takes longer than ours,
  that run is kept and ``matched`` is false (``--eclare-patches N`` skips the calibration).

ECLARE (pip ``eclare``, GPL-3) is only run, never imported or copied here: it lives in a venv of its own
under ``--work`` (made by this script with the project's Python; ``--skip-install`` reuses it).

ECLARE always upsamples to the in-plane spacing (its factor is thick spacing / in-plane spacing, rounded
to 3 decimals), so its grid can differ from the HR truth (T2w: 1 mm instead of 2 mm). Both outputs are
mapped to the truth grid by world coordinates (``inv(A_out) @ A_truth``: linear interpolation along the
slice axis; in-plane the grids coincide); ``"grid"`` in the JSON records what was found: shapes, affines,
where slice 0 lies in truth voxels, the sub-slice shift that best matches the truth (``psnr_at_best_shift``)
and, for ECLARE, the shift its code predicts for a non-integer factor. Scores follow ``geo-med-sr evaluate``
(:mod:`geo_med_sr.metrics.image`): PSNR with the truth's data range and SSIM, on the truth's voxels minus a
border of (1, 1, S) voxels, on the voxels every method covers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peak import peak_run  # noqa: E402

GMS = REPO / ".venv" / "bin" / "geo-med-sr"
DATA = REPO.parent / "shared" / "data"
CASES = {"t1": "mri/MR_Gd_T1gd_1mm_iso.nii.gz", "t2w": "mri/T2w_1x1x2mm.nii.gz"}
SYNTHETIC = "synthetic512"  # --memory: made here, needs no data
ECLARE_PINS = ["eclare==1.0.1", "scipy==1.11.4", "radifox-utils==1.0.3"]
TORCH_PIN = "torch==2.13.0"  # the CPU wheel on this disk; a plain "torch" pulls a multi-GB CUDA build
ECLARE_BATCH = 128  # ECLARE's default --batch-size: patches per training step
CALIBRATION_BATCHES = (1, 4)


# ----------------------------------------------------------------------------- ECLARE's venv


def eclare_venv(work: Path, skip_install: bool) -> Path:
    """The Python of ECLARE's own venv under ``work`` (created and filled unless ``skip_install``).

    Raises:
        SystemExit: the venv is missing with ``--skip-install``, or an install step failed.
    """
    venv = work / "eclare-venv"
    python = venv / "bin" / "python"
    if skip_install:
        if not (venv / "bin" / "run-eclare").exists():
            raise SystemExit(f"bench_peers: {venv} has no ECLARE; run once without --skip-install")
        return python
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-qq", TORCH_PIN],
        [str(python), "-m", "pip", "install", "-qq", *ECLARE_PINS, TORCH_PIN],
    ]
    for cmd in steps[0 if not python.exists() else 1 :]:
        print("+", shlex.join(cmd), flush=True)
        if subprocess.run(cmd).returncode:
            raise SystemExit(f"bench_peers: install step failed: {shlex.join(cmd)}")
    return python


def eclare_versions(python: Path) -> dict:
    """Versions in ECLARE's venv and whether its torch sees CUDA (``{"eclare", "torch", ..., "cuda"}``)."""
    probe = (
        "import json, importlib.metadata as m, torch; "
        "print(json.dumps({**{p: m.version(p) for p in ('eclare', 'torch', 'scipy', 'radifox-utils', 'numpy')}, "
        "'cuda': torch.cuda.is_available(), 'threads': torch.get_num_threads()}))"
    )
    out = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- cases


def centre_crop(image, size: int | None):
    """The central ``size x size`` of each slice of a ``(C, X, Y, Z)`` SpatialArray (affine shifted to match)."""
    from geo_med_sr.spatial import SpatialArray

    if size is None:
        return image
    start = [max(0, (n - size) // 2) for n in image.spatial_shape[:2]]
    box = tuple(slice(s, s + size) for s in start)
    shift = np.eye(4)
    shift[:2, 3] = start
    valid = None if image.valid is None else image.valid[box]
    return SpatialArray(np.ascontiguousarray(image.array[(slice(None), *box)]), image.affine @ shift, image.meta, valid)


def synthetic_hr(scale: int, shape=(512, 512, 40), seed: int = 0):
    """A phantom of ``(X, Y, Z * scale)`` voxels of 1 mm: 12 random overlapping ellipsoids + Gaussian noise (sd 5)."""
    from geo_med_sr.spatial import SpatialArray

    x, y, z = shape[0], shape[1], shape[2] * scale
    rng = np.random.default_rng(seed)
    vol = np.zeros((x, y, z), np.float32)
    grid = np.ogrid[:x, :y, :z]
    for _ in range(12):
        centre = rng.uniform(0.25, 0.75, 3) * (x, y, z)
        radii = rng.uniform(0.05, 0.3, 3) * (x, y, z)
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
        vol[inside] += rng.uniform(100, 400)
    vol += rng.normal(0, 5, vol.shape).astype(np.float32)
    return SpatialArray(vol[None], np.eye(4), {"format": "nifti", "dtype": "float32"})


def make_case(name: str, hr, scale: int, work: Path) -> dict:
    """Cut ``hr`` to whole S-slice blocks, block-average it along the last axis and write the thick NIfTI."""
    from geo_med_sr import io
    from geo_med_sr.degrade import block_average
    from geo_med_sr.metrics.image import crop_to_blocks
    from geo_med_sr.spatial import SpatialArray

    factor = (1, 1, scale)
    hr = crop_to_blocks(hr, factor)
    hr = SpatialArray(hr.array.astype(np.float32), hr.affine, {**hr.meta, "dtype": "float32"}, hr.valid)
    thick = block_average(hr, factor)
    folder = work / f"{name}_x{scale}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "thick.nii.gz").unlink(missing_ok=True)  # io.write replaces only its own outputs, not plain writes
    path = io.write(thick, folder / "thick.nii.gz")
    return {"name": name, "scale": scale, "hr": hr, "thick": thick, "path": path, "folder": folder}


# ----------------------------------------------------------------------------- runs


def measured(cmd: list[str], log: Path) -> dict:
    """``peak_run`` of ``cmd`` with its output in ``log`` (``exec`` keeps the measured process the command's own)."""
    wrapped = ["bash", "-c", f'exec "$@" > {shlex.quote(str(log))} 2>&1', "bash", *cmd]
    try:
        result = peak_run(wrapped)
    except subprocess.CalledProcessError:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise SystemExit(f"bench_peers: command failed: {shlex.join(cmd)}\n--- {log} (tail) ---\n{tail}") from None
    return {"command": shlex.join(cmd), **result}


def run_ours(case: dict, method: str, budget: float | None, steps: int | None) -> dict:
    """``geo-med-sr upscale THICK OUT --scale 1,1,S --method METHOD`` in a fresh process."""
    out = case["folder"] / f"{method}.nii.gz"
    cmd = [str(GMS), "upscale", str(case["path"]), str(out), "--scale", f"1,1,{case['scale']}", "--method", method]
    if method == "self":
        cmd += ["--budget", str(budget)] if budget is not None else []
        cmd += ["--steps", str(steps)] if steps is not None else []
    cmd += ["--quiet", "--overwrite"]
    return {"method": method, "output": str(out), **measured(cmd, case["folder"] / f"{method}.log")}


def box_profile(width: float) -> np.ndarray:
    """A box ``width`` pixels wide centred on pixel 0, integrated over each pixel: ``2*ceil(width/2)+1`` taps, sum 1."""
    half = int(np.ceil(width / 2))
    centres = np.arange(-half, half + 1, dtype=np.float64)
    weights = np.clip(np.minimum(centres + 0.5, width / 2) - np.maximum(centres - 0.5, -width / 2), 0, None)
    return weights / weights.sum()


def eclare_separation(path: Path) -> float:
    """ECLARE's upsampling factor for a file: largest header zoom / smallest in-plane zoom, rounded to 3 decimals."""
    import nibabel as nib

    zooms = sorted(float(z) for z in nib.load(path).header.get_zooms()[:3])
    return round(zooms[2] / zooms[0], 3)


def eclare_profile(case: dict) -> dict:
    """The true slice profile in ECLARE's units (in-plane voxels): a box S HR slices wide, contiguous slices.

    ECLARE's slice separation is ``round(thick spacing / min in-plane spacing, 3)``; the thickness of a
    block of S contiguous HR slices is that same length, S * HR spacing.
    """
    spacing = case["thick"].spacing
    width = float(case["hr"].spacing[2] * case["scale"] / min(spacing[:2]))
    kernel = box_profile(width)
    path = case["folder"] / "slice_profile_box.npy"
    np.save(path, kernel.astype(np.float32))
    return {
        "type": "box (file)",
        "width_inplane_voxels": round(width, 4),
        "eclare_separation": eclare_separation(case["path"]),
        "taps": [round(float(w), 5) for w in kernel],
        "file": str(path),
    }


def eclare_log_times(log: Path, patches: int | None) -> dict:
    """What ECLARE's own output says: ``ECLARE elapsed time`` (training + inference, s) and the training loop's
    time (its first tqdm bar, ``n/n [mm:ss<``, n = the patch count), so the rest is start-up and inference."""
    text = log.read_text(errors="replace") if log.exists() else ""
    elapsed = re.findall(r"ECLARE elapsed time: ([0-9.]+)s", text)
    train = None
    for done, total, hours, minutes, seconds in re.findall(r"(\d+)/(\d+) \[(?:(\d+):)?(\d+):(\d+)<", text):
        if done == total and (patches is None or int(total) == patches):
            train = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
            break
    return {"eclare_elapsed_s": float(elapsed[-1]) if elapsed else None, "train_loop_s": train}


def run_eclare(python: Path, case: dict, tag: str, patches: int | None, gpu: bool, profile: dict | None) -> dict:
    """ECLARE's CLI (``run-eclare``) on the thick file; ``patches=None`` and ``profile=None`` keep its defaults."""
    out_dir = case["folder"] / f"eclare-{tag}"
    log = case["folder"] / f"eclare-{tag}.log"
    cmd = [str(python.parent / "run-eclare"), "--in-fpath", str(case["path"]), "--out-dir", str(out_dir)]
    cmd += ["--gpu-id", "0" if gpu else "-1", "--suffix", "_eclare"]
    if patches is not None:
        cmd += ["--n-patches", str(patches), "--batch-size", str(ECLARE_BATCH)]
    if profile is not None:
        cmd += ["--relative-slice-thickness", str(profile["width_inplane_voxels"])]
        cmd += ["--relative-slice-profile-fpath", profile["file"]]
    row = measured(cmd, log)
    return {
        "method": f"eclare-{'gpu' if gpu else 'cpu'}",
        "patches": 1_000_000 if patches is None else patches,
        "output": str(out_dir / "thick_eclare.nii.gz"),
        **row,
        **eclare_log_times(log, 1_000_000 if patches is None else patches),
    }


def eclare_cpu(python: Path, case: dict, target_s: float, patches: int | None, profile: dict) -> tuple[dict, dict]:
    """ECLARE on the CPU with as many patches (whole batches) as fit ``target_s`` seconds, and the calibration.

    Calibration: runs of ``CALIBRATION_BATCHES`` batches give ``seconds = fixed + per_batch * batches``
    (fixed = start-up, loading and the whole-volume inference); the count is ``(target - fixed) / per_batch``.
    When the fixed cost alone exceeds ``target_s`` (ECLARE cannot finish on the CPU in our time), its training
    gets ``target_s`` seconds of batches instead, so it is never scored on a one-step run; ``matched`` is then
    false and ``ours_within_its_time`` true (we used no more wall time than it did).
    """
    if patches is not None:
        row = run_eclare(python, case, "cpu", patches, False, profile)
        return row, {"by": "--eclare-patches", "patches": patches, "target_s": target_s}
    b1, b2 = CALIBRATION_BATCHES
    runs = [run_eclare(python, case, f"cal{b1}", b1 * ECLARE_BATCH, False, profile)]
    runs.append(run_eclare(python, case, f"cal{b2}", b2 * ECLARE_BATCH, False, profile))
    calibration = {"by": "calibration", "batch_size": ECLARE_BATCH, "target_s": target_s}
    # its own training-loop time (tqdm) gives the cost per batch: the totals differ by less than their noise
    # (the whole-volume inference dominates them)
    loop = runs[1].get("train_loop_s")
    per_batch = loop / b2 if loop else max((runs[1]["seconds"] - runs[0]["seconds"]) / (b2 - b1), 1e-3)
    fixed = runs[1]["seconds"] - per_batch * b2
    if fixed < target_s:  # its whole run fits our wall time: as many batches as fill it
        batches = max(b1, int(round((target_s - fixed) / per_batch)))
    else:  # start-up + inference alone exceed our whole run: give its training our whole wall time
        batches = max(b1, int(round(target_s / per_batch)))
        calibration["note"] = (
            f"its fixed cost (start-up + whole-volume inference, {fixed:.0f} s) exceeds our whole run "
            f"({target_s} s): its training gets our whole wall time, so its total is longer than ours"
        )
    done = {b1: runs[0], b2: runs[1]}
    row = done[batches] if batches in done else run_eclare(python, case, "cpu", batches * ECLARE_BATCH, False, profile)
    calibration |= {"fixed_s": round(fixed, 2), "s_per_batch": round(per_batch, 3)}
    calibration["predicted_s"] = round(fixed + per_batch * batches, 2)
    calibration["runs"] = [{k: r[k] for k in ("patches", "seconds", "peak_rss_mb", "train_loop_s")} for r in runs]
    calibration["patches"] = row["patches"]
    calibration["achieved_s"] = row["seconds"]
    calibration["matched"] = abs(row["seconds"] - target_s) <= 0.25 * target_s
    calibration["ours_within_its_time"] = target_s <= row["seconds"]
    return dict(row, method="eclare-cpu"), calibration


# ----------------------------------------------------------------------------- grids and scores


def to_truth_grid(values: np.ndarray, affine: np.ndarray, truth_affine: np.ndarray, truth_shape, shift: float = 0.0):
    """Sample an output ``(X, Y, Z')`` at the truth's voxel centres (+ ``shift`` truth slices) along the slice axis.

    The in-plane grids must coincide (checked by :func:`grid_report`); along the slice axis the truth index
    ``k`` maps to the output index ``m = M[2,2] * (k + shift) + M[2,3]`` with ``M = inv(affine) @ truth_affine``,
    sampled by linear interpolation. Returns ``(sampled (X, Y, Z), covered (Z,) bool)``.
    """
    m = np.linalg.inv(affine) @ truth_affine
    pos = m[2, 2] * (np.arange(truth_shape[2]) + shift) + m[2, 3]
    covered = (pos >= -1e-6) & (pos <= values.shape[2] - 1 + 1e-6)
    pos = np.clip(pos, 0, values.shape[2] - 1)
    low = np.minimum(np.floor(pos).astype(int), values.shape[2] - 2) if values.shape[2] > 1 else np.zeros_like(pos, int)
    frac = (pos - low).astype(np.float32)
    high = np.minimum(low + 1, values.shape[2] - 1)
    return values[:, :, low] * (1 - frac) + values[:, :, high] * frac, covered


def grid_report(name: str, img, truth_affine: np.ndarray, truth_shape, truth: np.ndarray, region: np.ndarray) -> dict:
    """How an output's grid relates to the truth's: shape, spacing, origin in truth voxels, best sub-slice shift."""
    affine = img.affine
    m = np.linalg.inv(affine) @ truth_affine  # truth index -> output index
    inplane = float(np.abs(m[:2, :3] - np.eye(3)[:2]).max() + np.abs(m[:2, 3]).max())
    slice_axis = float(np.abs(m[2, :2]).max())
    origin_in_truth = (np.linalg.inv(truth_affine) @ affine @ np.array([0, 0, 0, 1.0]))[:3]
    values = np.asarray(img.dataobj, dtype=np.float32)
    shifts = np.round(np.arange(-1.0, 1.0001, 0.05), 2)
    errors = []
    for s in shifts:
        sampled, covered = to_truth_grid(values, affine, truth_affine, truth_shape, float(s))
        inside = region & covered[None, None, :]
        errors.append(float(np.mean((sampled[inside] - truth[inside]) ** 2)))
    return {
        "output": name,
        "shape": list(values.shape),
        "zooms": [round(float(z), 5) for z in img.header.get_zooms()[:3]],
        "affine": np.round(affine, 5).tolist(),
        "same_grid_as_truth": list(values.shape) == list(truth_shape)
        and bool(np.allclose(affine, truth_affine, atol=1e-4)),
        "slices_per_truth_slice": round(float(m[2, 2]), 5),
        "slice0_in_truth_index": [round(float(v), 4) for v in origin_in_truth],
        "truth_slice0_in_output_index": round(float(m[2, 3]), 4),
        "inplane_mismatch_voxels": round(inplane + slice_axis, 6),
        "best_shift_truth_slices": float(shifts[int(np.argmin(errors))]),
        "mse_at_zero_shift_over_best": round(errors[int(np.argmin(np.abs(shifts)))] / max(min(errors), 1e-12), 4),
    }


def eclare_predicted_shift(case: dict) -> float:
    """Where ECLARE's content sits relative to the affine it writes, in truth slices (from reading its code).

    Its network resamples ``n`` thick slices to ``round(n * sep)`` samples centred on the same field of view
    (radifox ``resize``, same FOV), while the affine it writes (radifox ``update_affine``) assumes ``n * sep``
    samples from the first slice's edge. With a non-integer ``sep`` the content of truth slice ``k`` is found at
    the affine's position ``k + S * (round(n * sep) / sep - n) / 2``; 0 when ``n * sep`` is whole.
    """
    sep = eclare_separation(case["path"])
    n = case["thick"].spatial_shape[2]
    return round(case["scale"] * (round(n * sep) / sep - n) / 2, 4)


def score_case(case: dict, rows: list[dict]) -> dict:
    """Map each output to the truth grid, record the grids, score PSNR/SSIM as ``evaluate`` does, gain over bspline."""
    import nibabel as nib

    from geo_med_sr.metrics.image import data_range, psnr, ssim, valid_region

    hr = case["hr"]
    truth = hr.array
    shape = hr.spatial_shape
    region = valid_region(shape, (1, 1, case["scale"]), hr.valid)
    peak = data_range(truth, hr.valid)
    values, grids = {}, {}
    for row in rows:
        img = nib.load(row["output"])
        name = row["method"]
        grids[name] = grid_report(name, img, hr.affine, shape, truth[0], region)
        if grids[name]["inplane_mismatch_voxels"] > 1e-3:
            raise SystemExit(f"bench_peers: {row['output']}: in-plane grid differs from the truth's: {grids[name]}")
        if name.startswith("eclare"):
            grids[name]["predicted_shift_truth_slices"] = eclare_predicted_shift(case)
        values[name] = (np.asarray(img.dataobj, np.float32), img.affine)
        region = region & to_truth_grid(*values[name], hr.affine, shape)[1][None, None, :]
    for row in rows:
        sampled = to_truth_grid(*values[row["method"]], hr.affine, shape)[0][None]
        row["psnr"] = round(psnr(truth, sampled, region, peak), 4)
        row["ssim"] = round(ssim(truth, sampled, region, peak), 5)
        best = grids[row["method"]]["best_shift_truth_slices"]
        shifted, covered = to_truth_grid(*values[row["method"]], hr.affine, shape, best)
        row["psnr_at_best_shift"] = round(psnr(truth, shifted[None], region & covered[None, None, :], peak), 4)
    base = next((r["psnr"] for r in rows if r["method"] == "bspline"), None)
    for row in rows:
        row["gain_db"] = None if base is None else round(row["psnr"] - base, 4)
    return {"grid": grids, "scored_voxels": int(region.sum()), "data_range": peak}


# ----------------------------------------------------------------------------- main

HEADER = ("volume", "scale", "method", "PSNR", "SSIM", "gain dB", "wall s", "peak MB")
LINE = "{:13s} {:>5} {:10s} {:>7} {:>6} {:>7} {:>8} {:>8}"


def table_line(volume: str, scale: int, row: dict) -> str:
    """One row of the table: PSNR (dB), SSIM, gain over bspline (dB), wall time (s), peak RSS (MB)."""
    gain = "" if row["gain_db"] is None else f"{row['gain_db']:+.2f}"
    return LINE.format(
        volume, scale, row["method"], f"{row['psnr']:.2f}", f"{row['ssim']:.4f}", gain,
        f"{row['seconds']:.1f}", f"{row['peak_rss_mb']:.0f}",
    )  # fmt: skip


def run_case(name: str, path: Path | None, scale: int, args: argparse.Namespace, python: Path, versions: dict) -> dict:
    """All runs of one volume at one scale, scored; the JSON entry of the case."""
    from geo_med_sr import io

    hr = synthetic_hr(scale) if path is None else io.read(path)
    case = make_case(name, centre_crop(hr, args.crop), scale, args.work.resolve())
    print(f"\n== {name} x{scale}: HR {case['hr'].spatial_shape} -> thick {case['thick'].spatial_shape}", flush=True)
    rows = [run_ours(case, "bspline", None, None), run_ours(case, "self", args.budget, args.steps)]
    print(rows[-1]["command"], f"{rows[-1]['seconds']} s", flush=True)
    gpu = None
    if versions["cuda"]:
        rows.append(run_eclare(python, case, "gpu", None, True, None))
    else:
        gpu = "skipped: torch in ECLARE's venv sees no CUDA device"
    profile = eclare_profile(case)
    row, calibration = eclare_cpu(python, case, rows[1]["seconds"], args.eclare_patches, profile)
    rows.append(row)
    report = score_case(case, rows)
    for r in rows:
        print(table_line(name, scale, r), flush=True)
    return {
        "volume": name,
        "scale": scale,
        "source": None if path is None else str(path),
        "crop": args.crop,
        "hr_shape": list(case["hr"].spatial_shape),
        "thick_shape": list(case["thick"].spatial_shape),
        "hr_spacing_mm": [round(float(v), 5) for v in case["hr"].spacing],
        "thick_file": str(case["path"]),
        "slice_profile": profile,
        "eclare_gpu": gpu,
        "eclare_cpu_patches": calibration,
        **report,
        "rows": rows,
    }


def machine() -> str:
    """CPU model and core count."""
    names = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    return f"{names[0] if names else platform.processor()}, {os.cpu_count()} cores, {platform.machine()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="+", choices=[*sorted(CASES), SYNTHETIC], default=sorted(CASES), help="volumes to run"
    )
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--memory", action="store_true", help=f"also {SYNTHETIC}: a synthetic 512x512x40 thick series")
    parser.add_argument("--budget", type=float, help="seconds of training for our --method self (default: its own)")
    parser.add_argument("--steps", type=int, help="training steps for our --method self instead of a budget")
    parser.add_argument("--eclare-patches", type=int, help="ECLARE CPU patches (skips the wall-time calibration)")
    parser.add_argument("--crop", type=int, help="keep the central N x N of each slice (smoke runs)")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".work" / "peers")
    parser.add_argument("--skip-install", action="store_true", help="reuse ECLARE's venv under --work")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_peers.json")
    args = parser.parse_args()

    sources: list[tuple[str, Path | None]] = []
    for name in [*args.only, *([SYNTHETIC] if args.memory and SYNTHETIC not in args.only else [])]:
        path = None if name == SYNTHETIC else args.data / CASES[name]
        if path is None or path.exists():
            sources.append((name, path))
        else:
            print(f"bench_peers: skip {name}: {path} not found (the shared validation data is not here)", flush=True)
    if not sources:
        print(f"bench_peers: nothing to run (no validation data; --only {SYNTHETIC} needs none)")
        return
    args.work.resolve().mkdir(parents=True, exist_ok=True)
    python = eclare_venv(args.work.resolve(), args.skip_install)
    versions = eclare_versions(python)
    print("ECLARE venv:", versions, flush=True)
    cases = [run_case(name, path, scale, args, python, versions) for name, path in sources for scale in args.scales]

    print("\n" + LINE.format(*HEADER))
    for c in cases:
        for r in c["rows"]:
            print(table_line(c["volume"], c["scale"], r))
    import torch

    import geo_med_sr

    report = {
        "machine": machine(),
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": {"geo_med_sr": geo_med_sr.__version__, "torch": torch.__version__, "eclare_venv": versions},
        "protocol": (
            "thick = block average of S slices along the last axis (geo_med_sr.degrade.block_average), float32 NIfTI; "
            "truth = the original cut to whole blocks; outputs sampled at the truth's voxel centres by world "
            "coordinates (linear along the slice axis); PSNR (truth's data range) and SSIM (window 11, sigma 1.5) "
            "as geo-med-sr evaluate, border (1, 1, S), on voxels every method covers; wall time and peak RSS of "
            "the largest single process of each command, run fresh"
        ),
        "cases": cases,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
