"""The engine and the sharpen command on an earlier commit and on this tree, side by side on one machine.

Two kinds of cases, each run alternating the two code bases run by run (base, head, head, base,
...) so that the load of a shared machine falls on both alike; the table reports the median
time, the largest peak RSS and the exactness or identity of each, with the ratios head/base.

``upscale`` cases (``mri3d``, ``sat2d``): each code base runs its own copy of
``benchmarks/bench_engine.py --ways engine`` (our engine from file to file, its peak RSS and its
exactness against whole-image inference on probe windows) on the same synthetic inputs (both
generate them from the same seed); exactness is that script's max abs difference to the
reference, all probes and the centre one.

``sharpen`` cases (``glp-s2``, ``model-s2``, ``glp-synth``, ``model-synth``): the command line of
the tree under test, ``python -m geo_med_sr sharpen IN OUT.tif --method glp|model --quiet
--overwrite``, in a fresh process (under a small ``python -c`` parent whose ``RUSAGE_CHILDREN``
gives the command's own peak RSS; wall time of the command alone), on ``-s2``: the shared
Sentinel-2 scene ``../shared/data/s2/S2B_MSIL1C_20171022_T49JGM`` (the folder, as the README's
``sharpen S2_FOLDER``; skipped with a message when absent), on ``-synth``: one synthetic product of
``--synthetic-size``² 10 m pixels made once by ``bench_sharpen_memory.make_product`` and read by
both trees. After the runs the last base and head outputs are compared: identical means byte-equal
pixel arrays (every band and overview level, read with rasterio) and the same profile, transform,
CRS, band descriptions, nodata, scales/offsets, tags and overview factors; otherwise the max abs
difference per band and the metadata keys that differ are reported. Every run's pixels are also
hashed, so a command that is not deterministic from run to run shows (``runs agree``).

How: the base commit is checked out in a git worktree; both trees (their git-visible files,
copied, so no stale ``build/`` leaks in) are installed (no dependencies, not editable) into folders
of their own and put first on ``PYTHONPATH`` of every run, with a ``sitecustomize`` that drops the
finder of this checkout's editable install, so each run imports exactly one code base (the table
prints which file it imported). Nothing but the command line and each tree's own
``bench_engine.py`` is used, so any base works whatever its
module paths (e.g. ``1f489ec``, before the capability packages). ``--upscale-outputs`` adds one
``python -m geo_med_sr upscale`` run per tree and upscale case (the case's input and bundled model,
x2, float32), untimed in the table, and compares the two outputs as for sharpen (NIfTI: header,
affine, voxels, JSON sidecar). A case whose command fails is reported and the others go on; the JSON
is rewritten after every case. Usage (the full comparison takes about 1 h 15 min on a quiet 2-core
CPU machine, sat2d at 4096^2 nearly half of it)::

    .venv/bin/python benchmarks/bench_compare.py --base 1f489ec --upscale-outputs \\
        --json benchmarks/results/bench_compare_issue23.json
    .venv/bin/python benchmarks/bench_compare.py --base HEAD~3 --cases mri3d --repeats 2 --size-3d 96 112 96  # quick
    .venv/bin/python benchmarks/bench_compare.py --base main --cases glp-synth --repeats 1 --synthetic-size 512  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
S2_SCENE = DATA / "s2" / "S2B_MSIL1C_20171022_T49JGM"
sys.path.insert(0, str(Path(__file__).resolve().parent))

UPSCALE_CASES = ("mri3d", "sat2d")
SHARPEN_CASES = {  # case: (method, input)
    "glp-s2": ("glp", "s2"),
    "model-s2": ("model", "s2"),
    "glp-synth": ("glp", "synth"),
    "model-synth": ("model", "synth"),
}
CASES = (*UPSCALE_CASES, *SHARPEN_CASES)
REPEATS = {"mri3d": 3, "sat2d": 2, "glp-s2": 5, "model-s2": 5, "glp-synth": 3, "model-synth": 3}
SHIM = '''"""Drop the editable install's finder so that PYTHONPATH decides which geo_med_sr is imported."""
import sys

sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in type(f).__module__]
'''
# the parent of one measured command: its RUSAGE_CHILDREN peak is the command's own, the time is the command's
PROBE = (
    "import json, resource, subprocess, sys, time; t = time.monotonic(); "
    "subprocess.run(sys.argv[1:], check=True); "
    "print(json.dumps([time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))"
)


def install(tree: Path, target: Path) -> None:
    """``pip install --target`` of ``tree`` without dependencies (the adapters folder mapping included)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(tree),
        ],
        check=True,
        cwd=target.parent,
    )


def snapshot(tree: Path, dest: Path) -> Path:
    """Copy the working tree's tracked and untracked-but-not-ignored files of ``tree`` to ``dest``, so that what is
    installed is the tree as it stands: no stale ``build/lib`` of an earlier install (which setuptools would put
    in the wheel, e.g. modules that moved away) and no build folders left in the checkout."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=tree,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, names):
        src = tree / os.fsdecode(name)
        if src.is_file():  # a tracked file deleted in the working tree is left out
            (dest / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / os.fsdecode(name))
    return dest


def environment(site: Path, shim: Path) -> dict:
    return {**os.environ, "PYTHONPATH": f"{shim}{os.pathsep}{site}"}


def imported(env: dict, work: Path) -> str:
    """The ``geo_med_sr`` file a run with ``env`` imports (which code base it is)."""
    probe = [sys.executable, "-c", "import geo_med_sr; print(geo_med_sr.__file__)"]
    return subprocess.run(probe, env=env, capture_output=True, text=True, check=True, cwd=work).stdout.strip()


def run_upscale(tree: Path, env: dict, case: str, args: argparse.Namespace, work: Path) -> dict:
    """One ``bench_engine.py --ways engine`` run of ``tree``; its engine row."""
    out = work / f"{tree.name}-{case}.json"
    cmd = [sys.executable, str(tree / "benchmarks" / "bench_engine.py"), "--cases", case, "--ways", "engine"]
    cmd += ["--json", str(out), "--size-3d", *map(str, args.size_3d), "--size-2d", str(args.size_2d)]
    if case == "mri3d":
        cmd += ["--chunk-mb", str(args.chunk_mb_3d)]  # what configs/medical/*.yaml set
    subprocess.run(cmd, check=True, env=env, cwd=work, stdout=subprocess.DEVNULL)
    return next(r for r in json.loads(out.read_text())["rows"] if r["way"] == "engine")


def measured(env: dict, cmd: list[str], work: Path) -> dict:
    """Run ``cmd`` in a fresh process under the ``PROBE`` parent: its wall time and its own peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *cmd], env=env, cwd=work, check=True, stdout=subprocess.PIPE, text=True
    )
    seconds, peak_kb = json.loads(done.stdout.strip().splitlines()[-1])
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(peak_kb / 1024, 1)}


def run_sharpen(env: dict, method: str, inputs: list[Path], out: Path, work: Path) -> dict:
    """One ``python -m geo_med_sr sharpen`` run in a fresh process: wall time, peak RSS, digest of its pixels."""
    from _raster_identity import pixel_digest

    cmd = [sys.executable, "-m", "geo_med_sr", "sharpen", *map(str, inputs), str(out), "--method", method]
    row = measured(env, [*cmd, "--quiet", "--overwrite"], work)
    return {**row, "digest": pixel_digest(out)}


def upscale_outputs(case: str, envs: dict, args: argparse.Namespace, work: Path) -> dict:
    """``python -m geo_med_sr upscale`` of the case's input by each tree (the case's bundled model, x2, float32,
    a plain tiled GeoTIFF in 2D), outputs compared: the engine cases' base-vs-head identity, untimed in the table."""
    from _raster_identity import compare_outputs
    from bench_engine import CASES as ENGINE_CASES
    from bench_engine import make_input

    folder = work / "upscale-inputs"
    folder.mkdir(exist_ok=True)
    src = make_input(case, folder, argparse.Namespace(size_3d=args.size_3d, size_2d=args.size_2d))
    spec = ENGINE_CASES[case]
    outputs = {name: work / f"{case}-{name}{spec['suffix']}" for name in envs}
    runs = {}
    for name, env in envs.items():
        cmd = [sys.executable, "-m", "geo_med_sr", "upscale", str(src), str(outputs[name])]
        cmd += ["--scale", str(spec["scale"]), "--method", "model", "--model", spec["model"], "--float32"]
        cmd += ["--no-cog"] if spec["suffix"] == ".tif" else []
        runs[name] = measured(env, [*cmd, "--quiet", "--overwrite"], work)
        print(f"{case} {name} upscale command (untimed in the table): {runs[name]['seconds']:.1f} s", flush=True)
    same = compare_outputs(outputs["base"], outputs["head"])
    for path in [*outputs.values(), src]:
        for p in (path, path.parent / (path.name.split(".")[0] + ".json")):
            p.unlink(missing_ok=True)
    return {"command": cmd[3:], "runs": runs, "identity": same}


def summary(case: str, runs: dict[str, list[dict]]) -> dict:
    """Median seconds, largest peak RSS (and worst exactness or run agreement) per code base, and the ratios."""
    out: dict = {"case": case}
    for name, rows in runs.items():
        out[name] = {
            "seconds": [r["seconds"] for r in rows],
            "median_seconds": statistics.median(r["seconds"] for r in rows),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
            "imported": rows[0]["imported"],
        }
        if case in UPSCALE_CASES:
            out[name]["max_abs_diff"] = max(r["max_abs_diff"] for r in rows)
            out[name]["max_abs_diff_centre"] = max(r["max_abs_diff_centre"] for r in rows)
        else:
            out[name]["digests"] = [r["digest"] for r in rows]
            out[name]["runs_agree"] = len({r["digest"] for r in rows}) == 1
    out["time_ratio"] = round(out["head"]["median_seconds"] / out["base"]["median_seconds"], 4)
    out["rss_ratio"] = round(out["head"]["peak_rss_mb"] / out["base"]["peak_rss_mb"], 4)
    return out


def sharpen_inputs(case: str, work: Path, args: argparse.Namespace) -> list[Path] | None:
    """The inputs of a sharpen case (the synthetic product made on first use), or None with a message."""
    kind = SHARPEN_CASES[case][1]
    if kind == "s2":
        if not S2_SCENE.is_dir():
            print(f"{case}: skipped, no shared Sentinel-2 scene at {S2_SCENE}", flush=True)
            return None
        return [S2_SCENE]
    product = work / f"S2_synthetic_{args.synthetic_size}"
    if not product.is_dir():
        from bench_sharpen_memory import make_product

        print(f"making the synthetic product ({args.synthetic_size}^2 10 m pixels) in {product}", flush=True)
        make_product(product, args.synthetic_size)
    return [product]


def identity(base_out: Path, head_out: Path) -> dict:
    from _raster_identity import compare_outputs

    return compare_outputs(base_out, head_out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="commit to compare with (e.g. the one before a refactoring)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES, help="default: all")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="runs per code base (default 3 for mri3d, 2 for sat2d, 5 for the -s2 cases, 3 for the -synth cases)",
    )
    parser.add_argument("--size-3d", nargs=3, type=int, default=[192, 224, 192])
    parser.add_argument("--size-2d", type=int, default=4096)
    parser.add_argument("--chunk-mb-3d", type=float, default=16.0, help="engine chunk size for mri3d (default 16)")
    parser.add_argument(
        "--synthetic-size", type=int, default=2560, help="10 m grid of the synthetic S2 product (default 2560)"
    )
    parser.add_argument(
        "--upscale-outputs",
        action="store_true",
        help="also run `python -m geo_med_sr upscale` once per tree on each upscale case's input and compare "
        "the two outputs (untimed in the table; one more run per tree at the case's size)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    _HEAD_AT_START.update(
        commit=_git("rev-parse", "--short", "HEAD"),
        uncommitted=bool(_git("status", "--porcelain", "--untracked-files=no")),
    )

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_compare_") as tmp:
        work = Path(tmp)
        base = work / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(base), args.base], check=True, cwd=REPO)
        try:
            trees = {"base": base, "head": REPO}
            sites = {name: work / f"site-{name}" for name in trees}
            for name, tree in trees.items():
                install(snapshot(tree, work / f"src-{name}"), sites[name])
            shim = work / "shim"
            shim.mkdir()
            (shim / "sitecustomize.py").write_text(SHIM)
            envs = {name: environment(sites[name], shim) for name in trees}
            modules = {name: imported(envs[name], work) for name in trees}
            for case in args.cases:
                try:
                    results.append(run_case(case, trees, envs, modules, args, work))
                except subprocess.CalledProcessError as error:  # one broken case does not lose the others
                    cmd = [str(c) for c in error.cmd]
                    cmd = cmd[3:] if cmd[1:3] == ["-c", PROBE] else cmd  # the command, not its measuring parent
                    failed = f"exit status {error.returncode} of {' '.join(cmd)}"
                    print(f"{case}: FAILED: {failed}", flush=True)
                    results.append({"case": case, "failed": failed})
                if args.json:
                    write_report(args.json, results, args, argv)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], check=False, cwd=REPO)
    print_table(results)
    if args.json:
        write_report(args.json, results, args, argv)
        print(f"wrote {args.json}")
    return 0


def run_case(case: str, trees: dict, envs: dict, modules: dict, args: argparse.Namespace, work: Path) -> dict:
    """All runs of one case, alternated between the trees, and its summary (with the outputs' identity)."""
    inputs = sharpen_inputs(case, work, args) if case in SHARPEN_CASES else None
    if case in SHARPEN_CASES and inputs is None:
        return {"case": case, "skipped": f"no shared Sentinel-2 scene at {S2_SCENE}"}
    repeats = args.repeats or REPEATS[case]
    runs: dict[str, list[dict]] = {"base": [], "head": []}
    outputs = {name: work / f"{case}-{name}.tif" for name in trees}
    for i in range(repeats):
        order = ("base", "head") if i % 2 == 0 else ("head", "base")
        for name in order:
            if inputs is None:
                row = run_upscale(trees[name], envs[name], case, args, work)
            else:
                row = run_sharpen(envs[name], SHARPEN_CASES[case][0], inputs, outputs[name], work)
            row["imported"] = modules[name]
            runs[name].append(row)
            print(
                f"{case} {name} run {i + 1}: {row['seconds']:.1f} s, {row['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    result = summary(case, runs)
    if inputs is not None:
        result["inputs"] = [str(p) for p in inputs]
        result["method"] = SHARPEN_CASES[case][0]
        result["identity"] = identity(outputs["base"], outputs["head"])
        for path in outputs.values():
            path.unlink(missing_ok=True)
    elif args.upscale_outputs:
        result["upscale_command"] = upscale_outputs(case, envs, args, work)
        result["identity"] = result["upscale_command"]["identity"]
    return result


def _git(*words: str) -> str:
    return subprocess.run(["git", *words], capture_output=True, text=True, cwd=REPO).stdout.strip()


#: the head as it was when this run started (its working tree is what gets installed, at the start)
_HEAD_AT_START = {"commit": "", "uncommitted": False}


def write_report(path: Path, results: list[dict], args: argparse.Namespace, argv: list[str] | None) -> None:
    """The JSON report: the cases so far and what was compared on which machine."""
    meta = {
        "base": args.base,
        "base_commit": _git("rev-parse", "--short", args.base),
        "head": _HEAD_AT_START["commit"] or _git("rev-parse", "--short", "HEAD"),
        "head_uncommitted_changes": _HEAD_AT_START["uncommitted"],
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "cases": results}, indent=2) + "\n")


def identity_cell(r: dict) -> str:
    """Base vs head in a few words: the outputs' identity (sharpen; upscale with ``--upscale-outputs``) and,
    for the upscale cases, whether the engine's exactness agrees to the last digit."""
    words = []
    if "max_abs_diff" in r["base"]:
        b, h = r["base"], r["head"]
        same = (b["max_abs_diff"], b["max_abs_diff_centre"]) == (h["max_abs_diff"], h["max_abs_diff_centre"])
        words.append("exactness equal" if same else "EXACTNESS DIFFERS")
    same = r.get("identity")
    if same is None:
        words.append("outputs not compared (--upscale-outputs)")
    elif same["identical"]:
        words.append("outputs identical" + ("" if same["file_bytes_identical"] else " (file bytes differ)"))
    elif same["pixels_identical"]:
        words.append("pixels identical, DIFFERS: " + ",".join(same["metadata_differs"] or ["overviews"]))
    else:
        worst = max(same["band_max_abs_diff"].items(), key=lambda kv: -1 if kv[1] is None else kv[1])
        words.append(f"outputs DIFFER: max|diff| {worst[1]} in {worst[0]}")
        words += ["metadata differs: " + ",".join(same["metadata_differs"])] if same["metadata_differs"] else []
    return ", ".join(words)


def print_table(results: list[dict]) -> None:
    header = f"{'case':<11} {'tree':<5} {'median s':>9} {'runs s':<30} {'peak RSS MB':>12} {'exactness':>21}"
    print(header)
    for r in results:
        if "skipped" in r or "failed" in r:
            print(f"{r['case']:<11} {'skipped: ' + r['skipped'] if 'skipped' in r else 'FAILED: ' + r['failed']}")
            continue
        for name in ("base", "head"):
            t = r[name]
            runs = ", ".join(f"{s:.1f}" for s in t["seconds"])
            if "max_abs_diff" in t:
                exact = f"{t['max_abs_diff']:.2e} / {t['max_abs_diff_centre']:.2e}"  # all probes / centre probe
            else:
                exact = "runs agree" if t["runs_agree"] else "RUNS DISAGREE"
            print(
                f"{r['case']:<11} {name:<5} {t['median_seconds']:>9.1f} {runs:<30} "
                f"{t['peak_rss_mb']:>12.0f} {exact:>21}"
            )
        print(
            f"{r['case']:<11} head/base time {r['time_ratio']:.3f}, peak RSS {r['rss_ratio']:.3f}, "
            f"base vs head: {identity_cell(r)}"
        )
    done = [r for r in results if "base" in r]
    for r in done[:1]:
        print(f"imported: base {r['base']['imported']}, head {r['head']['imported']}")
    print("exactness: upscale, max|diff| to whole-image inference (all probes / centre); sharpen, run-to-run digests")


if __name__ == "__main__":
    sys.exit(main())
