"""Cost per output pixel of ``geo-med-sr sharpen --method glp`` against ``--method bicubic``: table + JSON.

    .venv/bin/python benchmarks/bench_glp_speed.py --size 2048 --repeats 3 \
        --json benchmarks/results/bench_glp_speed.json
    .venv/bin/python benchmarks/bench_glp_speed.py --base HEAD   # also an earlier commit, in the same alternation

Writes a synthetic Sentinel-2 product (``bench_sharpen_memory.make_product``: four 10 m bands of SIZE^2
pixels, six 20 m and two 60 m bands, uint16, nodata 0) and runs ``geo-med-sr sharpen PRODUCT OUT --method M
--no-cog --quiet`` for bicubic and glp, each in a fresh process, alternating, ``--repeats`` times: median wall
time, seconds per output Mpx, the ratio glp / bicubic (the issue's target: at most 2) and the peak RSS. On a
shared machine only ratios measured side by side mean much.

``--base REV`` also runs both methods from commit REV (a git worktree), in the same alternation: this
checkout and REV are then each installed (not editable) into a folder of their own and run as
``python -m geo_med_sr`` with it first on ``PYTHONPATH`` (``bench_compare.py``'s way), and the glp outputs
of the two are compared pixel by pixel.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peak import peak_run, save_report  # noqa: E402
from _raster_identity import pixel_digest  # noqa: E402
from bench_sharpen_memory import make_product  # noqa: E402

GMS = REPO / ".venv" / "bin" / "geo-med-sr"
METHODS = ("bicubic", "glp")


def output_mpx(path: Path) -> float:
    """Output pixels (10 m grid, cropped to the coarse bands' cover) in millions."""
    import rasterio

    with rasterio.open(path) as src:
        return src.width * src.height / 1e6


def code_bases(base: str | None, work: Path) -> dict[str, tuple[list[str], dict | None]]:
    """Name -> (command that runs ``geo-med-sr``, its environment): this checkout's ``geo-med-sr`` alone, or
    with ``base`` both installed from snapshots (a git worktree for ``base``; removed by :func:`cleanup`)."""
    if base is None:
        return {"this": ([str(GMS)], None)}
    from bench_compare import SHIM, environment, imported, install, snapshot

    tree = work / "base"
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(tree), base], check=True, cwd=REPO)
    shim = work / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SHIM)
    out = {}
    for name, source in (("this", REPO), (base, tree)):
        site = work / f"site-{name}"
        install(snapshot(source, work / f"src-{name}"), site)
        env = environment(site, shim)
        print(f"{name}: {imported(env, work)}", flush=True)
        out[name] = ([sys.executable, "-m", "geo_med_sr"], env)
    return out


def commit(rev: str) -> str:
    """``rev`` as a short commit id (what ``--base`` meant when the run started)."""
    return subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def cleanup(work: Path) -> None:
    if (work / "base").exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(work / "base")], check=False, cwd=REPO)


def run(command: list[str], env: dict | None, product: Path, out: Path, method: str, work: Path) -> dict:
    """One ``sharpen`` in a fresh process: wall time and its own peak RSS."""
    cmd = [*command, "sharpen", str(product), str(out), "--method", method, "--no-cog", "--quiet", "--overwrite"]
    if env is None:
        return peak_run(cmd)
    from bench_compare import measured

    return measured(env, cmd, work)


def summarise(rows: list[dict]) -> list[dict]:
    """Per code base and method: median seconds, s/Mpx, largest peak RSS, and glp's ratio to bicubic."""
    out = []
    for code in dict.fromkeys(r["code"] for r in rows):
        medians = {}
        for method in METHODS:
            mine = [r for r in rows if r["code"] == code and r["method"] == method]
            seconds = statistics.median(r["seconds"] for r in mine)
            medians[method] = seconds
            out.append(
                {
                    "code": code,
                    "method": method,
                    "runs": len(mine),
                    "median_s": round(seconds, 2),
                    "s_per_mpx": round(seconds / mine[0]["output_mpx"], 3),
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
                    "runs_agree": len({r["digest"] for r in mine}) == 1,
                }
            )
        out[-1]["ratio_to_bicubic"] = round(medians["glp"] / medians["bicubic"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="10 m grid side of the product (default 2048)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method and code base (default 3)")
    parser.add_argument("--base", default=None, help="also run this commit (e.g. HEAD), alternated with this tree")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "bench_glp_speed.json"))
    args = parser.parse_args()
    rows = []
    base_commit = commit(args.base) if args.base is not None else None
    with tempfile.TemporaryDirectory(prefix="bench_glp_speed_") as tmp:
        work = Path(tmp)
        product = work / f"S2_{args.size}"
        make_product(product, args.size)
        try:
            codes = code_bases(base_commit, work)
            for repeat in range(args.repeats):
                for code, (command, env) in codes.items():
                    for method in METHODS:
                        out = work / f"{code}_{method}.tif"
                        result = run(command, env, product, out, method, work)
                        rows.append(
                            {
                                "code": code,
                                "method": method,
                                "repeat": repeat,
                                "output_mpx": round(output_mpx(out), 4),
                                **result,
                                "digest": pixel_digest(out),
                            }
                        )
                        print(rows[-1], flush=True)
        finally:
            cleanup(work)
    summary = summarise(rows)
    identical = None
    if args.base is not None:
        glp = {r["code"]: r["digest"] for r in rows if r["method"] == "glp"}
        identical = len(set(glp.values())) == 1
    header = f"{'code':10s} {'method':8s} {'runs':>4s} {'median s':>9s} {'s/Mpx':>7s} {'glp/bicubic':>12s}"
    print(f"\n{header} {'peak RSS MB':>12s}")
    for s in summary:
        ratio = f"{s['ratio_to_bicubic']:.2f}" if "ratio_to_bicubic" in s else ""
        print(
            f"{s['code']:10s} {s['method']:8s} {s['runs']:4d} {s['median_s']:9.2f} {s['s_per_mpx']:7.2f} "
            f"{ratio:>12s} {s['peak_rss_mb']:12.0f}"
        )
    if identical is not None:
        print(f"glp outputs of this tree and {base_commit}: {'identical' if identical else 'DIFFERENT'} pixels")
    save_report(
        args.json,
        size=args.size,
        repeats=args.repeats,
        base=args.base,
        base_commit=base_commit,
        summary=summary,
        runs=rows,
        glp_identical_to_base=identical,
    )


if __name__ == "__main__":
    main()
