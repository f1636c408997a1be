"""Pan-sharpening side by side with peers (Wald protocol): ours vs Z-PNN, OTB and GDAL on the shared pairs.

Over 500 lines because one runnable script finds and checks the pairs, makes the reduced inputs, installs
Z-PNN in a venv of its own, runs every method as a fresh process and scores them all the same way.

    .venv/bin/python benchmarks/bench_peers_pansharpen.py [--pairs fusebox_01 spacenet_1 | --all] \
        [--methods bicubic brovey glp model self self-ft gdal otb-rcs otb-lmvm otb-bayes z-pnn ...] \
        [--self-steps 300] [--zpnn-iters N] [--zpnn-ta-iters 200] [--timeout 600] [--skip-install] \
        [--work benchmarks/.work] [--json benchmarks/results/bench_peers_pansharpen.json]

Pairs (``--pairs``: substrings of the pair ids; default: the first FuseBox crop of each of its 5 scenes, the
Marburg pairs and the SpaceNet tiles; ``--all``: all 29 FuseBox crops too):

* ``fusebox_NN``: ``../shared/data/pansharpen/landsat7_fusebox`` (Landsat-7 ETM+, 8-bit, 6 bands, ratio 2,
  shared corner). The bundled ``pan-guided-x2``/``x4`` were trained on these 29 pairs: their rows say
  ``model_saw_pair: true``;
* ``marburg_*``: ``../shared/data/pansharpen/landsat_marburg_tiny`` (41 px MS): skipped, the cropped MS is under
  :data:`MIN_TRUTH_SIDE` pixels a side (the data README: "too small for metrics");
* ``spacenet_K``: ``../shared/data/train/remote/spacenet_solaris/{ms,pan}K.tif`` (WorldView-2, 11-bit, 4 bands).
  Each MS tile is the native 2 m MS upsampled x2 by nearest neighbour (every aligned 2x2 block identical: the
  fraction is checked and recorded), so the native MS is recovered exactly by a 2x2 block average and the pair's
  ratio is 4 (pan 0.5 m), WorldView's own. Its pixel is 4.00024 pan pixels (``sharpen`` refuses non-integer
  ratios): the reduced MS is written on the reduced pan's grid x 4, a relabelling by 0.006 % (under 0.01 px
  over a tile). Rows and columns with nodata (0) are cropped away (tiles 2 and 3 miss their top rows).

Wald protocol: the MS is cropped to whole multiples of the ratio and the pan to ratio x that; both are
block-averaged by the ratio (:func:`geo_med_sr.degrade.block_average_array`) and written as float32 GeoTIFFs
(``ms.tif``, ``pan.tif``: transforms = pan transform x ratio, and that x ratio); every method sharpens exactly
these values to the original MS grid, the truth. Values are the products' DN for every method.

Methods, each a fresh process (wall time and peak RSS of its largest process by ``_peak.peak_run``; one
that runs past ``--timeout`` seconds is stopped and its row says so):

* ours: ``python -m geo_med_sr sharpen ms.tif OUT --pan pan.tif --method M`` for bicubic, brovey, glp, model
  (bundled ``pan-guided-x{r}``), self (``--model scratch --steps N``, ``--self-steps``; the CLI default
  method is self from scratch with 600 steps) and self-ft (``--method self --model pan-guided-x{r} --steps N``);
* GDAL: ``gdal_pansharpen.py -r cubic -of GTiff pan.tif ms.tif OUT`` (its default weights, all bands);
* OTB 8 (``otb-bin``; installed by ``apt-get install -y otb-bin`` when missing, unless ``--skip-install``):
  ``otbcli_Superimpose`` (bicubic, onto the pan) then ``otbcli_Pansharpening -method rcs|lmvm|bayes``;
* Z-PNN (matciotola/Z-PNN, a ``git archive`` of its mirror under ``--work``, torch CPU in its own venv):
  ``python main.py -i in.mat -o OUT/ -s SENSOR -m METHOD --coregistration --use_cpu`` (its README's test
  command, on CPU) for Z-PNN, Z-PanNet, A-PNN-TA-FR (PNN) and PanNet-TA-FR, each with its shipped weights and
  default epochs for Z-PNN and Z-PanNet (100; ``--zpnn-iters``) and 200 for the -TA-FR ones (``--zpnn-ta-iters``;
  theirs is 2000, about 45 min a WorldView tile on the busy 2-core CPU). Its code is fixed at ratio 4
  and 11 bits and it ships weights for WV2/WV3 (8 bands) and GE1 (4 bands): the 4-band WorldView-2 tiles run
  with the GE1 weights (same band layout B,G,R,NIR, bit depth and ratio; recorded as
  ``weights_fit_sensor: false``), the Landsat pairs are "no weights for this sensor".

Scores (:func:`geo_med_sr.metrics.fusion.fusion_report`): per band PSNR and SSIM with the truth band's
max - min as data range, mean PSNR, mean SSIM, SAM (degrees), ERGAS (with the ratio) and Q2n, on all pixels.
``best_shift`` (from ``bench_peers_sharpen``) checks alignment: the (row, col) shift of the output in half
pixels that fits the truth best and the dB it would gain. ``verdict`` per pair: our default (self) and our
best method minus the best peer in mean PSNR.

Licence rule: the peers are only run to be measured; Z-PNN's code and weights (non-commercial licence) stay
under ``--work`` (git-ignored) and are never imported into or copied into this repository.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_peers_sharpen import (  # noqa: E402
    absent_blobs,
    best_shift,
    make_venv,
    measured,
    report_header,
    versions,
)

DATA = REPO.parent / "shared" / "data"
FUSEBOX = DATA / "pansharpen" / "landsat7_fusebox"
MARBURG = DATA / "pansharpen" / "landsat_marburg_tiny"
SPACENET = DATA / "train" / "remote" / "spacenet_solaris"
ZPNN_MIRROR = Path("/work/.mirror/matciotola+Z-PNN/repo")
OURS = ("bicubic", "brovey", "glp", "model", "self", "self-ft")
ZPNN = {"z-pnn": "Z-PNN", "z-pannet": "Z-PanNet", "a-pnn-ta-fr": "A-PNN-TA-FR", "pannet-ta-fr": "PanNet-TA-FR"}
OTB = ("otb-rcs", "otb-lmvm", "otb-bayes")
PEERS = ("gdal", *OTB, *ZPNN)
ZPNN_EPOCHS = {True: 100, False: 2000}  # main.py's epochs for Z-* (zero-shot) and *-TA-FR methods
# *-TA-FR's 2000 epochs take 1.3 s each on a 148-px WorldView tile on the busy 2-core CPU (about 45 min a tile):
# --zpnn-ta-iters is 200 by default here (recorded per row), 2000 to run theirs
ZPNN_TA_ITERS = 200
MIN_TRUTH_SIDE = 64  # cropped MS (the truth) pixels a side below which a pair is skipped
# numpy < 2.3: its spectral_tools.py calls int() on 1-element arrays (deprecated in 1.25, an error in 2.3+)
ZPNN_PINS = [["torch==2.13.0", "scipy", "scikit-image", "tqdm", "matplotlib", "numpy<2.3"]]
# Z-PNN's sensors: bands, bits, ratio (sensor.py); which of them serves a pair's sensor and band count
ZPNN_WEIGHTS = {
    ("WorldView-2", 4): ("GE1", False),
    ("WorldView-2", 8): ("WV2", True),
    ("WorldView-3", 8): ("WV3", True),
}

ZPNN_IO = '''"""npz <-> .mat for Z-PNN (from bench_peers_pansharpen.py): RUNNER to-mat NPZ MAT | from-mat MAT NPY"""
import sys
import numpy as np
import scipy.io as io

if sys.argv[1] == "to-mat":
    d = np.load(sys.argv[2])
    io.savemat(sys.argv[3], {"I_MS_LR": np.moveaxis(d["ms"], 0, -1), "I_PAN": d["pan"]})
else:
    np.save(sys.argv[3], np.moveaxis(io.loadmat(sys.argv[2])["I_MS"], -1, 0).astype("float32"))
'''


# ----------------------------------------------------------------------------- pairs


def find_pairs(selected: list[str] | None, everything: bool) -> list[dict]:
    """The shared pan/MS pairs: ``{"id", "ms", "pan", "sensor", "source", "model_saw_pair"}`` each.

    Default: the first FuseBox crop of each scene, the Marburg pairs and the SpaceNet tiles; ``everything``
    adds every FuseBox crop; ``selected`` (id substrings) picks among all of them.
    """
    pairs, scenes = [], set()
    for ms in sorted(FUSEBOX.glob("*_ms.tif")) if FUSEBOX.exists() else []:
        nn, scene = ms.name.split("_", 1)[0], ms.name.split("_", 1)[1].rsplit("_", 1)[0]
        pairs.append(
            {"id": f"fusebox_{nn}_{scene.split('_')[0]}", "ms": ms, "pan": ms.with_name(ms.name[:-6] + "pan.tif")}
        )
        pairs[-1].update(sensor="Landsat-7 ETM+", source="FuseBox (8-bit)", model_saw_pair=True)
        pairs[-1]["default"] = scene not in scenes
        scenes.add(scene)
    for ms in sorted(MARBURG.glob("*_ms.tif")) if MARBURG.exists() else []:
        sensor = "Landsat-8 OLI" if ms.name.startswith("LC08") else "Landsat-7 ETM+"
        pairs.append({"id": f"marburg_{ms.name[:4]}", "ms": ms, "pan": ms.with_name(ms.name[:-6] + "pan.tif")})
        pairs[-1].update(sensor=sensor, source="Marburg L1TP (tiny)", model_saw_pair=False, default=True)
    for ms in sorted(SPACENET.glob("ms[0-9].tif")) if SPACENET.exists() else []:
        k = ms.stem[2:]
        pairs.append({"id": f"spacenet_{k}", "ms": ms, "pan": ms.with_name(f"pan{k}.tif"), "default": True})
        pairs[-1].update(sensor="WorldView-2", source="SpaceNet 6 via solaris", model_saw_pair=False)
    if selected:
        return [p for p in pairs if any(s in p["id"] for s in selected)]
    return [p for p in pairs if everything or p["default"]]


def read_pair(pair: dict) -> dict:
    """MS ``(C, h, w)`` and pan ``(H, W)`` float64 with transforms, on grids with an integer ratio.

    Returns ``{"ms", "pan", "ms_t", "pan_t", "crs", "names", "ratio", "notes", "skip"}``; SpaceNet's
    nearest-neighbour x2 MS is brought back to its native grid first (see the module docstring).
    """
    import rasterio
    from affine import Affine

    from geo_med_sr.degrade import block_average_array

    with rasterio.open(pair["ms"]) as ms, rasterio.open(pair["pan"]) as pan:
        m, p = ms.read().astype(np.float64), pan.read(1).astype(np.float64)
        out = {"ms_t": ms.transform, "pan_t": pan.transform, "crs": ms.crs, "notes": [], "skip": None}
        out["names"] = [d or f"band{i + 1}" for i, d in enumerate(ms.descriptions)]
        nodata = ms.nodata
    if pair["id"].startswith("spacenet"):
        same = float(np.mean([(m[:, 0::2, 0::2] == m[:, i::2, j::2]).mean() for i, j in ((0, 1), (1, 0), (1, 1))]))
        out["notes"].append(
            f"MS tile = native 2 m MS upsampled x2 by nearest neighbour ({same:.2%} of aligned 2x2 "
            "block pixels identical): native MS = its 2x2 block average"
        )
        out["nn_blocks_identical"] = round(same, 5)
        if same < 0.99:
            out["skip"] = f"MS tile is not a nearest-neighbour x2 of a native grid ({same:.2%} identical)"
        inside = np.all(m > 0, axis=0)  # 0 outside the image (tiles 2 and 3); a native pixel needs all 4
        out["valid"] = inside[: inside.shape[0] // 2 * 2, : inside.shape[1] // 2 * 2]
        out["valid"] = out["valid"].reshape(inside.shape[0] // 2, 2, -1, 2).all(axis=(1, 3))
        m = block_average_array(m, (2, 2)).astype(np.float64)
        out["ms_t"] = out["ms_t"] * Affine.scale(2)
        out["names"] = [f"MS{i + 1}" for i in range(m.shape[0])]
        out["notes"].append("band order as stored (SpaceNet 6 MS: 4 bands, B G R NIR per its docs; not tagged)")
    exact = out["ms_t"].a / out["pan_t"].a
    ratio = int(round(exact))
    out["ratio"], out["pixel_ratio"] = ratio, round(exact, 6)
    if abs(exact - ratio) > 1e-3 * ratio:
        out["skip"] = out["skip"] or f"pixel ratio {exact:.5f} is not close to an integer"
    elif abs(exact - ratio) > 1e-9:
        out["notes"].append(
            f"MS pixel {exact:.5f} pan pixels: the reduced MS is written at exactly {ratio} (relabel "
            f"{abs(exact / ratio - 1):.4%})"
        )
    offset = ((out["ms_t"].c - out["pan_t"].c) / out["pan_t"].a, (out["ms_t"].f - out["pan_t"].f) / out["pan_t"].e)
    out["corner_offset_pan_px"] = [round(offset[1], 4), round(offset[0], 4)]
    if pair["id"].startswith("spacenet"):  # no nodata tag, but 0 outside the image (tiles 2 and 3)
        valid, pan_ok = out.pop("valid"), p > 0
    else:
        valid = np.all(m != nodata, axis=0) if nodata is not None else np.ones(m.shape[1:], bool)
        pan_ok = p != nodata if nodata is not None else np.ones(p.shape, bool)
    out.update(ms=m, pan=p, valid=valid, pan_valid=pan_ok)
    return out


def longest_run(flags: np.ndarray) -> tuple[int, int]:
    """``(start, stop)`` of the longest run of True in a 1D bool array ((0, 0) if none)."""
    best, start = (0, 0), None
    for i, f in enumerate([*flags.tolist(), False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            best, start = max(best, (start, i), key=lambda r: r[1] - r[0]), None
    return best


def make_case(pair: dict, work: Path) -> dict:
    """Crop to valid whole reduced pixels, block-average pan and MS by the ratio, write the reduced inputs.

    Returns the case: ``{"pair", "ratio", "truth" ((C, h, w) float64), "folder", "ms", "pan", "npz",
    "shapes", "notes", "skip" (reason or None), ...}``.
    """
    from affine import Affine

    from geo_med_sr.degrade import block_average_array

    case = {"pair": pair["id"], "sensor": pair["sensor"], "source": pair["source"], "skip": None}
    case.update(model_saw_pair=pair["model_saw_pair"], files={"ms": str(pair["ms"]), "pan": str(pair["pan"])})
    d = read_pair(pair)
    r = d["ratio"]
    case.update(ratio=r, pixel_ratio=d["pixel_ratio"], notes=d["notes"], bands=d["names"])
    case["corner_offset_pan_px"] = d["corner_offset_pan_px"]
    if "nn_blocks_identical" in d:
        case["nn_blocks_identical"] = d["nn_blocks_identical"]
    if d["skip"]:
        case["skip"] = d["skip"]
        return case
    h, w = d["ms"].shape[1:]
    pan_blocks = d["pan_valid"][: h * r, : w * r].reshape(h, r, w, r).all(axis=(1, 3))
    ok = d["valid"] & pan_blocks
    r0, r1 = longest_run(ok.all(axis=1))
    c0, c1 = longest_run(ok[r0:r1].all(axis=0))
    r0, c0 = -(-r0 // r) * r, -(-c0 // r) * r  # start on whole reduced pixels
    rows, cols = (r1 - r0) // r * r, (c1 - c0) // r * r
    if (rows, cols) != (h, w):
        case["notes"].append(
            f"cropped to MS rows {r0}:{r0 + rows}, cols {c0}:{c0 + cols} of {h}x{w} (valid, whole reduced pixels)"
        )
    if min(rows, cols) < MIN_TRUTH_SIDE:
        case["skip"] = f"cropped MS {rows}x{cols} px is under {MIN_TRUTH_SIDE} a side: too small for the metrics"
        return case
    if max(abs(x) for x in case["corner_offset_pan_px"]) > 1e-3:
        case["skip"] = f"MS corner {case['corner_offset_pan_px']} pan px from the pan corner: not handled here"
        return case
    truth = d["ms"][:, r0 : r0 + rows, c0 : c0 + cols]
    pan = d["pan"][r0 * r : (r0 + rows) * r, c0 * r : (c0 + cols) * r]
    ms_red = block_average_array(truth, (r, r))
    pan_red = block_average_array(pan[None], (r, r))[0]
    pan_t = d["pan_t"] * Affine.translation(c0 * r, r0 * r)  # the crop's corner on the pan grid
    out = work / "pansharpen" / "reduced" / pair["id"]
    out.mkdir(parents=True, exist_ok=True)
    write_tif(out / "pan.tif", pan_red[None], pan_t * Affine.scale(r), d["crs"], ["pan"])
    write_tif(out / "ms.tif", ms_red, pan_t * Affine.scale(r * r), d["crs"], d["names"])
    np.savez(out / "inputs.npz", ms=ms_red.astype(np.float32), pan=pan_red.astype(np.float32))
    case.update(folder=out, ms=out / "ms.tif", pan=out / "pan.tif", npz=out / "inputs.npz", truth=truth)
    case["shapes"] = {"truth": list(truth.shape), "reduced_ms": list(ms_red.shape), "reduced_pan": list(pan_red.shape)}
    return case


def write_tif(path: Path, values: np.ndarray, transform, crs, names: list[str]) -> None:
    """A float32 GeoTIFF of ``values`` ``(C, rows, cols)`` with band descriptions ``names``."""
    import rasterio

    profile = {"driver": "GTiff", "count": values.shape[0], "dtype": "float32", "crs": crs, "transform": transform}
    with rasterio.open(path, "w", height=values.shape[1], width=values.shape[2], **profile) as dst:
        dst.write(values.astype(np.float32))
        for i, name in enumerate(names):
            dst.set_band_description(i + 1, name)


# ----------------------------------------------------------------------------- runs


def read_tif(path: Path) -> np.ndarray:
    """Every band of a GeoTIFF as ``(C, rows, cols)`` float64."""
    import rasterio

    with rasterio.open(path) as src:
        return src.read().astype(np.float64)


def run_ours(case: dict, method: str, args: argparse.Namespace) -> dict:
    """One of our methods in a fresh process; the row with its output under ``"_estimate"``."""
    r, out = case["ratio"], case["folder"] / f"ours_{method}.tif"
    run = "self" if method == "self-ft" else method
    cmd = [sys.executable, "-m", "geo_med_sr", "sharpen", str(case["ms"]), str(out), "--pan", str(case["pan"])]
    cmd += ["--method", run, "--quiet", "--overwrite"]
    row: dict = {"method": method, "kind": "ours"}
    if run == "self":
        cmd += ["--steps", str(args.self_steps), "--model", "scratch" if method == "self" else f"pan-guided-x{r}"]
        row["steps"] = args.self_steps
        if method == "self":
            row["note"] = "the CLI default method (self, from scratch), here with --steps " + str(args.self_steps)
    if method == "model":
        cmd += ["--model", f"pan-guided-x{r}"]
    if method in ("model", "self-ft"):
        row.update(model_weights=f"bundled pan-guided-x{r}", model_saw_pair=case["model_saw_pair"])
    row.update(measured(cmd, out.with_suffix(".log"), args.timeout))
    if "error" not in row:
        row["_estimate"] = read_tif(out)
    return row


def run_gdal(case: dict, tools: dict, limit: float) -> dict:
    """``gdal_pansharpen.py`` with its defaults and cubic resampling on the reduced inputs."""
    row = {"method": "gdal", "kind": "peer"}
    if not tools["gdal"].get("path"):
        return {**row, "error": tools["gdal"]["why"]}
    out = case["folder"] / "peer_gdal.tif"
    out.unlink(missing_ok=True)
    cmd = [tools["gdal"]["path"], "-q", "-r", "cubic", "-of", "GTiff", str(case["pan"]), str(case["ms"]), str(out)]
    row.update(measured(cmd, out.with_suffix(".log"), limit), settings="default weights (none given), -r cubic")
    if "error" not in row:
        row["_estimate"] = read_tif(out)
    return row


def run_otb(case: dict, method: str, tools: dict, limit: float) -> dict:
    """OTB's Superimpose (bicubic) then Pansharpening with ``method`` (rcs, lmvm, bayes; their defaults)."""
    row = {"method": method, "kind": "peer"}
    if not tools["otb"].get("path"):
        return {**row, "error": tools["otb"]["why"]}
    algo, folder = method.split("-", 1)[1], case["folder"]
    sup, out = folder / f"peer_{method}_xs_superimposed.tif", folder / f"peer_{method}.tif"
    one = ["otbcli_Superimpose", "-inr", str(case["pan"]), "-inm", str(case["ms"]), "-interpolator", "bco"]
    one += ["-out", str(sup), "float"]
    two = ["otbcli_Pansharpening", "-inp", str(case["pan"]), "-inxs", str(sup), "-method", algo, "-out", str(out)]
    cmd = ["bash", "-c", f"{shlex.join(one)} && {shlex.join(two + ['float'])}"]
    row.update(measured(cmd, out.with_suffix(".log"), limit), settings=f"{algo} with OTB's default parameters")
    if "error" not in row:
        row["_estimate"] = read_tif(out)
    return row


def run_zpnn(case: dict, method: str, tools: dict, args: argparse.Namespace) -> dict:
    """One Z-PNN method through its ``main.py`` in its venv (cwd = its tree: it loads ``weights/`` from there)."""
    row = {"method": method, "kind": "peer"}
    z = tools["zpnn"]
    fit = ZPNN_WEIGHTS.get((case["sensor"], len(case["bands"])))
    if fit is None:
        why = (
            f"no weights for this sensor ({case['sensor']}, {len(case['bands'])} bands, x{case['ratio']}): Z-PNN "
            "ships WV2/WV3 (8 bands) and GE1 (4 bands) weights, and its Sensor class is fixed at ratio 4, 11 bits"
        )
        return {**row, "error": why}
    if z.get("python") is None:
        return {**row, "error": z["why"]}
    sensor, fits = fit
    folder = case["folder"] / "zpnn"
    folder.mkdir(exist_ok=True)
    mat = folder / f"{case['pair']}.mat"
    done = subprocess.run([str(z["python"]), str(z["io"]), "to-mat", str(case["npz"]), str(mat)], capture_output=True)
    if done.returncode:  # written every time: the reduced inputs may have changed since the last run
        return {**row, "error": f"could not write its .mat input: {done.stderr.decode()[-800:]}"}
    out_dir = folder / f"out_{method}"
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [str(z["python"]), "main.py", "-i", str(mat), "-o", f"{out_dir}/", "-s", sensor, "-m", ZPNN[method]]
    cmd += ["--coregistration", "--use_cpu"]
    zero_shot = ZPNN[method].startswith("Z-")
    epochs = args.zpnn_iters if zero_shot else args.zpnn_ta_iters
    if epochs:
        cmd += ["--epochs", str(epochs)]
    row.update(zpnn_sensor=sensor, weights=f"weights/{sensor}_{ZPNN[method]}_model.tar", weights_fit_sensor=fits)
    row.update(epochs=epochs or ZPNN_EPOCHS[zero_shot], its_default_epochs=ZPNN_EPOCHS[zero_shot])
    if not fits:
        row["note"] = f"{case['sensor']} {len(case['bands'])}-band data with Z-PNN's {sensor} weights (no such weights)"
    row.update(
        measured(
            ["bash", "-c", f'cd {shlex.quote(str(z["tree"]))} && exec "$@"', "bash", *cmd],
            folder / f"{method}.log",
            args.timeout,
        )
    )
    row["command"] = f"cd {z['tree']} && {shlex.join(cmd)}"
    if "error" not in row:
        npy = folder / f"{method}.npy"
        produced = out_dir / f"{case['pair']}_{ZPNN[method]}.mat"
        done = subprocess.run(
            [str(z["python"]), str(z["io"]), "from-mat", str(produced), str(npy)], capture_output=True
        )
        if done.returncode:
            row["error"] = f"could not read its output {produced}: {done.stderr.decode()[-800:]}"
        else:
            row["_estimate"] = np.load(npy).astype(np.float64)
    return row


# ----------------------------------------------------------------------------- peers' setup


def setup_tools(args: argparse.Namespace, wanted: list[str]) -> dict:
    """GDAL's script, OTB's apps (apt-get once if missing) and Z-PNN's tree and venv, as far as wanted."""
    work = args.work.resolve()
    tools: dict = {"gdal": {"why": "not asked for"}, "otb": {"why": "not asked for"}, "zpnn": {"why": "not asked for"}}
    if "gdal" in wanted:
        path = shutil.which("gdal_pansharpen.py") or shutil.which("gdal_pansharpen")
        version = subprocess.run(["gdalinfo", "--version"], capture_output=True, text=True).stdout.strip()
        tools["gdal"] = {"path": path, "version": version, "why": "" if path else "gdal_pansharpen.py not found"}
    if any(m in OTB for m in wanted):
        tools["otb"] = otb_tool(args.skip_install)
    if any(m in ZPNN for m in wanted):
        tools["zpnn"] = zpnn_tool(args, work)
    for name, tool in tools.items():
        ready = tool.get("path") or tool.get("python")
        print(f"peer {name}: {'ready ' + str(tool.get('version', '')) if ready else tool['why']}", flush=True)
    return tools


def otb_tool(skip_install: bool) -> dict:
    """OTB's command line apps: ``{"path", "version"}`` or ``{"why"}`` (after one ``apt-get install``)."""
    if not shutil.which("otbcli_Pansharpening") and not skip_install:
        cmd = ["apt-get", "install", "-y", "otb-bin"]
        print("+", shlex.join(cmd), flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            return {"why": f"otb-bin not installable here: {shlex.join(cmd)}: {(done.stderr or done.stdout)[-800:]}"}
    path = shutil.which("otbcli_Pansharpening")
    if not path:
        return {"why": "otbcli_Pansharpening not found (apt-get install otb-bin; --skip-install skips that)"}
    query = ["dpkg-query", "-W", "-f", "${Version}", "otb-bin"]
    return {"path": path, "why": "", "version": subprocess.run(query, capture_output=True, text=True).stdout}


def zpnn_tool(args: argparse.Namespace, work: Path) -> dict:
    """Z-PNN's work tree (``git archive`` of the mirror, minus blobs the mirror lacks), venv and I/O runner."""
    source = args.zpnn
    if not source.exists():
        return {"why": f"Z-PNN not found at {source}: pass --zpnn (a checkout or the git dir of matciotola/Z-PNN)"}
    tree, commit = source, None
    if not (source / "main.py").exists():
        tree = work / "zpnn_src"
        if not (tree / "main.py").exists():
            tree.mkdir(parents=True, exist_ok=True)
            missing = [f"':(exclude){p}'" for p in absent_blobs(source)]  # the DRPNN weights, in this mirror
            cmd = f"git --git-dir={shlex.quote(str(source))} archive HEAD -- . {' '.join(missing)}"
            if subprocess.run(["bash", "-c", f"{cmd} | tar -x -C {shlex.quote(str(tree))}"]).returncode:
                return {"why": f"could not extract Z-PNN: {cmd}"}
        head = ["git", f"--git-dir={source}", "rev-parse", "HEAD"]
        commit = subprocess.run(head, capture_output=True, text=True).stdout.strip()
    py, why = make_venv(work / "zpnn-venv", ZPNN_PINS, args.skip_install)
    runner = work / "runners" / "zpnn_io.py"
    runner.parent.mkdir(parents=True, exist_ok=True)
    runner.write_text(ZPNN_IO)
    tool = {"python": py, "why": why, "tree": tree, "io": runner, "commit": commit}
    tool["version"] = versions(py, ("torch", "numpy", "scipy", "scikit-image")) if py else {}
    return tool


# ----------------------------------------------------------------------------- scores and tables


def score(case: dict, row: dict) -> None:
    """Add the fusion scores and the alignment check of ``row["_estimate"]`` against the truth to ``row``."""
    from geo_med_sr.metrics.fusion import fusion_report

    truth, estimate = case["truth"], row.pop("_estimate")
    if estimate.shape != truth.shape:
        row["error"] = f"output {estimate.shape} != truth {truth.shape}"
        return
    report = fusion_report(truth, estimate, case["ratio"])
    row["bands"] = [
        {"band": n, **{k: round(v, 5) for k, v in b.items()}} for n, b in zip(case["bands"], report["bands"])
    ]
    row.update({k: round(report[k], 5) for k in ("psnr_mean", "ssim_mean", "sam", "ergas", "q2n")})
    row["best_shift"] = best_shift(truth, estimate)


def verdict(case: dict) -> dict:
    """Our default (self) and our best method against the best peer, in mean PSNR."""
    scored = [r for r in case["rows"] if "psnr_mean" in r]
    peers = [r for r in scored if r["kind"] == "peer"]
    ours = [r for r in scored if r["kind"] == "ours"]
    if not peers or not ours:
        return {}
    peer, best = max(peers, key=lambda r: r["psnr_mean"]), max(ours, key=lambda r: r["psnr_mean"])
    out = {"best_peer": peer["method"], "best_peer_psnr": peer["psnr_mean"], "best_ours": best["method"]}
    out["best_ours_minus_best_peer_db"] = round(best["psnr_mean"] - peer["psnr_mean"], 3)
    default = next((r for r in ours if r["method"] == "self"), None)
    if default:
        out["default_minus_best_peer_db"] = round(default["psnr_mean"] - peer["psnr_mean"], 3)
    return out


HEAD = ("method", "PSNR", "SSIM", "SAM", "ERGAS", "Q2n", "worst dB", "shift", "s", "MB")
LINE = "{:13s} {:>7} {:>6} {:>6} {:>6} {:>6} {:>8} {:>11} {:>7} {:>6}"


def case_table(case: dict) -> str:
    """One pair's table: scores, worst band PSNR minus bicubic's, best shift (rows, cols), seconds, MB."""
    seen = " (bundled models trained on it)" if case["model_saw_pair"] else ""
    lines = [f"\n== {case['pair']} x{case['ratio']} ({case['sensor']}{seen})", LINE.format(*HEAD)]
    base = next((r for r in case["rows"] if r["method"] == "bicubic" and "bands" in r), None)
    for r in case["rows"]:
        if "bands" not in r:
            lines.append(f"{r['method']:13s} not run: {(r.get('error') or '?').strip().splitlines()[-1][:150]}")
            continue
        worst = min(b["psnr"] - c["psnr"] for b, c in zip(r["bands"], base["bands"])) if base else None
        r["worst_band_vs_bicubic_db"] = None if worst is None else round(worst, 3)
        shift = f"{r['best_shift']['rows']:+g},{r['best_shift']['cols']:+g}"
        cells = (f"{r['psnr_mean']:.2f}", f"{r['ssim_mean']:.3f}", f"{r['sam']:.3f}", f"{r['ergas']:.3f}")
        cells += (f"{r['q2n']:.3f}", "" if worst is None else f"{worst:+.2f}", shift)
        lines.append(LINE.format(r["method"], *cells, f"{r['seconds']:.1f}", f"{r['peak_rss_mb']:.0f}"))
    v = case.get("verdict") or {}
    if v:
        default = v.get("default_minus_best_peer_db")
        default = "not run" if default is None else f"{default:+.2f} dB"
        lines.append(
            f"best peer {v['best_peer']} {v['best_peer_psnr']:.2f} dB; ours minus it: default (self) {default}, "
            f"best ({v['best_ours']}) {v['best_ours_minus_best_peer_db']:+.2f} dB"
        )
    return "\n".join(lines)


def summary(cases: list[dict]) -> str:
    """Pair x method table of mean PSNR."""
    rows = [c for c in cases if not c.get("skip")]
    methods = list(dict.fromkeys(r["method"] for c in rows for r in c["rows"]))
    lines = ["\nmean PSNR (dB)\n" + f"{'pair':22s} " + " ".join(f"{m[:9]:>9s}" for m in methods)]
    for c in rows:
        got = {r["method"]: r.get("psnr_mean") for r in c["rows"]}
        lines.append(f"{c['pair']:22s} " + " ".join(f"{got[m]:9.2f}" if got.get(m) else f"{'-':>9s}" for m in methods))
    return "\n".join(lines)


def write_report(args: argparse.Namespace, tools: dict, cases: list[dict]) -> None:
    """The JSON report of the cases so far (rewritten after each pair, so a stopped run keeps its results)."""
    report = {
        **report_header(tools, ("path", "version", "why", "commit", "tree")),
        "protocol": (
            "Wald reduced resolution: MS cropped to valid whole multiples of the ratio, pan to ratio x that; both "
            "block-averaged by the ratio (geo_med_sr.degrade.block_average_array), float32 GeoTIFFs (pan transform "
            "x ratio; MS = that x ratio); truth = the cropped original MS (SpaceNet: its native 2 m grid); values "
            "DN for every method; scores geo_med_sr.metrics.fusion.fusion_report (PSNR/SSIM data range = truth "
            "band max - min; SAM degrees; ERGAS with the ratio; Q2n 32-px blocks) on all pixels; wall time and peak "
            "RSS of the largest single process of each command, run fresh"
        ),
        "cases": [{k: v for k, v in c.items() if k not in ("truth",)} for c in cases],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", help="pair id substrings (fusebox_01, spacenet_1, marburg...)")
    parser.add_argument("--all", action="store_true", help="every pair (all 29 FuseBox crops)")
    parser.add_argument("--methods", nargs="+", choices=(*OURS, *PEERS), default=[*OURS, *PEERS])
    parser.add_argument("--self-steps", type=int, default=300, help="training steps of our --method self")
    parser.add_argument("--zpnn-iters", type=int, help="epochs of Z-PNN and Z-PanNet (default: their 100)")
    parser.add_argument(
        "--zpnn-ta-iters",
        type=int,
        default=ZPNN_TA_ITERS,
        help=f"epochs of A-PNN-TA-FR and PanNet-TA-FR (theirs: 2000; default {ZPNN_TA_ITERS}: too slow on CPU)",
    )
    parser.add_argument("--zpnn", type=Path, default=ZPNN_MIRROR, help="Z-PNN checkout or its git dir")
    parser.add_argument("--timeout", type=float, default=600, help="seconds after which one run is stopped")
    parser.add_argument("--skip-install", action="store_true", help="reuse Z-PNN's venv; no apt-get for OTB")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".work")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_peers_pansharpen.json")
    args = parser.parse_args()

    pairs = find_pairs(args.pairs, args.all)
    if not pairs:
        print(f"bench_peers_pansharpen: no pair under {DATA} matches {args.pairs}")
        return
    tools = setup_tools(args, args.methods)
    cases = []
    for pair in pairs:
        case = make_case(pair, args.work.resolve())
        cases.append(case)
        if case["skip"]:
            print(f"\n== {pair['id']}: skipped: {case['skip']}", flush=True)
            continue
        case["rows"] = []
        print(f"\n-- {pair['id']} x{case['ratio']}: {case['shapes']}, {case['folder']}", flush=True)
        for method in args.methods:
            if method in OURS:
                row = run_ours(case, method, args)
            elif method == "gdal":
                row = run_gdal(case, tools, args.timeout)
            elif method in OTB:
                row = run_otb(case, method, tools, args.timeout)
            else:
                row = run_zpnn(case, method, tools, args)
            if "_estimate" in row:
                score(case, row)
            case["rows"].append(row)
            print(f"   {method}: {row.get('psnr_mean', (row.get('error') or '').strip()[-200:])}", flush=True)
        case["verdict"] = verdict(case)
        print(case_table(case), flush=True)
        write_report(args, tools, cases)
    print(summary(cases))
    write_report(args, tools, cases)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
