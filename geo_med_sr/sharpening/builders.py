"""The builders of the sharpening methods: a :class:`~geo_med_sr.sharpening.plan.GroupPlan` executed.

Each registered method (:data:`~geo_med_sr.sharpening.registry.SHARPEN_METHODS`) names one of the
``build_*`` functions here; :func:`build_group` calls it through the registry. A builder makes
no decision of its own: what it loads, fits or trains, and on which bands, is in the plan. It
returns the method the engine runs on the group's tiles (:mod:`geo_med_sr.sharpening.methods`)
and what the provenance records about it (gains, weights, training report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from geo_med_sr.sharpening.plan import GroupPlan, SharpenPlan, guide_names
from geo_med_sr.sharpening.registry import FULL_SCALE, PROXY
from geo_med_sr.sharpening.scene import Group, Layout, Scene

__all__ = ["build_bicubic", "build_brovey", "build_glp", "build_group", "build_model", "build_self"]


def build_group(
    plan: SharpenPlan, scene: Scene, layout: Layout, stats: list[dict], g: int, progress: bool | None = False
) -> tuple[Any, dict[str, Any]]:
    """The method that sharpens group ``g`` of ``plan`` and what it records in the provenance.

    Args:
        plan: from :func:`~geo_med_sr.sharpening.plan.plan_sharpening` on ``scene`` and ``layout``.
        stats: per band of the scene ``{"mean", "std"}``.
        g: the group's index; progress: a training progress bar (None: on a terminal).
    """
    return plan.method.build_function()(plan, plan.group(g), scene, layout, stats, progress)


def build_bicubic(
    plan: SharpenPlan, group: GroupPlan, scene: Scene, layout: Layout, stats: list[dict], progress: bool | None = False
) -> tuple[Any, dict[str, Any]]:
    """:class:`~geo_med_sr.sharpening.methods.Bicubic` (nothing to record)."""
    from geo_med_sr.sharpening.methods import Bicubic

    return Bicubic(), {}


def build_brovey(
    plan: SharpenPlan, group: GroupPlan, scene: Scene, layout: Layout, stats: list[dict], progress: bool | None = False
) -> tuple[Any, dict[str, Any]]:
    """:class:`~geo_med_sr.sharpening.methods.Brovey` (nothing to record)."""
    from geo_med_sr.sharpening.methods import Brovey

    return Brovey(), {}


def build_glp(
    plan: SharpenPlan, group: GroupPlan, scene: Scene, layout: Layout, stats: list[dict], progress: bool | None = False
) -> tuple[Any, dict[str, Any]]:
    """:class:`~geo_med_sr.sharpening.methods.GLP` with gains fitted on the reduced copy (bounded windows,
    one pair in memory at a time), or at full scale when the plan says the copy is too small."""
    from geo_med_sr.sharpening import methods as fm
    from geo_med_sr.sharpening.training import reduced_inputs, wald_pairs

    grp = layout.groups[group.index]
    names = guide_names(scene, layout, grp)
    if group.learn_from == FULL_SCALE:
        gains = fm.fit_glp_full_scale(_sample_inputs(scene, layout, grp, stats))
        return fm.GLP(gains), {
            "gains": np.round(gains, 6).tolist(),
            "gains_from": "full-scale regression (the reduced copy is too small)",
            "guides": names,
        }
    pairs = wald_pairs(scene, layout, grp, stats, seed=plan.seed)
    data = ((reduced_inputs(p, grp, stats, detail=True), p.label, p.valid) for p in pairs)  # one at a time
    gains = fm.fit_glp(data)
    return fm.GLP(gains), {"gains": np.round(gains, 6).tolist(), "gains_from": "reduced resolution", "guides": names}


def build_model(
    plan: SharpenPlan, group: GroupPlan, scene: Scene, layout: Layout, stats: list[dict], progress: bool | None = False
) -> tuple[Any, dict[str, Any]]:
    """The planned guided checkpoint (given or bundled) on the group."""
    from geo_med_sr.inference.device import resolve_device
    from geo_med_sr.models.checkpoint import load_checkpoint

    net, _ = load_checkpoint(group.weights)
    method = _network_method(net, group, scene, layout, stats, resolve_device(plan.device), plan.amp)
    return method, _weights_info(group)


def build_self(
    plan: SharpenPlan, group: GroupPlan, scene: Scene, layout: Layout, stats: list[dict], progress: bool | None = False
) -> tuple[Any, dict[str, Any]]:
    """A guided network trained on the scene's reduced copy (from the planned checkpoint or from
    scratch), or for a group too small for one, on finer coarse bands standing in (see :func:`_proxy`)."""
    import torch

    from geo_med_sr.inference.device import resolve_device
    from geo_med_sr.sharpening.training import training_arrays, wald_pairs

    if group.learn_from == PROXY:
        return _proxy(plan, group, scene, layout, stats, progress)
    grp = layout.groups[group.index]
    pairs = wald_pairs(scene, layout, grp, stats, seed=plan.seed)
    dev = resolve_device(plan.device)
    torch.manual_seed(plan.seed)  # the initial weights too, so --steps gives the same result every time
    net, info = _network(group)
    method = _network_method(net, group, scene, layout, stats, dev, plan.amp)
    arrays = training_arrays(pairs, grp, stats, method.normalised)
    info.update(_train_report(net, arrays, group, plan, dev, len(grp.targets), progress))
    method.model = net.eval()
    return method, {**info, "reduced_pairs": len(pairs)}


def _proxy(
    plan: SharpenPlan, group: GroupPlan, scene: Scene, layout: Layout, stats: list[dict], progress: bool | None = False
) -> tuple[Any, dict[str, Any]]:
    """``self`` for a group too small for its own reduced copy (S2 60 m bands of a small area): a band-wise
    guided network learns the group's ratio on the finer coarse bands (the 20 m bands reduced by 6, with the
    10 m bands as guides), then restores the group's bands one by one with the same guides (from scratch:
    fine-tuning the bundled band-wise model instead measured worse, see the README's performance notes)."""
    import torch

    from geo_med_sr.inference.device import resolve_device
    from geo_med_sr.sharpening.methods import NetworkMethod
    from geo_med_sr.sharpening.training import training_arrays, wald_pairs

    grp = layout.groups[group.index]
    proxy = Group(layout.groups[group.donor].targets, grp.ratio, ())
    dev = resolve_device(plan.device)
    torch.manual_seed(plan.seed)
    net, _ = _network(group)
    guide_stats = _stats_of(stats, layout.guides)
    trainer = NetworkMethod(net, _stats_of(stats, proxy.targets), guide_stats, use_between=False)
    pairs = wald_pairs(scene, layout, proxy, stats, seed=plan.seed, scale=grp.ratio[0])
    arrays = training_arrays(pairs, proxy, stats, trainer.normalised)
    info = _train_report(net, arrays, group, plan, dev, len(proxy.targets), progress)
    method = NetworkMethod(net.eval(), _stats_of(stats, grp.targets), guide_stats, dev, plan.amp, use_between=False)
    names = [scene.bands[i].name for i in proxy.targets]
    return method, {**info, "reduced_pairs": len(pairs), "trained_on": names}


def _stats_of(stats: list[dict], indices: Sequence[int]) -> list[dict]:
    return [stats[i] for i in indices]


def _weights_info(group: GroupPlan) -> dict[str, Any]:
    return {"model": group.model, "model_sha256": group.weights_sha256}


def _network(group: GroupPlan) -> tuple[Any, dict[str, Any]]:
    """The planned network: the checkpoint loaded, or a new ``GuidedNet`` (seed torch first)."""
    if group.weights is not None:
        from geo_med_sr.models.checkpoint import load_checkpoint

        net, _ = load_checkpoint(group.weights)
        return net, _weights_info(group)
    from geo_med_sr.networks.guided import GuidedNet

    return GuidedNet(**group.network["params"]), {}


def _network_method(
    net: Any, group: GroupPlan, scene: Scene, layout: Layout, stats: list[dict], device: Any, amp: bool
) -> Any:
    """``net`` on the group: guides and in-between bands as inputs, or the guides only (as planned)."""
    from geo_med_sr.sharpening.methods import NetworkMethod

    grp = layout.groups[group.index]
    guides = (*layout.guides, *grp.between) if group.use_between else layout.guides
    return NetworkMethod(
        net,
        _stats_of(stats, grp.targets),
        _stats_of(stats, guides),
        device=device,
        amp=amp,
        use_between=group.use_between,
    )


def _train_report(
    net: Any, arrays: list, group: GroupPlan, plan: SharpenPlan, dev: Any, bands: int, progress: bool | None = False
) -> dict[str, Any]:
    """Train ``net`` on ``arrays`` (the group's budget in seconds or its steps), keeping the weights that do
    best on a held-out strip of the reduced pairs (early stopping: never worse there than where it started),
    and report it: budget, steps done and where they come from, seconds, losses, network, seed."""
    from tqdm.auto import tqdm

    from geo_med_sr.sharpening import training as tr

    steps, budget, seed = group.steps, group.budget, plan.seed
    if steps is None and budget is None:  # a plan made by hand: the device's default budget
        budget = tr.DEFAULT_BUDGET_GPU if dev.type == "cuda" else tr.DEFAULT_BUDGET_CPU
    train, held = tr.holdout_split(arrays)
    holdout = tr.holdout_batch(held, seed)
    lr = tr.FINE_TUNE_LR if group.weights is not None else tr.LEARNING_RATE
    kept = None
    if holdout is None and group.weights is not None and group.steps_from == "default":
        # nothing to stop early on: fine-tuning could only end worse than the model (a scene of a few pixels)
        steps, kept = 0, "no hold-out strip (the reduced copy is too small): the model is kept unchanged"
    bar = tqdm(
        total=100,
        desc=f"self-training ({bands} bands)",
        unit="%",
        leave=False,
        disable=None if progress is None else not progress,
    )

    def tick(fraction: float) -> None:
        bar.update(int(100 * min(fraction, 1.0)) - bar.n)

    try:
        report = tr.train_guided(
            net, train, budget=budget, steps=steps, device=dev, seed=seed, lr=lr, progress=tick, holdout=holdout
        )
    finally:
        bar.close()
    info = {
        "budget_s": budget,
        "steps": report["steps"],
        "steps_from": group.steps_from if budget is None else "--budget",
        "start": group.model or "scratch",
        "learning_rate": lr,
        "train_seconds": report["seconds"],
        "train_loss": None if report["loss"] is None else round(report["loss"], 6),
        "network": net.config(),
        "seed": seed,
    }
    if kept is not None:
        info["early_stopping"] = kept
    elif holdout is not None:
        info["early_stopping"] = {
            "held_out_share": tr.HOLDOUT_SHARE,
            "holdout_l1_start": round(report["holdout_l1_start"], 6),
            "holdout_l1_kept": round(report["holdout_l1_kept"], 6),
            "kept_step": report["kept_step"],
        }
    return info


def _sample_inputs(scene: Scene, layout: Layout, group: Group, stats: list[dict], side: int = 512) -> list:
    """GLP inputs (with detail) on a bounded, even grid of output windows (at most 9 of ``side`` pixels)."""
    from geo_med_sr.inference.protocols import Window
    from geo_med_sr.sharpening.scene import group_inputs

    w, h = layout.grid.shape
    xs = sorted({int(v) for v in np.linspace(0, max(w - side, 0), 3)})
    ys = sorted({int(v) for v in np.linspace(0, max(h - side, 0), 3)})
    boxes = [Window(((x, min(x + side, w)), (y, min(y + side, h)))) for x in xs for y in ys]
    return [group_inputs(scene, layout, group, box, stats, detail=True) for box in boxes]
