"""A full Sentinel-2 product sharpened end to end by every method, beside the GDAL floor: table + JSON.

    .venv/bin/python benchmarks/bench_sharpen_scene.py --sizes 2560 10980 \
        --json benchmarks/results/bench_sharpen_scene.json
    .venv/bin/python benchmarks/bench_sharpen_scene.py --sizes 1098 2196 --methods bicubic glp   # a few minutes

Product: a shared native Sentinel-2 scene (``--scene``, a folder of ``../shared/data/s2``) mirror-tiled to
``SIZE`` pixels at 10 m, every band at its native resolution (20 m bands ``ceil(SIZE/2)``, 60 m bands
``ceil(SIZE/6)``: 10980/5490/1830 as a real tile). Each band is reflected about the same edges (numpy's
``symmetric`` padding, repeated), so there is no seam, the bands keep their real correlation and the grids
stay aligned. It is written band by band in strips of rows (uint16 GeoTIFFs tiled 1024, deflate, predictor 2,
nodata 0 as an L2A COG; the scene's CRS, its geotransform extended, its tags and band names), in the
scene's own layout and name (``B02.tif`` ...), and cached under ``--work`` (``<scene>_<SIZE>/<scene>/``; outputs
and logs in ``<scene>_<SIZE>/out/``) for the next run.

Runs, each a fresh process whose wall time and peak RSS are measured (``_peak.peak_run``), one size after
the other:

* ``gdal``: the GDAL floor, ``gdalbuildvrt -separate -r cubic -tr 10 10 -te <10 m extent>`` of every band
  (the output's band order) then ``gdal_translate -of COG -co COMPRESS=DEFLATE -co PREDICTOR=2
  -co NUM_THREADS=ALL_CPUS``: the two times summed, the larger peak (skipped without ``gdalbuildvrt``);
* ``geo-med-sr sharpen PRODUCT OUT --method M --overwrite`` for each ``--methods`` (COG output, the
  default; with ``--also-no-cog`` also ``--no-cog``). ``self`` gets ``--steps N`` with ``--self-steps N``;
  the default 0 runs the command's own default (fixed steps), training included.

Stages: the command prints ``seconds: prepare ..., train ..., read ..., inputs ..., network ..., write ...,
cog ..., total ...`` (``SharpenResult.stages``: open/plan/statistics/file hashes, each group's method built
(self-training, GLP gains, loading weights), guide reads, coarse bands under each tile, the methods, the
sink's writes, finishing the file with overviews and COG copy, and the whole call); ``startup`` is the
wall time outside the call (interpreter, imports). The JSON is rewritten after every row, so a killed run
keeps what finished. Outputs are deleted after each run (``--keep-outputs`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peak import peak_run, save_report  # noqa: E402

GMS = REPO / ".venv" / "bin" / "geo-med-sr"
S2_DATA = REPO.parent / "shared" / "data" / "s2"
#: Sentinel-2 bands in the output's order (the order ``sharpen`` writes them in), then SCL.
BAND_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12", "SCL"]
STAGES = ["prepare", "train", "read", "inputs", "network", "write", "cog"]
#: version of the product layout: a cached product of another version is rebuilt.
PRODUCT_VERSION = 1
STRIP = 1024


def mirror_index(n_out: int, n_in: int) -> np.ndarray:
    """Source indices of ``n_out`` pixels mirror-tiled from ``n_in`` (``np.pad(mode="symmetric")``, repeated)."""
    i = np.arange(n_out) % (2 * n_in)
    return np.where(i < n_in, i, 2 * n_in - 1 - i)


def scene_folder(scene: str) -> Path:
    """``--scene``: a folder, or the name of one in ``../shared/data/s2``."""
    path = Path(scene)
    return path if path.is_dir() else S2_DATA / scene


def scene_bands(folder: Path) -> list[Path]:
    """The scene's band files in output order."""
    found = {p.stem: p for p in folder.glob("*.tif") if p.stem in BAND_ORDER}
    if not found:
        raise SystemExit(f"bench_sharpen_scene: no Sentinel-2 band files (B02.tif ...) in {folder}")
    return [found[name] for name in BAND_ORDER if name in found]


def make_product(scene: Path, size: int, folder: Path) -> dict:
    """Mirror-tile every band of ``scene`` to ``size`` 10 m pixels into ``folder`` (reused when already made).

    The native bands are cropped to their common extent (a whole number of the coarsest pixels) and each is
    reflected about that extent's edges, so every grid is mirrored about the same lines and stays aligned.
    Only one native band and one strip of rows of the product are held at a time.

    Returns:
        the product's description (also ``product.json`` beside ``folder``, written last: it marks a finished product).
    """
    import rasterio

    marker = folder.parent / "product.json"
    if marker.exists():
        made = json.loads(marker.read_text())
        if made.get("version") == PRODUCT_VERSION and made.get("scene") == str(scene) and made.get("size") == size:
            return made
    folder.mkdir(parents=True, exist_ok=True)
    paths = scene_bands(scene)
    headers = {}
    for path in paths:
        with rasterio.open(path) as src:
            headers[path] = (src.res[0], src.width, src.height)
    finest = min(res for res, _, _ in headers.values())
    coarsest = max(res for res, _, _ in headers.values())
    extent = min(min(w, h) * res for res, w, h in headers.values())
    extent = math.floor(extent / coarsest + 1e-9) * coarsest  # a whole number of every band's pixels
    bands = {}
    start = time.monotonic()
    for path in paths:
        res = headers[path][0]
        ratio = round(res / finest)
        n_in, n_out = round(extent / res), math.ceil(size / ratio)
        with rasterio.open(path) as src:
            native = src.read(1)[:n_in, :n_in]
            profile = {
                "driver": "GTiff",
                "width": n_out,
                "height": n_out,
                "count": 1,
                "dtype": src.dtypes[0],
                "nodata": 0,
                "crs": src.crs,
                "transform": src.transform,
                "tiled": True,
                "blockxsize": 1024,
                "blockysize": 1024,
                "compress": "deflate",
                "predictor": 2,
                "BIGTIFF": "IF_SAFER",
            }
            tags, description = src.tags(), src.descriptions[0] or path.stem
        tags["MIRROR_TILED"] = f"{scene.name} {path.stem} {n_in}x{n_in} mirror-tiled (symmetric) to {n_out}x{n_out}"
        index = mirror_index(n_out, n_in)
        partial = folder / f"{path.stem}.partial.tif"
        with rasterio.open(partial, "w", **profile) as dst:
            dst.update_tags(**tags)
            dst.set_band_description(1, description)
            for row in range(0, n_out, STRIP):
                rows = index[row : row + STRIP]
                dst.write(native[rows][:, index], 1, window=((row, row + len(rows)), (0, n_out)))
        partial.replace(folder / path.name)
        bands[path.stem] = {"resolution_m": res, "native": n_in, "pixels": n_out}
    made = {
        "version": PRODUCT_VERSION,
        "scene": str(scene),
        "size": size,
        "native_extent_m": extent,
        "bands": bands,
        "seconds_to_make": round(time.monotonic() - start, 1),
        "megabytes": round(sum((folder / f"{b}.tif").stat().st_size for b in bands) / 2**20, 1),
    }
    marker.write_text(json.dumps(made, indent=1))
    return made


def measured(cmd: list[str], log: Path) -> dict:
    """``peak_run`` of ``cmd`` with its output in ``log`` (``exec``: the measured process is the command's own)."""
    wrapped = ["bash", "-c", f'exec "$@" > {shlex.quote(str(log))} 2>&1', "bash", *cmd]
    try:
        return peak_run(wrapped)
    except subprocess.CalledProcessError:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        return {"error": f"failed: {shlex.join(cmd)}\n{tail}"}


def stage_seconds(log: Path) -> dict[str, float]:
    """The ``seconds: prepare 0.41, ...`` line that ``geo-med-sr sharpen`` prints, as a dict."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("seconds: "):
            return {k: float(v) for k, v in re.findall(r"(\w+) (\d+(?:\.\d+)?)", line[len("seconds: ") :])}
    return {}


def run_gdal(product: Path, out: Path) -> dict:
    """The GDAL floor: a cubic ``-separate`` VRT on the 10 m grid, then a deflate COG (two processes, summed)."""
    import rasterio

    paths = scene_bands(product)
    with rasterio.open(product / "B02.tif") as ref:
        res, bounds = ref.res[0], ref.bounds
    vrt = out.with_suffix(".vrt")
    build = ["gdalbuildvrt", "-q", "-overwrite", "-separate", "-r", "cubic", "-tr", f"{res:g}", f"{res:g}"]
    build += ["-te", *(f"{v!r}" for v in (bounds.left, bounds.bottom, bounds.right, bounds.top)), str(vrt)]
    build += [str(p) for p in paths]
    translate = ["gdal_translate", "-q", "-of", "COG", "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=2"]
    translate += ["-co", "NUM_THREADS=ALL_CPUS", str(vrt), str(out)]
    first = measured(build, out.with_name(out.name + ".buildvrt.log"))
    if "error" in first:
        return first
    second = measured(translate, out.with_name(out.name + ".translate.log"))
    if "error" in second:
        return second
    return {
        "command": f"{shlex.join(build)} && {shlex.join(translate)}",
        "seconds": round(first["seconds"] + second["seconds"], 2),
        "peak_rss_mb": max(first["peak_rss_mb"], second["peak_rss_mb"]),
        "stages": {"buildvrt": first["seconds"], "translate": second["seconds"]},
    }


def run_ours(product: Path, out: Path, method: str, cog: bool, self_steps: int) -> dict:
    """``geo-med-sr sharpen PRODUCT OUT --method METHOD`` in a fresh process, with its stage seconds."""
    cmd = [str(GMS), "sharpen", str(product), str(out), "--method", method, "--overwrite"]
    cmd += ["--steps", str(self_steps)] if method == "self" and self_steps > 0 else []
    cmd += [] if cog else ["--no-cog"]
    log = out.with_name(out.name + ".log")
    result = measured(cmd, log)
    if "error" in result:
        return result
    stages = stage_seconds(log)
    if "total" in stages:
        stages["startup"] = round(result["seconds"] - stages["total"], 2)
    return {"command": shlex.join(cmd), **result, "stages": stages}


def table(rows: list[dict]) -> str:
    """The printed table: one row per run, then the ratio of the largest to the smallest size's s/Mpx per run."""
    parts = [*STAGES, "startup"]
    head = f"{'run':16s} {'size':>6s} {'Mpx':>6s} {'seconds':>8s} {'s/Mpx':>6s} {'peak MB':>8s} {'vs gdal':>7s}  "
    lines = [head + " ".join(f"{p[:7]:>7s}" for p in parts)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['run']:16s} {r['size']:>6d}  error: {r['error'].strip().splitlines()[-1][:100]}")
            continue
        vs = f"{r['vs_gdal']:7.2f}" if r.get("vs_gdal") is not None else f"{'':7s}"
        stages = r.get("stages", {})
        cells = " ".join(f"{stages[p]:7.1f}" if p in stages else f"{'':7s}" for p in parts)
        lines.append(
            f"{r['run']:16s} {r['size']:>6d} {r['output_mpx']:6.1f} {r['seconds']:8.1f} {r['s_per_mpx']:6.2f} "
            f"{r['peak_rss_mb']:8.0f} {vs}  {cells}"
        )
    flat = flatness(rows)
    if flat:
        lines.append("")
        lines.append("s/Mpx, largest size / smallest: " + ", ".join(f"{k} {v:.2f}" for k, v in flat.items()))
    return "\n".join(lines)


def flatness(rows: list[dict]) -> dict[str, float]:
    """Per run: seconds per output Mpx at the largest size over that at the smallest (1.00 = flat)."""
    out = {}
    for run in dict.fromkeys(r["run"] for r in rows):
        done = sorted((r["size"], r["s_per_mpx"]) for r in rows if r["run"] == run and "error" not in r)
        if len(done) > 1:
            out[run] = round(done[-1][1] / done[0][1], 3)
    return out


def checks(rows: list[dict]) -> list[dict]:
    """The issue's targets (for the 10980^2 product on the 2-core machine), judged at the largest size measured."""
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return []
    size = max(r["size"] for r in ok)
    at = {r["run"]: r for r in ok if r["size"] == size}
    out = []

    def check(name: str, value: float | None, limit: float, unit: str) -> None:
        if value is not None:
            out.append(
                {"check": name, "size": size, "value": value, "limit": limit, "unit": unit, "ok": value <= limit}
            )

    for run in ("self", "self --no-cog"):
        if run in at:
            check(f"{run} wall", at[run]["seconds"], 900.0, "s")
            check(f"{run} peak RSS", at[run]["peak_rss_mb"], 2e9 / 2**20, "MiB (2 GB)")
    for run in ("glp", "glp --no-cog"):
        if run in at:
            check(f"{run} wall", at[run]["seconds"], 240.0, "s")
    if "bicubic" in at and at["bicubic"].get("vs_gdal") is not None:
        check("bicubic / gdal floor", at["bicubic"]["vs_gdal"], 1.5, "x")
    for run, ratio in flatness(rows).items():
        if run != "gdal":
            check(f"{run} s/Mpx largest/smallest size", ratio, 1.15, "x")
    return out


def cpu() -> str:
    """The CPU's model name and the memory (Linux), for the report beside ``_peak``'s machine line."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        memory = Path("/proc/meminfo").read_text().split()[1]
    except OSError:
        return "unknown"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    return f"{name}, {int(memory) / 2**20:.0f} GiB memory"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", default="majortom_la_48QUE_20200223", help="folder of ../shared/data/s2, or a path")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10980], help="10 m pixels per side of the product")
    parser.add_argument("--methods", nargs="+", default=["bicubic", "glp", "model", "self"])
    parser.add_argument("--self-steps", type=int, default=0, help="--steps of self (0: the command's default)")
    parser.add_argument("--also-no-cog", action="store_true", help="also run every method with --no-cog")
    parser.add_argument("--no-gdal", action="store_true", help="skip the GDAL floor")
    parser.add_argument("--work", default=str(REPO / "benchmarks" / ".work" / "sharpen_scene"))
    parser.add_argument("--keep-outputs", action="store_true")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "bench_sharpen_scene.json"))
    args = parser.parse_args()
    scene = scene_folder(args.scene)
    if not scene.is_dir():
        raise SystemExit(f"bench_sharpen_scene: no scene folder {scene}; pass --scene (a folder of {S2_DATA})")
    gdal = shutil.which("gdalbuildvrt") and shutil.which("gdal_translate")
    if not gdal and not args.no_gdal:
        print("bench_sharpen_scene: gdalbuildvrt/gdal_translate not found: the GDAL floor is skipped", flush=True)
    version = subprocess.run(["gdalinfo", "--version"], capture_output=True, text=True).stdout.strip() if gdal else None
    runs = [] if args.no_gdal or not gdal else [("gdal", None, True)]
    runs += [(m, m, True) for m in args.methods]
    runs += [(f"{m} --no-cog", m, False) for m in args.methods] if args.also_no_cog else []
    rows: list[dict] = []
    products = {}
    for size in sorted(args.sizes):
        folder = Path(args.work) / f"{scene.name}_{size}" / scene.name  # the product keeps the scene's name
        print(f"== product {folder} ({size}^2 at 10 m)", flush=True)
        products[size] = make_product(scene, size, folder)
        outputs = folder.parent / "out"  # never inside the product (sharpen refuses that)
        outputs.mkdir(exist_ok=True)
        gdal_seconds = None
        for name, method, cog in runs:
            out = outputs / (name.replace(" --", "_") + ".tif")
            if method is None:
                result = run_gdal(folder, out)
            else:
                result = run_ours(folder, out, method, cog, args.self_steps)
            row = {"run": name, "method": method or "gdal", "cog": cog, "size": size, "output_mpx": size * size / 1e6}
            row.update(result)
            if "error" not in row:
                row["s_per_mpx"] = round(row["seconds"] / row["output_mpx"], 3)
                if method is None:
                    gdal_seconds = row["seconds"]
                row["vs_gdal"] = round(row["seconds"] / gdal_seconds, 3) if gdal_seconds else None
            rows.append(row)
            print(json.dumps(row), flush=True)
            if not args.keep_outputs:
                for path in (out, out.with_suffix(".vrt")):
                    path.unlink(missing_ok=True)
            save_report(
                args.json,
                cpu=cpu(),
                scene=str(scene),
                gdal=version,
                self_steps=args.self_steps or "default",
                products=products,
                rows=rows,
                flatness=flatness(rows),
                checks=checks(rows),
            )
    print()
    print(table(rows))
    for c in checks(rows):
        verdict = "ok  " if c["ok"] else "MISS"
        print(f"{verdict} {c['check']} at {c['size']}^2: {c['value']:.2f} (limit {c['limit']:.2f} {c['unit']})")


if __name__ == "__main__":
    main()
