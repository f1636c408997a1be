"""The COG step of ``geo-med-sr sharpen --method bicubic`` against ``--no-cog`` and the GDAL floor: table + JSON.

    .venv/bin/python benchmarks/bench_cog.py --size 2048 --repeats 2 \
        --json benchmarks/results/bench_cog.json

Writes a synthetic 12-band Sentinel-2 product (``bench_sharpen_memory.make_product``: four 10 m bands of
SIZE^2 pixels, six 20 m and two 60 m bands, uint16, nodata 0; the output is the 10 m grid of the bands'
common extent, ``6 * (SIZE // 6)``^2 pixels) and times, each in a fresh process (``_peak.peak_run``: wall
time and peak RSS), runs alternated and their order rotated every repeat:

* ``cog``: ``geo-med-sr sharpen PRODUCT OUT --method bicubic --overwrite`` (a Cloud-Optimized GeoTIFF, the
  default);
* ``no-cog``: the same with ``--no-cog`` (a tiled GeoTIFF: no overviews, no copy);
* ``gdal``: the GDAL floor, ``gdalbuildvrt -separate -r cubic -tr 10 10 -te <output extent>`` of the bands
  (the output's band order) then ``gdal_translate -of COG -co COMPRESS=DEFLATE -co PREDICTOR=2
  -co NUM_THREADS=ALL_CPUS``, in one ``sh -c`` (skipped without the GDAL command-line tools or with
  ``--no-gdal``).

With ``--base-tree TREE`` (another checkout, e.g. ``git worktree add --detach /tmp/base HEAD``, with a
link ``TREE/geo_med_sr/adapters -> ../adapters``: the editable install maps ``geo_med_sr.adapters`` to this
checkout otherwise) ``base cog`` and ``base no-cog`` run the same commands with ``TREE`` first on
``PYTHONPATH``, in the same alternation, so that a busy machine slows both trees alike.

The table gives the median seconds, the ratio to the floor, the ``cog`` stage ``sharpen`` prints (flush,
overviews and COG copy) and, per tree, the COG step (``cog`` minus ``no-cog`` medians). The outputs of the
last repeat are then checked: the COG's full resolution equals the ``--no-cog`` file, and the COG passes
``rio_cogeo``'s strict validation and GDAL's ``validate_cloud_optimized_geotiff`` (where a Python with
``osgeo_utils`` is found); with ``--base-tree``, the two trees' COGs are compared too (full resolution,
every overview level and its mask, layout metadata). The JSON (``--json``) records which ``geo_med_sr``
each tree imports (its files and the sha256 of the sink and COG modules): check its ``code``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peak import peak_run, save_report  # noqa: E402
from bench_sharpen_memory import make_product  # noqa: E402

GMS = REPO / ".venv" / "bin" / "geo-med-sr"
#: the product's bands in the output's band order (``sharpen`` writes them sorted by name).
BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
#: a Python with GDAL's own bindings, for ``validate_cloud_optimized_geotiff`` (the venv's rasterio has none).
GDAL_PYTHONS = ["/usr/bin/python3", "python3"]
CODE_PROBE = (
    "import hashlib, json, geo_med_sr, geo_med_sr.adapters.geotiff.cog as c, geo_med_sr.adapters.geotiff.sink as s; "
    "print(json.dumps({'geo_med_sr': geo_med_sr.__file__, 'sink': s.__file__, 'cog': c.__file__, "
    "'sink_sha256': hashlib.sha256(open(s.__file__, 'rb').read()).hexdigest()[:16], "
    "'cog_sha256': hashlib.sha256(open(c.__file__, 'rb').read()).hexdigest()[:16]}))"
)


def tree_env(tree: Path | None) -> dict[str, str] | None:
    """The environment that imports ``geo_med_sr`` from ``tree`` (None: this one)."""
    if tree is None:
        return None
    pythonpath = os.pathsep.join(p for p in (str(tree), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": pythonpath}


def code_in_use(env: dict[str, str] | None = None) -> dict:
    """Which ``geo_med_sr`` (and which sink and COG modules) the command imports with ``env``."""
    done = subprocess.run(
        [sys.executable, "-c", CODE_PROBE], check=True, capture_output=True, text=True, env=env, cwd="/"
    )
    return {**json.loads(done.stdout), "pythonpath": (env or os.environ).get("PYTHONPATH", "")}


def with_env(cmd: list[str], env: dict[str, str] | None) -> list[str]:
    """``cmd`` run under ``env``'s ``PYTHONPATH`` (``peak_run`` takes no environment)."""
    if env is None:
        return cmd
    return ["env", f"PYTHONPATH={env['PYTHONPATH']}", *cmd]


def compare_cogs(head: Path, base: Path) -> dict:
    """Whether two COGs hold the same full resolution, overview levels (values and masks) and layout metadata."""
    import numpy as np
    import rasterio

    from geo_med_sr.adapters.geotiff.tags import layout_metadata

    def levels(path: Path) -> tuple[list, dict]:
        with rasterio.open(path) as ds:
            meta = layout_metadata(ds)
            count = len(ds.overviews(1))
            out = [(ds.read(), ds.read_masks())]
        for level in range(count):
            with rasterio.open(path, overview_level=level) as ovr:
                out.append((ovr.read(), ovr.read_masks()))
        return out, meta

    (a, meta_a), (b, meta_b) = levels(head), levels(base)
    for meta in (meta_a, meta_b):
        meta["tags"].pop("GEO_MED_SR_REQUEST", None)  # holds the input paths and hashes: the same here
    return {
        "levels": len(a),
        "max_abs_difference_per_level": [
            int(np.abs(x.astype(np.int64) - y.astype(np.int64)).max()) if x.shape == y.shape else "shape"
            for (x, _), (y, _) in zip(a, b)
        ],
        "masks_equal_per_level": [bool(np.array_equal(m, n)) for (_, m), (_, n) in zip(a, b)],
        "layout_metadata_differing": sorted(k for k in meta_a if meta_a[k] != meta_b.get(k)),
    }


def stage_seconds(log: Path) -> dict[str, float]:
    """The ``seconds: prepare 0.41, ...`` line that ``geo-med-sr sharpen`` prints, as a dict."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("seconds: "):
            return {k: float(v) for k, v in re.findall(r"(\w+) (\d+(?:\.\d+)?)", line[len("seconds: ") :])}
    return {}


def logged(cmd: list[str], log: Path) -> list[str]:
    """``cmd`` with its output sent to ``log`` (``sh`` execs it, so the measured process is ``cmd`` itself)."""
    return ["sh", "-c", f'exec "$0" "$@" > {shlex.quote(str(log))} 2>&1', *cmd]


def gdal_floor(product: Path, out: Path, extent: tuple[float, float, float, float]) -> list[str]:
    """The GDAL floor as one ``sh -c``: a cubic ``-separate`` VRT on the 10 m grid, then a deflate COG."""
    vrt = out.with_suffix(".vrt")
    build = ["gdalbuildvrt", "-q", "-overwrite", "-separate", "-r", "cubic", "-tr", "10", "10"]
    build += ["-te", *(f"{v!r}" for v in extent), str(vrt), *(str(product / f"{b}.tif") for b in BANDS)]
    translate = ["gdal_translate", "-q", "-of", "COG", "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=2"]
    translate += ["-co", "NUM_THREADS=ALL_CPUS", str(vrt), str(out)]
    return ["sh", "-c", f"{shlex.join(build)} && {shlex.join(translate)}"]


def common_extent(product: Path) -> tuple[float, float, float, float]:
    """``(left, bottom, right, top)`` of the bands' common extent (the output's grid)."""
    import rasterio

    boxes = []
    for band in BANDS:
        with rasterio.open(product / f"{band}.tif") as src:
            boxes.append(src.bounds)
    return (
        max(b.left for b in boxes),
        max(b.bottom for b in boxes),
        min(b.right for b in boxes),
        min(b.top for b in boxes),
    )


def gdal_python() -> str | None:
    """A Python that imports ``osgeo_utils`` (GDAL's own COG validator), or None."""
    for python in GDAL_PYTHONS:
        found = shutil.which(python)
        if found and subprocess.run([found, "-c", "import osgeo_utils"], capture_output=True).returncode == 0:
            return found
    return None


def check_outputs(cog: Path, plain: Path) -> dict:
    """The COG's full resolution against the ``--no-cog`` file, its overviews, and both COG validators."""
    import numpy as np
    import rasterio
    from rio_cogeo.cogeo import cog_validate

    with rasterio.open(cog) as a, rasterio.open(plain) as b:
        same = bool(np.array_equal(a.read(), b.read()))
        ta, tb = a.tags(), b.tags()
        tags_differing = sorted(k for k in {*ta, *tb} if ta.get(k) != tb.get(k))
        same_bands = a.descriptions == b.descriptions and a.nodata == b.nodata
        same_bands = same_bands and all(a.tags(i) == b.tags(i) for i in a.indexes)
        overviews = a.overviews(1)
        interleave = a.tags(ns="IMAGE_STRUCTURE").get("INTERLEAVE")
    valid, errors, warnings = cog_validate(str(cog), strict=True, quiet=True)
    checks = {
        "full_resolution_equals_no_cog": same,
        "band_descriptions_tags_nodata_equal_no_cog": same_bands,
        "dataset_tags_differing_from_no_cog": tags_differing,  # expected: the request's cog, OVERVIEW_RESAMPLING
        "overviews": overviews,
        "interleave": interleave,
        "rio_cogeo_strict_valid": bool(valid),
        "rio_cogeo_messages": [*errors, *warnings],
    }
    python = gdal_python()
    if python:
        done = subprocess.run(
            [python, "-m", "osgeo_utils.samples.validate_cloud_optimized_geotiff", str(cog)],
            capture_output=True,
            text=True,
        )
        checks["gdal_validator"] = (done.stdout + done.stderr).strip().splitlines()[-1:]
        checks["gdal_validator_valid"] = done.returncode == 0
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="10 m pixels per side of the product")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each kind (alternated)")
    parser.add_argument("--no-gdal", action="store_true", help="skip the GDAL floor")
    parser.add_argument("--base-tree", type=Path, default=None, help="also run cog and no-cog from this checkout")
    parser.add_argument("--label", default="", help="free text stored in the JSON (e.g. 'before', 'after')")
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for the product and outputs (default: a temp dir)"
    )
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "bench_cog.json"))
    args = parser.parse_args()

    trees = {"": None, "base ": tree_env(args.base_tree.resolve()) if args.base_tree else None}
    if args.base_tree is None:
        del trees["base "]
    code = {prefix or "head": code_in_use(env) for prefix, env in trees.items()}
    for name, found in code.items():
        print(f"{name}: geo_med_sr from {found['geo_med_sr']} (sink {found['sink']}, {found['sink_sha256']})")
    has_gdal = bool(shutil.which("gdalbuildvrt") and shutil.which("gdal_translate")) and not args.no_gdal
    if not has_gdal and not args.no_gdal:
        print("bench_cog: gdalbuildvrt/gdal_translate not found: the GDAL floor is skipped", flush=True)
    gdal_version = (
        subprocess.run(["gdalinfo", "--version"], capture_output=True, text=True).stdout.strip() if has_gdal else None
    )

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        tmp = Path(tmp)
        product = tmp / f"S2_{args.size}"
        make_product(product, args.size)
        extent = common_extent(product)
        sharpen = [str(GMS), "sharpen", str(product)]
        kinds: dict[str, tuple[Path, list[str]]] = {}
        commands: dict[str, list[str]] = {}
        for prefix, env in trees.items():
            for kind, extra in (("cog", []), ("no-cog", ["--no-cog"])):
                out = tmp / f"{prefix.strip() or 'head'}_{kind}.tif"
                kinds[prefix + kind] = (out, extra)
                cmd = [*sharpen, str(out), "--method", "bicubic", "--overwrite", *extra]
                commands[prefix + kind] = logged(with_env(cmd, env), out.with_suffix(".log"))
        if has_gdal:
            kinds["gdal"] = (tmp / "gdal.tif", [])
            commands["gdal"] = gdal_floor(product, kinds["gdal"][0], extent)
        order = list(commands)
        runs: dict[str, list[dict]] = {kind: [] for kind in order}
        for repeat in range(args.repeats):
            for kind in order[repeat % len(order) :] + order[: repeat % len(order)]:
                out = kinds[kind][0]
                out.unlink(missing_ok=True)
                result = peak_run(commands[kind])
                if kind != "gdal":  # the sharpen runs
                    result["stages"] = stage_seconds(out.with_suffix(".log"))
                runs[kind].append(result)
                print(f"repeat {repeat + 1} {kind:7s} {result['seconds']:7.2f} s", flush=True)
        checks = check_outputs(kinds["cog"][0], kinds["no-cog"][0])
        if "base cog" in kinds:
            checks["base"] = check_outputs(kinds["base cog"][0], kinds["base no-cog"][0])
            checks["head_vs_base_cog"] = compare_cogs(kinds["cog"][0], kinds["base cog"][0])

    rows = []
    floor = statistics.median(r["seconds"] for r in runs["gdal"]) if has_gdal else None
    for kind in order:
        seconds = statistics.median(r["seconds"] for r in runs[kind])
        cog_stage = [r["stages"].get("cog") for r in runs[kind] if r.get("stages", {}).get("cog") is not None]
        rows.append(
            {
                "run": kind,
                "median_seconds": round(seconds, 2),
                "ratio_to_gdal": round(seconds / floor, 2) if floor else None,
                "cog_stage_median_seconds": round(statistics.median(cog_stage), 2) if cog_stage else None,
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[kind]),
                "runs": runs[kind],
                "command": shlex.join(commands[kind]),
            }
        )
    by_kind = {r["run"]: r for r in rows}
    cog_step = {
        (prefix.strip() or "head"): round(
            by_kind[prefix + "cog"]["median_seconds"] - by_kind[prefix + "no-cog"]["median_seconds"], 2
        )
        for prefix in trees
    }

    print(f"\n{'run':12s} {'median s':>9s} {'x GDAL':>7s} {'cog stage s':>12s} {'peak RSS MB':>12s}")
    for r in rows:
        ratio = f"{r['ratio_to_gdal']:7.2f}" if r["ratio_to_gdal"] else f"{'-':>7s}"
        stage = f"{r['cog_stage_median_seconds']:12.2f}" if r["cog_stage_median_seconds"] is not None else f"{'-':>12s}"
        print(f"{r['run']:12s} {r['median_seconds']:9.2f} {ratio} {stage} {r['peak_rss_mb']:12.0f}")
    for name, seconds in cog_step.items():
        print(f"COG step of {name} (cog - no-cog medians): {seconds:.2f} s")
    print("checks:", json.dumps(checks))
    save_report(
        args.json,
        label=args.label,
        size=args.size,
        repeats=args.repeats,
        cpus=os.cpu_count(),
        gdal_cli=gdal_version,
        code=code,
        rows=rows,
        cog_step_seconds=cog_step,
        checks=checks,
    )


if __name__ == "__main__":
    main()
