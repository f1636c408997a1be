"""Sentinel-2 band sharpening side by side with peers (Wald protocol): ours vs s2super and the S2 SR toolbox.

Over 500 lines because one runnable script makes the reduced products, installs two peers in venvs of
their own, writes their runners and scores every method the same way.

    .venv/bin/python benchmarks/bench_peers_sharpen.py [--scenes ben_ hvn2] [--ratios 2 6] \
        [--methods bicubic glp model self s2super fuse gsa bt-h supreme] [--self-steps 300] \
        [--model-dir DIR] [--toolbox PATH] [--timeout 300] [--skip-install] [--work benchmarks/.work] \
        [--json benchmarks/results/bench_peers_sharpen.json]

What it measures, per scene of ``../shared/data/s2/`` (``--scenes``: folder name substrings) and ratio:

* x2: the 20 m bands B05 B06 B07 B8A B11 B12 restored from 40 m, the 10 m bands at 20 m as guides;
* x6: the 60 m bands B01 B09 restored from 360 m (10 m bands at 60 m, 20 m bands at 120 m); a scene whose
  reduced 60 m bands would be under 16 pixels a side is skipped with its reason.

The reduced product is made once: every band cropped to whole reduced 60 m pixels (so all grids nest),
block-averaged by the ratio (:func:`geo_med_sr.degrade.block_average_array`) and written as float32 GeoTIFFs
``B01.tif ...`` (transform = source transform with pixels ``ratio`` times larger, source tags kept), after
checking that the band grids share their upper-left corner. Every method reads exactly these values: ours
the folder, the peers the same arrays saved as ``peer_inputs.npz``. The truth is the original bands at
their native resolution, cropped alike. Values are DN = reflectance x 1e4 as stored, for every method.

Methods, each run as a fresh process (wall time and peak RSS by ``_peak.peak_run``; one that runs past
``--timeout`` seconds is stopped and its row records why):

* ours: ``python -m geo_med_sr sharpen REDUCED OUT --method M --quiet --overwrite --bands ...`` for bicubic,
  glp, model (bundled ``s2-guided-x{r}``, or ``--model-dir``/``s2_guided_x{r}_without_<ground key, ':' -> '_'>
  .safetensors`` when present; ``model_saw_scene`` in the JSON says whether its training saw this ground) and
  self with a fixed ``--steps`` (``--self-steps``): ``self`` from a new network (``--model scratch``), ``self-ft``
  fine-tuning the model that ``model`` runs (early stopping on a held-out strip of the reduced copy). At x6
  they get the 10 m and 60 m bands, except self, which
  also gets the 20 m bands (it learns the 60 m group through them), so its time includes the 20 m group;
* s2super (PyPI, TensorFlow; x2 only: it sharpens the 20 m bands): its quickstart call
  ``super_sample(data, method="fast", fit_data=False)`` on the 10 m bands plus the 20 m bands resampled
  bilinearly to the 10 m grid by buteo, as its own SAFE reader does; sides under 96 pixels (its 64-pixel
  tiles at half-tile offsets come out empty below that) are reflect-padded and cropped back (``padded``);
* the Sentinel-2 SR toolbox (matciotola/Sentinel2-SR-Toolbox): FUSE with its shipped weights of the scene's
  level (``OriginalS2`` = L1C, ``Sentinel2_2A`` = L2A; it ships no L1C x6 weights, so L1C scenes use the L2A
  ones at x6, recorded), and the classical SYNTH-GSA, SYNTH-BT-H and SupReMe, each called as its
  ``main_20.py`` / ``main_60.py`` calls it.

Scores (:func:`geo_med_sr.metrics.fusion.fusion_report`): per band PSNR and SSIM with the truth band's
max - min as data range, and over the group mean PSNR, SAM (degrees), ERGAS (ratio 2 or 6) and Q2n, on all
pixels (the scenes have no nodata). ``best_shift`` checks alignment: the (row, col) shift of the output in
half pixels that fits the truth best, and the dB it would gain.

Licence rule: the peers are only run to be measured, each in its own venv under ``--work`` (made here;
``--skip-install`` reuses them), never imported into or copied into this repository. The toolbox is
licensed for non-commercial use only: its code and weights stay under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peak import peak_run  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "s2"
TOOLBOX_MIRROR = Path("/work/.mirror/matciotola+Sentinel2-SR-Toolbox/repo")
B10, B20, B60 = ("B02", "B03", "B04", "B08"), ("B05", "B06", "B07", "B8A", "B11", "B12"), ("B01", "B09")
NATIVE_M = {**dict.fromkeys(B10, 10), **dict.fromkeys(B20, 20), **dict.fromkeys(B60, 60)}
TARGETS = {2: B20, 6: B60}
OURS = ("bicubic", "glp", "model", "self", "self-ft")
TOOLBOX = {"fuse": "FUSE", "gsa": "SYNTH-GSA", "bt-h": "SYNTH-BT-H", "supreme": "SupReMe"}
PEERS = ("s2super", *TOOLBOX)
MIN_SIDE_60 = 16  # reduced 60 m pixels per side below which x6 is skipped
BUNDLED_TRAINING = ("S2B_MSIL1C_20171022_T49JGM", "S2A_29RKH_20200219_0_L2A")  # models/weights/s2_guided_x*.md
LEVEL_FALLBACK = {"hvn2_": "L1C"}  # ../shared/data/README.md: the hvn2 crops are L1C (no LEVEL tag)
TORCH_PIN = "torch==2.13.0"  # the CPU wheel on this disk
# pip install steps: tf-keras and s2super ask for "tensorflow" (a second, full TF) and buteo 0.7.70 (the API
# s2super 1.2.30 calls) for nothing more than numba and psutil, so they go in without their dependencies;
# numpy < 2 for Debian's GDAL bindings (built against numpy 1.x), which buteo needs
S2SUPER_PINS = [
    ["tensorflow-cpu==2.21.0", "numpy<2", "numba", "psutil"],
    ["--no-deps", "tf-keras==2.21.0", "s2super==1.2.30", "buteo==0.7.70"],
]
TOOLBOX_PINS = [[TORCH_PIN, "torchvision", "scipy", "pywavelets", "tqdm", "pyyaml", "recordclass", "numpy"]]

S2SUPER_RUNNER = '''"""Run s2super on peer_inputs.npz (written by bench_peers_sharpen.py): python RUNNER NPZ OUT.npy"""
import os, sys
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # its SavedModel needs Keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import json
import numpy as np
import buteo as beo
from s2super import super_sample

GUIDES, TARGETS, SIDE = %r, %r, 96  # its 64-px tiles at half-tile offsets need 96 px a side
d = np.load(sys.argv[1])
h, w = d[GUIDES[0]].shape
up = [beo.resample_array(d[b][:, :, None].astype("float32"), (h, w), resample_alg="bilinear")[:, :, 0] for b in TARGETS]
data = np.stack([d[b] for b in GUIDES] + up, axis=-1).astype("float32")
pad = (max(0, SIDE - h), max(0, SIDE - w))
data = np.pad(data, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="reflect")
indices = {b: i for i, b in enumerate(GUIDES + TARGETS)}
out = super_sample(data, method="fast", fit_data=False, indices=indices, verbose=False)
np.save(sys.argv[2], np.moveaxis(out[:h, :w, len(GUIDES):], -1, 0).astype("float32"))
print(json.dumps({"padded": list(pad)}))
'''

TOOLBOX_RUNNER = '''"""A toolbox method as main_20/60 call it: python RUNNER TOOLBOX NPZ METHOD RATIO DATASET OUT"""
import json, sys
import numpy as np
import torch

toolbox, npz, method, ratio, dataset, out = sys.argv[1:7]
ratio = int(ratio)
sys.path.insert(0, toolbox)
extra = {}
try:
    import torchvision
except RuntimeError:  # PyPI's torchvision links CUDA torch: on the CPU wheel its C ops (unused here) cannot load
    for name in [k for k in sys.modules if k.startswith("torchvision")]:
        del sys.modules[name]
    for op in ("nms", "qnms"):  # the two ops it registers unconditionally; defined so that it imports
        torch.library.define("torchvision::" + op, "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision
    extra["torchvision"] = "C ops unavailable (CUDA build); Python transforms only, which is all the toolbox uses"
from recordclass import recordclass
from Utils import interpolator_tools as it
from Utils.pan_generation import selection, synthesize

d = np.load(npz)
stack = lambda names: torch.from_numpy(np.stack([d[n] for n in names]).astype(np.float64))[None]
b10, b20, b60 = stack(%r), stack(%r), stack(%r)
lr = b20 if ratio == 2 else b60
info = dict(ratio=ratio, bands_10=b10, bands_20=b20, bands_60=b60, ms_lr=lr, ms=None,
            dataset=dataset, sensor="S2-20" if ratio == 2 else "S2-60", name="bench", root="", img_number=1,
            pan=0, selected_bands=0, pan_generator=0, sensor_pan=0)
record = lambda: recordclass("exp_info", info.keys())(*info.values())
if method in ("SYNTH-GSA", "SYNTH-BT-H", "SEL-GSA", "SEL-BT-H"):
    from CS.Brovey import BT_H
    from CS.GS import GSA
    fn = {"GSA": GSA, "BT-H": BT_H}[method.split("-", 1)[1]]
    info["ms"] = it.ideal_interpolator(lr, ratio)  # main_*.py make it for every method; only these use it
    if method.startswith("SEL"):
        pan, sel = selection(b10, lr, ratio, "S2-10")
        sensors = ["S2-SEL-" + str(b.item()) for b in sel]
    else:
        pan, sel = synthesize(b10, lr, ratio, "S2-10")
        sensors = ["S2-10-PAN"] * lr.shape[1]
    extra["pan_bands"] = [int(b) for b in sel]
    parts = []
    for i in range(pan.shape[1]):  # main_*.py's pan_method: one pan per band
        e = record()
        e.pan, e.sensor_pan = pan[:, i : i + 1].double(), sensors[i]
        parts.append(fn(e)[:, i : i + 1])
    fused = torch.cat(parts, 1)
elif method == "FUSE":
    import os
    from FUSE.FUSE import FUSE
    weights = os.path.join(toolbox, "FUSE", "weights", "%%s_%%d.tar" %% (dataset, 20 if ratio == 2 else 60))
    assert os.path.exists(weights), weights + " missing: FUSE would run untrained"
    extra.update(weights=weights, map_location="cpu")
    load = torch.load  # its weights were saved on CUDA; FUSE.py loads them without a map_location
    torch.load = lambda *a, **k: load(*a, **{"map_location": "cpu", **k})
    fused = FUSE(record())
elif method == "SupReMe":
    from ModelBasedOptimization.SupReMe import SupReMe
    fused = SupReMe(record())
else:
    raise SystemExit("unknown toolbox method " + method)
np.save(out, fused[0].detach().cpu().numpy().astype("float32"))
print(json.dumps(extra))
'''


# ----------------------------------------------------------------------------- venvs


def make_venv(venv: Path, pins: list[list[str]], skip_install: bool) -> tuple[Path | None, str]:
    """The Python of a peer's own venv at ``venv`` (created, then one ``pip install`` per entry of ``pins``,
    unless ``skip_install``).

    Returns:
        ``(python, "")``, or ``(None, why)`` when the venv is missing or an install step failed.
    """
    py = venv / "bin" / "python"
    if skip_install:
        return (py, "") if py.exists() else (None, f"{venv} missing; run once without --skip-install")
    steps = [[sys.executable, "-m", "venv", str(venv)]] if not py.exists() else []
    steps += [[str(py), "-m", "pip", "install", "-q", *step] for step in pins]
    for cmd in steps:
        print("+", shlex.join(cmd), flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            return None, f"install failed: {shlex.join(cmd)}: {(done.stderr or done.stdout)[-1500:]}"
    return py, ""


def link_gdal(venv: Path) -> str:
    """Make Debian's GDAL bindings (``python3-gdal``, for buteo) importable in ``venv``, and only them."""
    probe = "import os, osgeo; print(os.path.dirname(osgeo.__file__))"
    done = subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True, text=True)
    if done.returncode:
        return "no osgeo for /usr/bin/python3 (apt-get install python3-gdal)"
    link = venv / "gdal-only" / "osgeo"
    link.parent.mkdir(exist_ok=True)
    if not link.exists():
        link.symlink_to(done.stdout.strip())
    for site in venv.glob("lib/python3*/site-packages"):
        (site / "debian_gdal.pth").write_text(str(link.parent) + "\n")
    return ""


def versions(python: Path, packages: tuple[str, ...]) -> dict:
    """Installed versions of ``packages`` in the venv of ``python`` (None where absent)."""
    probe = (
        "import json, importlib.metadata as m\ndef v(p):\n try: return m.version(p)\n except Exception: return None\n"
        f"print(json.dumps({{p: v(p) for p in {list(packages)!r}}}))"
    )
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


def toolbox_tree(source: Path | None, work: Path) -> tuple[Path | None, str]:
    """A work tree of the toolbox: ``source`` itself when checked out, else ``git archive`` of that git dir.

    Returns ``(folder, "")`` or ``(None, why)``.
    """
    if source is None or not source.exists():
        return None, f"toolbox not found ({source}); pass --toolbox PATH (a checkout or its git dir)"
    if (source / "FUSE" / "FUSE.py").exists():
        return source, ""
    tree = work / "toolbox"
    if not (tree / "FUSE" / "FUSE.py").exists():
        tree.mkdir(parents=True, exist_ok=True)
        git = f"git --git-dir={shlex.quote(str(source))}"
        missing = [f"':(exclude){p}'" for p in absent_blobs(source)]  # large files a mirror may lack
        cmd = f"{git} archive HEAD -- . {' '.join(missing)} | tar -x -C {shlex.quote(str(tree))}"
        if subprocess.run(["bash", "-c", cmd]).returncode:
            return None, f"could not extract the toolbox: {cmd}"
    return tree, ""


def absent_blobs(git_dir: Path) -> list[str]:
    """Paths of HEAD whose blobs the git dir ``git_dir`` lacks (a mirror without its largest files)."""
    listing = subprocess.run(
        ["git", f"--git-dir={git_dir}", "ls-tree", "-r", "HEAD"], capture_output=True, text=True
    ).stdout
    entries = [line.split(None, 3) for line in listing.splitlines()]
    check = "\n".join(e[2] for e in entries) + "\n"
    done = subprocess.run(
        ["git", f"--git-dir={git_dir}", "cat-file", "--batch-check"], input=check, capture_output=True, text=True
    )
    return [e[3] for e, status in zip(entries, done.stdout.splitlines()) if status.endswith("missing")]


# ----------------------------------------------------------------------------- scenes and reduced products


def scene_level(folder: Path, tags: dict) -> str:
    """``"L1C"`` or ``"L2A"``: the LEVEL tag, else the folder name, else :data:`LEVEL_FALLBACK` (else L1C)."""
    text = f"{tags.get('LEVEL', '')} {folder.name}"
    for level in ("L2A", "L1C"):
        if level in text:
            return level
    return next((v for k, v in LEVEL_FALLBACK.items() if folder.name.startswith(k)), "L1C")


def read_scene(folder: Path) -> dict:
    """Every band of ``folder``: ``{name: {"values": (rows, cols) float64 DN, "transform", "crs", "tags"}}``.

    Raises:
        SystemExit: a band is missing, or the grids do not share the upper-left corner and nest.
    """
    import rasterio

    bands = {}
    for name in (*B10, *B20, *B60):
        with rasterio.open(folder / f"{name}.tif") as src:
            bands[name] = {"values": src.read(1).astype(np.float64), "transform": src.transform, "crs": src.crs}
            bands[name]["tags"] = src.tags()
    t10 = bands["B02"]["transform"]
    for name, band in bands.items():
        t = band["transform"]
        if (t.c, t.f) != (t10.c, t10.f) or not np.isclose(t.a, t10.a * NATIVE_M[name] / 10):
            raise SystemExit(f"bench_peers_sharpen: {folder.name}/{name}: grid {t} does not nest with B02's {t10}")
    return bands


def write_band(path: Path, values: np.ndarray, transform, crs, tags: dict) -> None:
    """A float32 single-band GeoTIFF (``values`` is ``(rows, cols)``) with the given grid and tags."""
    import rasterio

    profile = {"driver": "GTiff", "count": 1, "dtype": "float32", "crs": crs, "transform": transform}
    with rasterio.open(path, "w", height=values.shape[0], width=values.shape[1], **profile) as dst:
        dst.write(values.astype(np.float32), 1)
        dst.update_tags(**tags)
        dst.set_band_description(1, path.stem)


def make_case(folder: Path, ratio: int, work: Path) -> dict:
    """Crop to whole reduced 60 m pixels, block-average every band by ``ratio``, write the reduced product.

    Returns ``{"scene", "ratio", "folder" (reduced GeoTIFFs), "npz" (the same arrays for the peers),
    "truth" ((T, rows, cols) float64 DN of the target bands), "shapes", "level", "skip" (reason or None)}``.
    """
    from affine import Affine

    from geo_med_sr.degrade import block_average_array
    from geo_med_sr.sharpening.folds import ground_key

    bands = read_scene(folder)
    unit = 6 * ratio  # 10 m pixels per reduced 60 m pixel
    side10 = [n // unit * unit for n in bands["B02"]["values"].shape]
    case = {"scene": folder.name, "ratio": ratio, "ground_key": ground_key(folder), "skip": None}
    case["level"] = scene_level(folder, bands["B02"]["tags"])
    case["grids"] = "all bands share the upper-left corner; crop = whole reduced 60 m pixels (all grids nest)"
    if ratio == 6 and min(side10) // unit < MIN_SIDE_60:
        case["skip"] = f"reduced 60 m bands would be {side10[0] // unit}x{side10[1] // unit} px (< {MIN_SIDE_60})"
        return case
    out = work / "reduced" / f"x{ratio}" / folder.name
    out.mkdir(parents=True, exist_ok=True)
    reduced, truth, shapes = {}, [], {}
    for name, band in bands.items():
        k = NATIVE_M[name] // 10
        cut = band["values"][: side10[0] // k, : side10[1] // k]
        if name in TARGETS[ratio]:
            truth.append(cut)
        reduced[name] = block_average_array(cut[None], (ratio, ratio))[0]
        tags = {**band["tags"], "WALD_REDUCED": f"block average x{ratio} of {folder.name}/{name}.tif, cropped"}
        write_band(out / f"{name}.tif", reduced[name], band["transform"] * Affine.scale(ratio), band["crs"], tags)
        shapes[name] = {"truth": list(cut.shape), "reduced": list(reduced[name].shape)}
    np.savez(out / "peer_inputs.npz", **reduced)
    case.update(folder=out, npz=out / "peer_inputs.npz", truth=np.stack(truth), shapes=shapes)
    return case


# ----------------------------------------------------------------------------- runs


def measured(cmd: list[str], log: Path, limit: float, env: dict | None = None) -> dict:
    """``peak_run`` of ``cmd`` (output in ``log``, stopped after ``limit`` s):
    ``{"command", "seconds", "peak_rss_mb"}`` or ``{"command", "error"}``."""
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    run = f'{prefix} exec timeout {limit:g} "$@" > {shlex.quote(str(log))} 2>&1'
    try:
        return {"command": shlex.join(cmd), **peak_run(["bash", "-c", run, "bash", *cmd])}
    except subprocess.CalledProcessError as exc:
        tail = log.read_text(errors="replace")[-1500:].strip() if log.exists() else ""
        if exc.returncode == 124:
            tail = f"timed out after {limit:g} s (--timeout)\n" + tail[-300:]
        return {"command": shlex.join(cmd), "error": tail or "failed without output"}


def ours_command(case: dict, method: str, out: Path, args: argparse.Namespace) -> tuple[list[str], dict]:
    """``python -m geo_med_sr sharpen ...`` for ``method`` on the reduced folder, and what the row records."""
    ratio = case["ratio"]
    bands = [*B10, *TARGETS[ratio]] if not (ratio == 6 and method == "self") else [*B10, *B20, *B60]
    run = "self" if method == "self-ft" else method
    cmd = [sys.executable, "-m", "geo_med_sr", "sharpen", str(case["folder"]), str(out), "--method", run]
    cmd += ["--quiet", "--overwrite", "--bands", ",".join(bands)]
    info: dict = {"bands_given": bands}
    if run == "self":
        cmd += ["--steps", str(args.self_steps)]
        info["steps"] = args.self_steps
        if method == "self":
            cmd += ["--model", "scratch"]
        if ratio == 6 and method == "self":
            info["note"] = "given the 20 m bands too (it learns x6 through them): its time includes the 20 m group"
    if method in ("model", "self-ft"):
        key = case["ground_key"].replace(":", "_")
        loo = args.model_dir / f"s2_guided_x{ratio}_without_{key}.safetensors" if args.model_dir else None
        if loo is not None and loo.exists():
            cmd += ["--model", str(loo)]
            info.update(model_weights=str(loo), model_saw_scene=False)
        else:
            from geo_med_sr.sharpening.folds import ground_key

            if method == "self-ft":
                cmd += ["--model", f"s2-guided-x{ratio}"]
            seen = {ground_key(DATA / n) for n in BUNDLED_TRAINING if (DATA / n).exists()}
            info.update(model_weights=f"bundled s2-guided-x{ratio}", model_saw_scene=case["ground_key"] in seen)
            if info["model_saw_scene"]:
                info["note"] = "bundled model trained on columns 0-60 % of this scene (ground key seen)"
    return cmd, info


def read_ours(path: Path, names: tuple[str, ...]) -> np.ndarray:
    """The bands ``names`` of our output GeoTIFF, by band description: ``(T, rows, cols)`` float64."""
    import rasterio

    with rasterio.open(path) as src:
        index = {d: i + 1 for i, d in enumerate(src.descriptions)}
        return np.stack([src.read(index[n]).astype(np.float64) for n in names])


def run_ours(case: dict, method: str, args: argparse.Namespace) -> dict:
    """One of our methods in a fresh process; the row with its output array under ``"_estimate"``."""
    out = case["folder"].parent / f"{case['scene']}_{method}.tif"
    cmd, info = ours_command(case, method, out, args)
    row = {"method": method, "kind": "ours", **info, **measured(cmd, out.with_suffix(".log"), args.timeout)}
    if "error" not in row:
        row["_estimate"] = read_ours(out, TARGETS[case["ratio"]])
    return row


def run_peer(case: dict, method: str, peers: dict, limit: float) -> dict:
    """One peer method through its runner in its venv; the row (``"error"`` when it cannot run here)."""
    ratio, row = case["ratio"], {"method": method, "kind": "peer"}
    if method == "s2super" and ratio != 2:
        return {**row, "error": "not applicable: s2super sharpens the 20 m bands only (x2)"}
    peer = peers["s2super" if method == "s2super" else "toolbox"]
    if peer.get("python") is None:
        return {**row, "error": peer["why"]}
    out = case["folder"].parent / f"{case['scene']}_{method}.npy"
    if method == "s2super":
        cmd = [str(peer["python"]), str(peer["runner"]), str(case["npz"]), str(out)]
    else:
        dataset = {"L1C": "OriginalS2", "L2A": "Sentinel2_2A"}[case["level"]]
        suffix = 20 if ratio == 2 else 60
        if method == "fuse" and not (peer["tree"] / "FUSE" / "weights" / f"{dataset}_{suffix}.tar").exists():
            row["note"] = f"the toolbox ships no FUSE {dataset}_{suffix} weights: the Sentinel2_2A ones are used"
            dataset = "Sentinel2_2A"
        row["toolbox_dataset"] = dataset
        cmd = [str(peer["python"]), str(peer["runner"]), str(peer["tree"]), str(case["npz"]), TOOLBOX[method]]
        cmd += [str(ratio), dataset, str(out)]
    log = out.with_suffix(".log")
    row.update(measured(cmd, log, limit, peer.get("env")))
    if "error" not in row:
        row["_estimate"] = np.load(out).astype(np.float64)
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.startswith("{")]
        row.update(json.loads(lines[-1]) if lines else {})
    return row


# ----------------------------------------------------------------------------- scores


def best_shift(truth: np.ndarray, estimate: np.ndarray, border: int = 3) -> dict:
    """Alignment check: the (row, col) shift of ``estimate`` in {-1, -0.5, 0, 0.5, 1} pixels that fits best.

    Shifts are exact in Fourier space; the error is each band's MSE over its truth range squared, averaged
    over the bands, on the pixels ``border`` from the edge (the shift wraps around). Returns
    ``{"rows", "cols", "gain_db"}``: the best shift and how much lower its error is than at (0, 0), in dB.
    """
    spectrum = np.fft.fft2(estimate)
    fy, fx = np.fft.fftfreq(truth.shape[1])[:, None], np.fft.fftfreq(truth.shape[2])[None, :]
    inner = (slice(None), slice(border, -border), slice(border, -border))
    peak2 = np.ptp(truth, axis=(1, 2)) ** 2
    errors = {}
    for dy in (-1, -0.5, 0, 0.5, 1):
        for dx in (-1, -0.5, 0, 0.5, 1):
            moved = np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (fy * dy + fx * dx))).real
            errors[dy, dx] = float(np.mean(np.mean((moved - truth)[inner] ** 2, axis=(1, 2)) / peak2))
    (dy, dx), best = min(errors.items(), key=lambda kv: kv[1])
    return {"rows": dy, "cols": dx, "gain_db": round(10 * np.log10(errors[0, 0] / max(best, 1e-30)), 3)}


def score(case: dict, row: dict) -> None:
    """Add the fusion scores of ``row["_estimate"]`` against the truth to ``row`` (or an error on bad shape)."""
    from geo_med_sr.metrics.fusion import fusion_report

    truth, estimate = case["truth"], row.pop("_estimate")
    if estimate.shape != truth.shape:
        row["error"] = f"output {estimate.shape} != truth {truth.shape}"
        return
    valid = np.all(truth > 0, axis=0)  # S2 nodata is 0; none of these scenes has any
    case["scored_pixels"] = int(valid.sum())
    report = fusion_report(truth, estimate, case["ratio"], valid)
    names = TARGETS[case["ratio"]]
    row["bands"] = [{"band": n, **{k: round(v, 5) for k, v in b.items()}} for n, b in zip(names, report["bands"])]
    row.update({k: round(report[k], 5) for k in ("psnr_mean", "ssim_mean", "sam", "ergas", "q2n")})
    row["best_shift"] = best_shift(truth, estimate)


# ----------------------------------------------------------------------------- tables and main

HEAD = ("method", "PSNR", "SAM", "ERGAS", "Q2n", "worst dB", "s", "MB")
LINE = "{:9s} {:>7} {:>6} {:>6} {:>6} {:>8} {:>7} {:>6}"


def case_table(case: dict) -> str:
    """The table of one scene and ratio: group scores, worst band PSNR minus bicubic's, seconds, MB."""
    lines = [f"\n== {case['scene']} x{case['ratio']} ({case['level']}, {case['ground_key']})", LINE.format(*HEAD)]
    base = next((r for r in case["rows"] if r["method"] == "bicubic" and "bands" in r), None)
    for r in case["rows"]:
        if "bands" not in r:
            why = (r.get("error") or "?").strip().splitlines()[-1][:150]
            lines.append(f"{r['method']:9s} not run: {why}")
            continue
        worst = min(b["psnr"] - c["psnr"] for b, c in zip(r["bands"], base["bands"])) if base else None
        r["worst_band_vs_bicubic_db"] = None if worst is None else round(worst, 3)
        cells = (f"{r['psnr_mean']:.2f}", f"{r['sam']:.3f}", f"{r['ergas']:.3f}", f"{r['q2n']:.3f}")
        worst_cell = "" if worst is None else f"{worst:+.2f}"
        lines.append(LINE.format(r["method"], *cells, worst_cell, f"{r['seconds']:.1f}", f"{r['peak_rss_mb']:.0f}"))
    return "\n".join(lines)


def summary(cases: list[dict], key: str, fmt: str) -> str:
    """Scene x method table of ``key`` (mean PSNR or SAM) per ratio."""
    lines = []
    for ratio in sorted({c["ratio"] for c in cases}):
        rows = [c for c in cases if c["ratio"] == ratio and not c.get("skip")]
        methods = list(dict.fromkeys(r["method"] for c in rows for r in c["rows"]))
        lines.append(f"\n{key} x{ratio}\n{'scene':30s} " + " ".join(f"{m:>8s}" for m in methods))
        for c in rows:
            got = {r["method"]: r.get(key) for r in c["rows"]}
            cells = [format(got[m], fmt) if got.get(m) is not None else "-" for m in methods]
            lines.append(f"{c['scene']:30s} " + " ".join(f"{v:>8s}" for v in cells))
    return "\n".join(lines)


def setup_peers(args: argparse.Namespace, wanted: list[str]) -> dict:
    """Venvs, runners and the toolbox tree of the wanted peers: ``{"s2super": {...}, "toolbox": {...}}``."""
    work = args.work.resolve()
    (work / "runners").mkdir(parents=True, exist_ok=True)
    peers: dict = {"s2super": {"python": None, "why": "not asked for"}, "toolbox": {"python": None, "why": "-"}}
    if "s2super" in wanted:
        venv = work / "s2super-venv"
        py, why = make_venv(venv, S2SUPER_PINS, args.skip_install)
        why = why or (link_gdal(venv) if py else "")
        runner = work / "runners" / "run_s2super.py"
        runner.write_text(S2SUPER_RUNNER % (list(B10), list(B20)))
        packages = ("s2super", "buteo", "tensorflow-cpu", "tf-keras", "numpy")
        peers["s2super"] = {"python": None if why else py, "why": why, "runner": runner}
        peers["s2super"]["versions"] = versions(py, packages) if py else {}
        peers["s2super"]["env"] = {"TF_USE_LEGACY_KERAS": "1"}
    if any(m in TOOLBOX for m in wanted):
        tree, why = toolbox_tree(args.toolbox, work)
        py = None
        if tree is not None:
            py, why = make_venv(work / "toolbox-venv", TOOLBOX_PINS, args.skip_install)
        runner = work / "runners" / "run_toolbox.py"
        runner.write_text(TOOLBOX_RUNNER % (list(B10), list(B20), list(B60)))
        peers["toolbox"] = {"python": py, "why": why, "runner": runner, "tree": tree}
        peers["toolbox"]["versions"] = versions(py, ("torch", "torchvision", "numpy", "scipy")) if py else {}
        if tree is not None and (args.toolbox / "HEAD").exists():
            head = ["git", f"--git-dir={args.toolbox}", "rev-parse", "HEAD"]
            peers["toolbox"]["commit"] = subprocess.run(head, capture_output=True, text=True).stdout.strip()
    for name, peer in peers.items():
        print(f"peer {name}: {'ready ' + str(peer.get('versions', '')) if peer['python'] else peer['why']}", flush=True)
    return peers


def machine() -> str:
    """CPU model and core count."""
    names = [x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in x]
    return f"{names[0] if names else platform.processor()}, {os.cpu_count()} cores, {platform.machine()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", help="folder name substrings of ../shared/data/s2 (default: all)")
    parser.add_argument("--ratios", type=int, nargs="+", choices=(2, 6), default=[2, 6])
    parser.add_argument("--methods", nargs="+", choices=(*OURS, *PEERS), default=[*OURS, *PEERS])
    parser.add_argument("--self-steps", type=int, default=300, help="training steps of our --method self")
    parser.add_argument("--model-dir", type=Path, help="leave-one-out s2_guided_x{r}_without_<key>.safetensors")
    parser.add_argument("--toolbox", type=Path, default=TOOLBOX_MIRROR, help="toolbox checkout or its git dir")
    parser.add_argument("--timeout", type=float, default=300, help="seconds after which one run is stopped")
    parser.add_argument("--skip-install", action="store_true", help="reuse the peers' venvs under --work")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".work")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_peers_sharpen.json")
    args = parser.parse_args()

    folders = sorted(p for p in DATA.iterdir() if p.is_dir()) if DATA.exists() else []
    folders = [f for f in folders if not args.scenes or any(s in f.name for s in args.scenes)]
    if not folders:
        print(f"bench_peers_sharpen: no scene under {DATA} matches {args.scenes}")
        return
    peers = setup_peers(args, args.methods)
    cases = []
    for folder in folders:
        for ratio in args.ratios:
            case = make_case(folder, ratio, args.work.resolve())
            if case["skip"]:
                print(f"\n== {folder.name} x{ratio}: skipped: {case['skip']}", flush=True)
                cases.append(case)
                continue
            case["rows"] = []
            print(f"\n-- {folder.name} x{ratio}: truth {case['truth'].shape}, reduced {case['folder']}", flush=True)
            for method in args.methods:
                row = run_ours(case, method, args) if method in OURS else run_peer(case, method, peers, args.timeout)
                if "_estimate" in row:
                    score(case, row)
                case["rows"].append(row)
            print(case_table(case), flush=True)
            cases.append(case)
            write_report(args, peers, cases)

    print(summary(cases, "psnr_mean", ".2f"))
    print(summary(cases, "sam", ".3f"))
    write_report(args, peers, cases)
    print(f"wrote {args.json}")


def report_header(peers: dict, keep: tuple[str, ...] = ("versions", "why", "commit", "tree")) -> dict:
    """What every peer benchmark's JSON starts with: machine, command, date, our and the peers' versions
    (the ``keep`` fields of each peer, paths as text)."""
    import torch

    import geo_med_sr

    return {
        "machine": machine(),
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": {
            "geo_med_sr": geo_med_sr.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "peers": {
                k: {x: str(v[x]) if isinstance(v[x], Path) else v[x] for x in keep if x in v} for k, v in peers.items()
            },
        },
    }


def write_report(args: argparse.Namespace, peers: dict, cases: list[dict]) -> None:
    """The JSON report of the cases so far (rewritten after each case, so a stopped run keeps its results)."""
    report = {
        **report_header(peers),
        "protocol": (
            "Wald reduced resolution: every band cropped to whole reduced 60 m pixels and block-averaged by the "
            "ratio (geo_med_sr.degrade.block_average_array), float32 GeoTIFFs with the source transform scaled by "
            "the ratio; truth = the original target bands, cropped alike; values DN (reflectance x 1e4) for every "
            "method; scores geo_med_sr.metrics.fusion.fusion_report (PSNR/SSIM data range = truth band max - min; "
            "SAM degrees; ERGAS with the ratio; Q2n 32-px blocks) on all pixels; wall time and peak RSS of the "
            "largest single process of each command, run fresh"
        ),
        "cases": [{k: v for k, v in c.items() if k not in ("truth", "npz")} for c in cases],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
