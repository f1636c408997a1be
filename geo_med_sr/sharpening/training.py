"""Training guided sharpening networks on reduced-resolution (Wald) pairs: the scene itself or a corpus.

``--method self`` trains a :class:`~geo_med_sr.networks.guided.GuidedNet` on the scene's own
reduced copy (:mod:`geo_med_sr.sharpening.wald`: every band reduced by the group's ratio, the
original coarse bands as truth) within a time budget or a number of steps, then applies it at
full resolution; the bundled guided models are trained the same way on several scenes
(:func:`train_guided` on the pairs of each). Training windows are bounded in number and size,
so memory does not grow with the scene.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geo_med_sr.errors import InputError
from geo_med_sr.inference.protocols import Window
from geo_med_sr.sharpening.scene import Group, Layout, Scene, group_inputs, plan
from geo_med_sr.sharpening.wald import ReducedPair, label_range, reduce_group

__all__ = [
    "TrainArrays",
    "check_reducible",
    "holdout_batch",
    "holdout_split",
    "reduced_inputs",
    "too_small",
    "train_guided",
    "training_arrays",
    "wald_pairs",
]

#: default self-training budget in seconds (2-core CPU; a GPU gets a quarter of it).
DEFAULT_BUDGET_CPU = 240.0
DEFAULT_BUDGET_GPU = 60.0
#: label pixels (target grid) that training may read from one scene, and the label window side.
MAX_LABEL_PIXELS = 1 << 20
LABEL_WINDOW = 192
#: output-grid patch side and batch of a training step; Adam learning rates from scratch and when fine-tuning
#: a trained network (a bundled model or ``--model``).
PATCH = 48
BATCH = 8
LEARNING_RATE = 1e-3
FINE_TUNE_LR = 2e-4
#: early stopping: share of each reduced pair held out (a strip along its longest side), the fixed hold-out
#: batch (patches), and how many times during training the hold-out L1 is checked.
HOLDOUT_SHARE = 0.2
HOLDOUT_BATCH = 16
HOLDOUT_CHECKS = 10
#: the narrowest held-out strip (pixels of the reduced pair's label grid).
MIN_HOLDOUT = 4


def _available(scene: Scene, layout: Layout, group: Group, scale: int | None = None) -> tuple[list, list, tuple]:
    ratio = group.ratio if scale is None else (scale, scale)
    steps = [math.lcm(ratio[a], *[layout.relations[i].ratio[a] for i in group.between]) for a in range(2)]
    ranges = label_range(scene, layout, group)
    return [max(0, (hi - lo) // s * s) for (lo, hi), s in zip(ranges, steps)], steps, ranges


#: fewer reduced pixels per axis than this and ``self``/``glp`` learn elsewhere (see ``sharpening.plan``).
MIN_REDUCED_PIXELS = 4


def too_small(scene: Scene, layout: Layout, group: Group, minimum: int = MIN_REDUCED_PIXELS) -> bool:
    """Whether ``group``'s reduced-resolution copy would have fewer than ``minimum`` pixels per axis."""
    avail, _, _ = _available(scene, layout, group)
    return min(a // r for a, r in zip(avail, group.ratio)) < minimum


def _refuse_small(scene: Scene, group: Group, avail: Sequence[int], ratio: Sequence[int]) -> None:
    if min(a // r for a, r in zip(avail, ratio)) < MIN_REDUCED_PIXELS:
        names = ", ".join(scene.bands[i].name for i in group.targets)
        raise InputError(
            f"bands {names} are too small for a reduced-resolution copy ({avail} pixels after reduction by "
            f"{list(group.ratio)} leave fewer than 4 per axis); use --method bicubic, glp or model, or a larger area"
        )


def check_reducible(scene: Scene, layout: Layout, group: Group, scale: int | None = None) -> None:
    """Refuse, as :func:`wald_pairs` would, a group too small for one reduced pair (grids only, no pixels).

    Raises:
        InputError: fewer than :data:`MIN_REDUCED_PIXELS` reduced pixels per axis.
    """
    avail, _, _ = _available(scene, layout, group, scale)
    _refuse_small(scene, group, avail, group.ratio if scale is None else (scale, scale))


def wald_pairs(
    scene: Scene,
    layout: Layout,
    group: Group,
    stats: list[dict],
    max_pixels: int = MAX_LABEL_PIXELS,
    seed: int = 0,
    region: tuple[float, float] | None = None,
    scale: int | None = None,
) -> list[ReducedPair]:
    """Reduced-resolution pairs of ``group``: the whole covered target grid when it is small, else seeded
    random label windows holding about ``max_pixels`` target pixels.

    Args:
        max_pixels: label pixels of a x2 group (scaled by ``4 / ratio**2`` for other ratios, so that the
            guide pixels read stay the same).
        region: only this fraction ``(start, stop)`` of the covered columns (a spatial train/test split).
        scale: reduce the targets by this SR factor instead of their ratio (see
            :func:`~geo_med_sr.sharpening.wald.reduce_group`).

    Raises:
        InputError: the scene is too small for one reduced pair.
    """
    avail, steps, ranges = _available(scene, layout, group, scale)
    if region is not None:
        (lo, hi), step = ranges[0], steps[0]
        a = lo + int(round((hi - lo) * region[0]))
        b = lo + int(round((hi - lo) * region[1]))
        ranges = ((a, b), ranges[1])
        avail = [max(0, (b - a) // step * step), avail[1]]
    ratio = group.ratio if scale is None else (scale, scale)
    _refuse_small(scene, group, avail, ratio)
    # the cap counts guide pixels as a x2 group reads them (4 per label pixel): a x6 group's guides are 36 per
    # label pixel, so it gets 4/36 of the label pixels, and memory stays bounded for every ratio
    max_pixels = max(1, max_pixels * 4 // (ratio[0] * ratio[1]))
    if avail[0] * avail[1] <= max_pixels:
        return [reduce_group(scene, layout, group, (ranges[0][0], ranges[1][0]), tuple(avail), stats, scale)]
    size = [min(a, max(s, LABEL_WINDOW // s * s)) for a, s in zip(avail, steps)]
    count = max(1, max_pixels // (size[0] * size[1]))
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        start = [int(lo + rng.integers(0, hi - lo - n + 1)) for (lo, hi), n in zip(ranges, size)]
        pairs.append(reduce_group(scene, layout, group, tuple(start), tuple(size), stats, scale))
    return pairs


def reduced_inputs(pair: ReducedPair, group: Group, stats: list[dict], detail: bool = False):
    """The group's inputs on the whole reduced scene of ``pair`` (same bands, one level down)."""
    small_stats = [stats[i] for i in pair.index]
    layout = plan(pair.scene, write_guides=False)
    targets = tuple(pair.index.index(i) for i in group.targets)
    small = next(g for g in layout.groups if g.targets == targets)
    window = Window.from_shape(layout.grid.shape)
    return group_inputs(pair.scene, layout, small, window, small_stats, detail=detail)


@dataclass
class TrainArrays:
    """Normalised training arrays of one pair: ``up`` ``(T, W, H)``, ``guides`` ``(G, W, H)``,
    ``label`` ``(T, W, H)`` (float32) and ``valid`` ``(W, H)`` (every band valid)."""

    up: np.ndarray
    guides: np.ndarray
    label: np.ndarray
    valid: np.ndarray


def training_arrays(pairs: Sequence[ReducedPair], group: Group, stats: list[dict], normalise) -> list[TrainArrays]:
    """Network inputs and labels of ``pairs``; ``normalise(inputs) -> (up, guides)`` as the method does."""
    t_mean = np.array([stats[i]["mean"] for i in group.targets])[:, None, None]
    t_std = np.array([stats[i]["std"] for i in group.targets])[:, None, None]
    out = []
    for pair in pairs:
        inputs = reduced_inputs(pair, group, stats)
        up, guides = normalise(inputs)
        valid = np.all(inputs.valid & pair.valid, axis=0)
        label = ((pair.label - t_mean) / t_std).astype(np.float32)
        out.append(TrainArrays(up, guides, label, valid))
    return out


def holdout_split(
    arrays: Sequence[TrainArrays], share: float = HOLDOUT_SHARE
) -> tuple[list[TrainArrays], list[TrainArrays]]:
    """Hold out the last ``share`` of each pair along its longest side (at least :data:`MIN_HOLDOUT` pixels).

    Returns ``(train, held)``: the same arrays with ``valid`` cut in two, so training never sees a
    held-out label; a pair too small to give up a strip (less than two strips left) is trained on whole.
    """
    train, held = [], []
    for a in arrays:
        shape = a.valid.shape
        axis = int(np.argmax(shape))
        width = max(int(math.ceil(share * shape[axis])), MIN_HOLDOUT)
        if shape[axis] - width < 2 * width:
            train.append(a)
            continue
        index = np.arange(shape[axis]).reshape([-1 if k == axis else 1 for k in range(2)])
        cut = np.broadcast_to(index >= shape[axis] - width, shape)
        train.append(TrainArrays(a.up, a.guides, a.label, a.valid & ~cut))
        held.append(TrainArrays(a.up, a.guides, a.label, a.valid & cut))
    return train, held


def holdout_batch(
    held: Sequence[TrainArrays], seed: int, patch: int = PATCH, batch: int = HOLDOUT_BATCH
) -> list[np.ndarray] | None:
    """A fixed batch ``(up, guides, label, mask)`` of ``patch``-sided windows that hold the held-out strips
    (their training side gives context only: ``mask`` is the held-out valid pixels), or None when no
    held-out pixel is valid."""
    held = [a for a in held if a.valid.any()]
    if not held:
        return None
    rng = np.random.default_rng(seed + 1)
    ups, guides, labels, masks = [], [], [], []
    for k in range(batch):
        a = held[k % len(held)]
        w, h = a.valid.shape
        p = (min(patch, w), min(patch, h))
        rows, cols = np.nonzero(a.valid)
        pick = int(rng.integers(len(rows)))  # a held-out pixel, then the window around it
        x = int(np.clip(rows[pick] - p[0] // 2, 0, w - p[0]))
        y = int(np.clip(cols[pick] - p[1] // 2, 0, h - p[1]))
        box = (slice(None), slice(x, x + p[0]), slice(y, y + p[1]))
        for store, v in zip(
            (ups, guides, labels, masks), (a.up[box], a.guides[box], a.label[box], a.valid[box[1:]][None])
        ):
            store.append(np.ascontiguousarray(v))
    first = ups[0].shape[1:]
    keep = [i for i, u in enumerate(ups) if u.shape[1:] == first]
    return [np.stack([s[i] for i in keep]) for s in (ups, guides, labels, masks)]


def _masked_l1(model: Any, batch: Sequence[np.ndarray], device: Any) -> float:
    """The mean L1 of ``model`` on ``batch``'s masked pixels (eval mode, no gradient)."""
    import torch

    up, guides, label, mask = (torch.from_numpy(v).to(device) for v in batch)
    mask = mask.float()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(up, guides)
        value = float(((out - label).abs() * mask).sum() / (mask.sum() * out.shape[1]).clamp(min=1.0))
    model.train(was_training)
    return value


def _patches(
    arrays: Sequence[TrainArrays],
    rng: np.random.Generator,
    patch: int,
    batch: int,
    scenes: Sequence[Sequence[int]] | None = None,
):
    """A batch ``(up, guides, label, mask)`` of random patches (random dihedral transform each).

    Each patch comes from a pair drawn uniformly from ``arrays``, or with ``scenes`` (the indices of
    each scene's pairs, two scenes or more) from a scene drawn uniformly, then one of its pairs, so
    that a large scene with many pairs does not outweigh the small ones.
    """
    ups, guides, labels, masks = [], [], [], []
    for _ in range(batch):
        if scenes is not None and len(scenes) > 1:
            own = scenes[int(rng.integers(len(scenes)))]
            a = arrays[own[int(rng.integers(len(own)))]]
        else:
            a = arrays[int(rng.integers(len(arrays)))]
        w, h = a.valid.shape
        p = (min(patch, w), min(patch, h))
        x, y = int(rng.integers(0, w - p[0] + 1)), int(rng.integers(0, h - p[1] + 1))
        box = (slice(None), slice(x, x + p[0]), slice(y, y + p[1]))
        item = [a.up[box], a.guides[box], a.label[box], a.valid[box[1:]][None]]
        k = int(rng.integers(8))
        item = [np.rot90(v, k % 4, axes=(1, 2)) for v in item]
        if k >= 4:
            item = [v[:, ::-1] for v in item]
        for store, v in zip((ups, guides, labels, masks), item):
            store.append(np.ascontiguousarray(v))
    shapes = {u.shape[1:] for u in ups}
    if len(shapes) > 1:  # non-square small arrays rotated: keep the first shape only
        first = ups[0].shape[1:]
        keep = [i for i, u in enumerate(ups) if u.shape[1:] == first]
        ups, guides, labels, masks = ([s[i] for i in keep] for s in (ups, guides, labels, masks))
    return [np.stack(s) for s in (ups, guides, labels, masks)]


def train_guided(
    model: Any,
    arrays: Sequence[TrainArrays],
    budget: float | None = None,
    steps: int | None = None,
    device: Any = "cpu",
    seed: int = 0,
    lr: float = LEARNING_RATE,
    patch: int = PATCH,
    batch: int = BATCH,
    progress: Any = None,
    scenes: Sequence[Sequence[int]] | None = None,
    holdout: Sequence[np.ndarray] | None = None,
    checks: int = HOLDOUT_CHECKS,
) -> dict[str, Any]:
    """Train ``model`` with L1 on valid pixels until ``steps`` are done or ``budget`` seconds have passed.

    The learning rate follows a cosine from ``lr`` to zero over the steps (or the time budget).
    With ``steps`` given the result is reproducible bit for bit on the CPU (seeded sampling, checks
    at fixed steps). ``scenes``: indices of ``arrays`` per scene, to draw each patch's scene
    uniformly (see :func:`_patches`); None: every pair alike.

    With ``holdout`` (a :func:`holdout_batch`), the hold-out L1 is measured before training and
    ``checks`` times during it, and the weights with the lowest one are kept (early stopping): the
    result is never worse on the held-out pixels than the model it started from.

    Returns:
        ``{"steps", "seconds", "loss"}`` (the mean L1 of the last 50 steps, normalised units; None
        after zero steps, which leave ``model`` as it was), with ``holdout``: also
        ``{"holdout_l1_start", "holdout_l1_kept", "kept_step"}``.
    """
    import copy

    import torch

    if steps is None and budget is None:
        raise ValueError("give a time budget or a number of steps")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.to(device).train()
    best = None
    if holdout is not None:
        best = {"l1": _masked_l1(model, holdout, device), "step": 0, "state": copy.deepcopy(model.state_dict())}
    start_l1 = None if best is None else best["l1"]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.monotonic()
    done = 0
    next_check = 1.0 / max(1, checks)
    losses: list[float] = []
    while True:
        elapsed = time.monotonic() - start
        fraction = (done / steps if steps else 1.0) if steps is not None else elapsed / budget
        if best is not None and done and (fraction >= next_check or fraction >= 1.0):
            while next_check <= fraction:
                next_check += 1.0 / max(1, checks)
            value = _masked_l1(model, holdout, device)
            if value < best["l1"]:
                best = {"l1": value, "step": done, "state": copy.deepcopy(model.state_dict())}
        if fraction >= 1.0:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * min(fraction, 1.0)))
        up, guides, label, mask = (torch.from_numpy(v).to(device) for v in _patches(arrays, rng, patch, batch, scenes))
        mask = mask.float()
        out = model(up, guides)
        loss = ((out - label).abs() * mask).sum() / (mask.sum() * out.shape[1]).clamp(min=1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        done += 1
        if progress is not None:
            progress(fraction)
    report: dict[str, Any] = {"steps": done, "seconds": round(time.monotonic() - start, 3)}
    report["loss"] = float(np.mean(losses[-50:])) if losses else None  # None: no step (the model is unchanged)
    if best is not None:
        if best["step"] != done:
            model.load_state_dict(best["state"])
        report.update({"holdout_l1_start": start_l1, "holdout_l1_kept": best["l1"], "kept_step": best["step"]})
    model.eval()
    return report
