"""The engine benchmark on an earlier commit and on this tree, side by side on one machine.

Runs ``benchmarks/bench_engine.py --ways engine`` (our engine from file to file, its peak RSS and
its exactness against whole-image inference on probe windows) for each case, alternating the
two code bases run by run (base, head, head, base, ...) so that the load of a shared machine
falls on both alike, and reports the median time, the largest peak RSS and the exactness of
each, with the ratios head/base. Each code base runs its own copy of ``bench_engine.py`` on the
same synthetic inputs (both generate them from the same seed).

How: the base commit is checked out in a git worktree; both trees are installed (no
dependencies, not editable) into folders of their own and put first on ``PYTHONPATH`` of every
run, with a ``sitecustomize`` that drops the finder of this checkout's editable install, so each
run imports exactly one code base (the table prints which file it imported). Usage::

    .venv/bin/python benchmarks/bench_compare.py --base 3697fbc --json benchmarks/results/bench_compare.json
    .venv/bin/python benchmarks/bench_compare.py --base HEAD~3 --cases mri3d --repeats 2 --size-3d 96 112 96  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIM = '''"""Drop the editable install's finder so that PYTHONPATH decides which geo_med_sr is imported."""
import sys

sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in type(f).__module__]
'''


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


def run(tree: Path, site: Path, shim: Path, case: str, args: argparse.Namespace, work: Path) -> dict:
    """One ``bench_engine.py --ways engine`` run of ``tree``; its engine row plus the module it imported."""
    out = work / f"{tree.name}-{case}.json"
    env = {**os.environ, "PYTHONPATH": f"{shim}{os.pathsep}{site}"}
    cmd = [sys.executable, str(tree / "benchmarks" / "bench_engine.py"), "--cases", case, "--ways", "engine"]
    cmd += ["--json", str(out), "--size-3d", *map(str, args.size_3d), "--size-2d", str(args.size_2d)]
    if case == "mri3d":
        cmd += ["--chunk-mb", str(args.chunk_mb_3d)]  # what configs/medical/*.yaml set
    subprocess.run(cmd, check=True, env=env, cwd=work, stdout=subprocess.DEVNULL)
    row = next(r for r in json.loads(out.read_text())["rows"] if r["way"] == "engine")
    probe = [sys.executable, "-c", "import geo_med_sr; print(geo_med_sr.__file__)"]
    row["imported"] = subprocess.run(
        probe, env=env, capture_output=True, text=True, check=True, cwd=work
    ).stdout.strip()
    return row


def summary(case: str, runs: dict[str, list[dict]]) -> dict:
    """Median seconds, largest peak RSS and worst exactness per code base, and the ratios."""
    out: dict = {"case": case}
    for name, rows in runs.items():
        out[name] = {
            "seconds": [r["seconds"] for r in rows],
            "median_seconds": statistics.median(r["seconds"] for r in rows),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
            "max_abs_diff": max(r["max_abs_diff"] for r in rows),
            "max_abs_diff_centre": max(r["max_abs_diff_centre"] for r in rows),
            "imported": rows[0]["imported"],
        }
    out["time_ratio"] = round(out["head"]["median_seconds"] / out["base"]["median_seconds"], 4)
    out["rss_ratio"] = round(out["head"]["peak_rss_mb"] / out["base"]["peak_rss_mb"], 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="commit to compare with (e.g. the one before a refactoring)")
    parser.add_argument("--cases", nargs="+", default=["mri3d", "sat2d"], choices=["mri3d", "sat2d"])
    parser.add_argument(
        "--repeats", type=int, default=None, help="runs per code base (default 3 for mri3d, 2 for sat2d)"
    )
    parser.add_argument("--size-3d", nargs=3, type=int, default=[192, 224, 192])
    parser.add_argument("--size-2d", type=int, default=4096)
    parser.add_argument("--chunk-mb-3d", type=float, default=16.0, help="engine chunk size for mri3d (default 16)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_compare_") as tmp:
        work = Path(tmp)
        base = work / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(base), args.base], check=True, cwd=REPO)
        try:
            trees = {"base": base, "head": REPO}
            sites = {name: work / f"site-{name}" for name in trees}
            for name, tree in trees.items():
                install(tree, sites[name])
            shim = work / "shim"
            shim.mkdir()
            (shim / "sitecustomize.py").write_text(SHIM)
            for case in args.cases:
                repeats = args.repeats or (3 if case == "mri3d" else 2)
                runs: dict[str, list[dict]] = {"base": [], "head": []}
                for i in range(repeats):
                    order = ("base", "head") if i % 2 == 0 else ("head", "base")
                    for name in order:
                        row = run(trees[name], sites[name], shim, case, args, work)
                        runs[name].append(row)
                        print(
                            f"{case} {name} run {i + 1}: {row['seconds']:.1f} s, {row['peak_rss_mb']:.0f} MB",
                            flush=True,
                        )
                results.append(summary(case, runs))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], check=False, cwd=REPO)
    print_table(results)
    if args.json:
        meta = {
            "base": args.base,
            "head": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
            ).stdout.strip(),
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "cases": results}, indent=2) + "\n")
    return 0


def print_table(results: list[dict]) -> None:
    header = (
        f"{'case':<6} {'tree':<5} {'median s':>9} {'runs s':<22} {'peak RSS MB':>12} {'max|diff|':>10} {'centre':>10}"
    )
    print(header)
    for r in results:
        for name in ("base", "head"):
            t = r[name]
            runs = ", ".join(f"{s:.1f}" for s in t["seconds"])
            print(
                f"{r['case']:<6} {name:<5} {t['median_seconds']:>9.1f} {runs:<22} {t['peak_rss_mb']:>12.0f} "
                f"{t['max_abs_diff']:>10.2e} {t['max_abs_diff_centre']:>10.2e}"
            )
        print(f"{r['case']:<6} head/base time {r['time_ratio']:.3f}, peak RSS {r['rss_ratio']:.3f}")
    for r in results[:1]:
        print(f"imported: base {r['base']['imported']}, head {r['head']['imported']}")


if __name__ == "__main__":
    sys.exit(main())
