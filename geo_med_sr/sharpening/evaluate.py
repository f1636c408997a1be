"""``geo-med-sr evaluate --sharpen``: the reduced-resolution (Wald) protocol for guided sharpening.

For every group of coarse bands (S2 20 m x2, 60 m x6, MS bands under a pan): every band of the
scene is reduced by the group's ratio (:mod:`geo_med_sr.sharpening.wald`: block average, exact
area averages where grids are offset), each method sharpens the reduced bands exactly as
``sharpen`` would (``self`` trains on the reduced scene's own reduced copy, never on the truth),
and the result is scored against the original bands: per band PSNR, SSIM and UIQI, and ERGAS,
SAM and Q2n over the group (:mod:`geo_med_sr.metrics.fusion`). With ``qnr=True`` each method also
runs on the full-resolution scene and the no-reference QNR (D_lambda, D_s) is reported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geo_med_sr import __version__
from geo_med_sr.errors import ConfigError, InputError, ModelError
from geo_med_sr.inference.protocols import Window
from geo_med_sr.io import naming
from geo_med_sr.sharpening.builders import build_group
from geo_med_sr.sharpening.engine import run_method
from geo_med_sr.sharpening.pipeline import open_scene
from geo_med_sr.sharpening.plan import plan_sharpening
from geo_med_sr.sharpening.registry import SHARPEN_METHODS
from geo_med_sr.sharpening.scene import band_stats, group_inputs, plan
from geo_med_sr.sharpening.training import wald_pairs
from geo_med_sr.sharpening.wald import check_contrast

__all__ = ["evaluate_sharpening", "format_sharpen_table", "save_sharpen_plot"]

#: methods scored by default.
DEFAULT_METHODS = ("bicubic", "brovey", "glp", "self")


def evaluate_sharpening(
    inputs: Sequence[str | os.PathLike],
    *,
    pan: str | os.PathLike | None = None,
    guide: str | os.PathLike | None = None,
    bands: Sequence[str] | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    ratios: Sequence[int] | None = None,
    budget: float | None = None,
    steps: int | None = None,
    model: str | None = None,
    offset: float | None = None,
    device: str = "auto",
    seed: int = 0,
    qnr: bool = False,
    keep_arrays: bool = False,
    region: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Score sharpening ``methods`` on ``inputs`` by the reduced-resolution protocol.

    Args:
        inputs, pan, guide, bands, offset: the product, as for :func:`geo_med_sr.sharpening.pipeline.sharpen`.
        methods: names from :data:`~geo_med_sr.sharpening.registry.SHARPEN_METHODS`.
        ratios: only the groups with these ratios (e.g. ``[2]`` for the S2 20 m bands); default all.
        budget, steps, model, device, seed: for ``self`` and ``model``.
        qnr: also run each method at full resolution and report QNR, D_lambda and D_s.
        keep_arrays: keep truth, input and outputs under ``"_arrays"`` (for :func:`save_sharpen_plot`).
        region: score only this fraction ``(start, stop)`` of the columns (a held-out part of a scene).

    Returns:
        ``{"inputs", "groups": [{"bands", "ratio", "methods": {name: {"bands": [...], "ergas", "sam",
        "q2n", "psnr_mean", "ssim_mean", "seconds", ...}}}], ...}`` (JSON-able without ``_arrays``).
    """
    from geo_med_sr.metrics.fusion import fusion_report
    from geo_med_sr.metrics.fusion import qnr as qnr_score

    unknown = [m for m in methods if m not in SHARPEN_METHODS]
    if unknown:
        raise ConfigError(f"unknown sharpening method(s) {unknown}; choose from {', '.join(SHARPEN_METHODS.names())}")
    paths = [Path(p) for p in inputs]
    result: dict[str, Any] = {
        "version": __version__,
        "protocol": "Wald (every band reduced by the group's ratio: block average / exact area average)",
        "inputs": [str(p) for p in paths] + [str(p) for p in (pan, guide) if p is not None],
        "groups": [],
    }
    with open_scene(paths, pan=pan, guide=guide, bands=bands, offset=offset) as scene:
        layout = plan(scene)
        stats = [band_stats(b) for b in scene.bands]
        for g, group in enumerate(layout.groups):
            if ratios and group.ratio[0] not in ratios:
                continue
            (pair,) = wald_pairs(scene, layout, group, stats, max_pixels=1 << 62, region=region)
            with naming(paths[0]):  # before any method runs: a constant truth band has no PSNR
                check_contrast(pair, [scene.bands[i].name for i in group.targets])
            small = pair.scene
            small_layout = plan(small, write_guides=False)
            small_stats = [stats[i] for i in pair.index]
            targets = tuple(pair.index.index(i) for i in group.targets)
            gs = next(k for k, grp in enumerate(small_layout.groups) if grp.targets == targets)
            entry: dict[str, Any] = {
                "bands": [scene.bands[i].name for i in group.targets],
                "guides": [scene.bands[i].name for i in (*layout.guides, *group.between)],
                "ratio": list(group.ratio),
                "truth_shape": list(pair.label.shape[1:]),
                "methods": {},
            }
            arrays: dict[str, Any] = {"truth": pair.label, "outputs": {}}
            for name in methods:
                start = time.monotonic()
                settings = {"model": model, "budget": budget, "steps": steps, "seed": seed, "device": device}
                try:
                    decided = plan_sharpening(small, small_layout, name, group=gs, **settings)
                    method, info = build_group(decided, small, small_layout, small_stats, gs)
                except (InputError, ModelError) as exc:  # this method cannot run here: say why, score the others
                    entry["methods"][name] = {"error": str(exc)}
                    continue
                estimate, valid = run_method(
                    method,
                    small,
                    small_layout,
                    small_layout.groups[gs],
                    Window.from_shape(small_layout.grid.shape),
                    small_stats,
                )
                valid = np.all(valid & pair.valid, axis=0)
                score = fusion_report(pair.label, estimate, group.ratio[0], valid)
                score["seconds"] = round(time.monotonic() - start, 2)
                score.update({k: v for k, v in info.items() if k in ("steps", "train_seconds", "gains", "budget_s")})
                if qnr:
                    score.update(_qnr(name, scene, layout, g, stats, settings, qnr_score))
                entry["methods"][name] = score
                arrays["outputs"][name] = estimate
            if keep_arrays:
                entry["_arrays"] = arrays
            result["groups"].append(entry)
    if not result["groups"]:
        raise ConfigError(f"no group of bands with ratio {list(ratios or [])} in these inputs")
    return result


def _qnr(name, scene, layout, g, stats, settings, score) -> dict[str, float]:
    """QNR of ``name`` at full resolution (the output of ``sharpen`` on the scene itself)."""
    group = layout.groups[g]
    method, _ = build_group(plan_sharpening(scene, layout, name, group=g, **settings), scene, layout, stats, g)
    fused, _ = run_method(method, scene, layout, group, Window.from_shape(layout.grid.shape), stats)
    inputs = group_inputs(scene, layout, group, Window.from_shape(layout.grid.shape), stats)
    ms = []
    for i in group.targets:
        b = scene.bands[i]
        ms.append(b.physical(b.source.read(Window.from_shape(b.grid.shape))[0]))
    ratio = group.ratio[0]
    w, h = (n // ratio for n in fused.shape[1:])
    ms = np.stack(ms)[:, :w, :h]
    values = score(fused[:, : w * ratio, : h * ratio], ms, inputs.guides[:, : w * ratio, : h * ratio], ratio)
    return {f"qnr_{k}" if k != "qnr" else "qnr": v for k, v in values.items()}


def format_sharpen_table(result: dict[str, Any]) -> str:
    """A plain-text table per group: mean PSNR/SSIM, ERGAS, SAM, Q2n and per-band PSNR of every method."""
    lines = []
    for entry in result["groups"]:
        names = entry["bands"]
        lines.append(f"bands {', '.join(names)} x{entry['ratio'][0]} (guides {', '.join(entry['guides'])})")
        head = f"{'method':10s} {'PSNR':>7s} {'SSIM':>6s} {'ERGAS':>6s} {'SAM':>6s} {'Q2n':>6s} " + " ".join(
            f"{n:>6s}" for n in names
        )
        lines.append(head)
        for method, s in entry["methods"].items():
            if "error" in s:
                lines.append(f"{method:10s} not run: {s['error']}")
                continue
            per_band = " ".join(f"{b['psnr']:6.2f}" for b in s["bands"])
            lines.append(
                f"{method:10s} {s['psnr_mean']:7.2f} {s['ssim_mean']:6.3f} {s['ergas']:6.3f} {s['sam']:6.3f} "
                f"{s['q2n']:6.3f} {per_band}"
            )
    return "\n".join(lines)


def save_sharpen_plot(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Per band: truth / each method, the whole window and a zoomed crop (needs ``keep_arrays=True``)."""
    from geo_med_sr.optional import require
    from geo_med_sr.upscale.evaluate import REPORT_MARK

    matplotlib = require("matplotlib", "evaluate --plot")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "evaluate --plot")
    rows = []
    for entry in result["groups"]:
        arrays = entry["_arrays"]
        for k, name in enumerate(entry["bands"]):
            rows.append((name, arrays["truth"][k], {m: o[k] for m, o in arrays["outputs"].items()}))
    cols = 1 + max(len(r[2]) for r in rows)
    fig, axes = plt.subplots(2 * len(rows), cols, figsize=(2.2 * cols, 4.4 * len(rows)), squeeze=False)
    for r, (name, truth, outputs) in enumerate(rows):
        vmin, vmax = np.percentile(truth, [1, 99])
        w, h = truth.shape
        side = max(16, min(w, h) // 4)
        crop = (slice(w // 3, w // 3 + side), slice(h // 3, h // 3 + side))
        panels = {"truth": truth, **outputs}
        for c, (label, img) in enumerate(panels.items()):
            for row, view in ((2 * r, img), (2 * r + 1, img[crop])):
                axes[row, c].imshow(view.T, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
                axes[row, c].axis("off")
            axes[2 * r, c].set_title(f"{name}: {label}", fontsize=7)
    fig.suptitle("evaluate --sharpen (reduced resolution): truth / methods, whole and zoomed", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": REPORT_MARK})
    plt.close(fig)
