"""Leave-one-scene-out guided S2 models: one ``geo-med-sr train`` per fold, so every score is on unseen ground.

    .venv/bin/python benchmarks/train_loo_sharpen.py [--ratios 2 6] [--steps N] [--scenes NAME ...] [--folds KEY ...] \
        [--out-dir benchmarks/.work/loo] [--all] [--dry-run] [--json benchmarks/results/train_loo_sharpen.json]

For every ratio, the shared Sentinel-2 scenes (``../shared/data/s2``, or ``--scenes``) are split by
:func:`geo_med_sr.sharpening.folds.leave_one_out`: a fold holds out one *ground* (an MGRS tile, or
a scene without one) and trains on every other scene. Scenes of one ground share their fold, so a
ground is trained once: ``OUT_DIR/s2_guided_x{r}_without_{key}.safetensors`` (``key`` with ``:``
as ``_``), the names ``bench_peers_sharpen.py --model-dir`` looks for. ``--all`` also trains on every
scene (``s2_guided_x{r}_all.safetensors``: the candidate for the bundled model).

Each fold runs our own ``train`` in a fresh process with ``configs/train/s2_guided_x{r}.yaml``
minus its ``region`` (the held-out scene is the test set, so the training scenes are used whole),
with ``--steps`` / ``--balance`` (how a patch picks its scene) if given. A scene too small for a
ratio's reduced pairs is left out of that ratio (reported). Existing checkpoints are kept unless
``--retrain``. Prints one row per fold and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from geo_med_sr.errors import GeoMedSRError  # noqa: E402
from geo_med_sr.sharpening.folds import leave_one_out  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "s2"


def usable(scene: Path, config: dict) -> str | None:
    """None when ``scene`` gives reduced pairs for ``config``'s group, else why not (one line)."""
    from geo_med_sr.sharpening.pipeline import open_scene
    from geo_med_sr.sharpening.scene import plan
    from geo_med_sr.sharpening.training import check_reducible

    ratio = config.get("ratio", 2)
    try:
        with open_scene([scene], bands=config.get("bands")) as opened:
            layout = plan(opened)
            group = next((g for g in layout.groups if g.ratio == (ratio, ratio)), None)
            if group is None:
                return f"no bands at ratio {ratio}"
            check_reducible(opened, layout, group, scale=config.get("scale"))
    except GeoMedSRError as error:
        return str(error)
    return None


def fold_config(ratio: int, steps: int | None, balance: str | None, work: Path) -> tuple[Path, dict]:
    """The training config of ``ratio`` without its ``region`` (and with ``steps``, ``balance``), in ``work``."""
    config = yaml.safe_load((REPO / "configs" / "train" / f"s2_guided_x{ratio}.yaml").read_text())
    config.pop("region", None)
    if steps is not None:
        config["steps"] = steps
    if balance is not None:
        config["balance"] = balance
    path = work / f"s2_guided_x{ratio}_loo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, config


def train(config: Path, scenes: list[Path], out: Path) -> dict:
    """One ``geo-med-sr train`` run in a fresh process: seconds, and the checkpoint's final loss."""
    cmd = [sys.executable, "-m", "geo_med_sr", "train", "--config", str(config), "--data", *map(str, scenes)]
    cmd += ["--out", str(out), "--overwrite"]
    start = time.monotonic()
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return {"seconds": round(time.monotonic() - start, 1), "command": cmd[2:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", nargs="+", type=int, default=[2, 6], choices=[2, 6])
    parser.add_argument(
        "--scenes", nargs="+", type=Path, default=None, help="default: every folder of ../shared/data/s2"
    )
    parser.add_argument(
        "--folds", nargs="+", default=None, help="train only these folds (keys as printed, e.g. tile:29RKH)"
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
    parser.add_argument("--balance", choices=["pair", "scene"], default=None, help="default: the config's")
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / ".work" / "loo")
    parser.add_argument("--all", action="store_true", help="also train on every scene (the bundled candidate)")
    parser.add_argument("--retrain", action="store_true", help="replace checkpoints this script already wrote")
    parser.add_argument("--dry-run", action="store_true", help="print the folds and stop")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "train_loo_sharpen.json")
    args = parser.parse_args(argv)

    scenes = args.scenes or (sorted(p for p in DATA.iterdir() if p.is_dir()) if DATA.is_dir() else [])
    if not scenes:
        print(f"no scenes: give --scenes or put the shared data at {DATA}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "ratios": {},
    }
    with tempfile.TemporaryDirectory(prefix="loo_") as tmp:
        for ratio in args.ratios:
            config_path, config = fold_config(ratio, args.steps, args.balance, Path(tmp))
            skipped = {s.name: why for s in scenes if (why := usable(s, config))}
            for name, why in skipped.items():
                print(f"x{ratio}: {name} left out: {why}")
            kept = [s for s in scenes if s.name not in skipped]
            folds = leave_one_out(kept)
            runs: dict[str, dict] = {}
            for fold in folds:
                if fold.key in runs:
                    runs[fold.key]["held_out"].append(fold.held_out.name)
                    continue
                if args.folds and fold.key not in args.folds:
                    continue
                out = args.out_dir / f"s2_guided_x{ratio}_without_{fold.key.replace(':', '_')}.safetensors"
                row = {"held_out": [fold.held_out.name], "train": [p.name for p in fold.train], "checkpoint": str(out)}
                if not args.dry_run and (args.retrain or not out.exists()):
                    row.update(train(config_path, list(fold.train), out))
                runs[fold.key] = row
                print(f"x{ratio} without {fold.key}: {len(fold.train)} scenes, {row.get('seconds', '-')} s", flush=True)
            if args.all and not args.dry_run:
                out = args.out_dir / f"s2_guided_x{ratio}_all.safetensors"
                runs["all"] = {"train": [p.name for p in kept], "checkpoint": str(out)}
                if args.retrain or not out.exists():
                    runs["all"].update(train(config_path, kept, out))
            report["ratios"][str(ratio)] = {"config": config, "left_out": skipped, "folds": runs}
    if not args.dry_run:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
