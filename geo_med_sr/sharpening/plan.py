"""What ``sharpen`` runs on a scene, decided once before any pixel is read: :func:`plan_sharpening`.

A :class:`SharpenPlan` holds the method (its :data:`~geo_med_sr.sharpening.registry.SHARPEN_METHODS`
record), the training settings, and per group of coarse bands (:class:`GroupPlan`) the bands and
their guides, where the method learns (the reduced copy, a full-scale fit, or finer coarse bands
standing in), the guided weights with their SHA-256 (given or bundled) or the network trained
from scratch, and the seconds of training. Every refusal the settings allow is made here, from
file headers only: an unknown method, a bad budget, a checkpoint that is not a guided network or
does not fit the group, no bundled model, a scene too small to learn on. The builders
(:mod:`geo_med_sr.sharpening.builders`) then only execute it; the request fingerprint
(:mod:`geo_med_sr.sharpening.request`) is made of it. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict

from geo_med_sr.digest import sha256_file
from geo_med_sr.errors import ConfigError, ModelError, file_error
from geo_med_sr.models.checkpoint import model_path, read_config
from geo_med_sr.sharpening.registry import FULL_SCALE, PROXY, SHARPEN_METHODS, SharpenMethod
from geo_med_sr.sharpening.scene import S2_KINDS, Group, Layout, Scene
from geo_med_sr.sharpening.training import check_reducible, too_small

__all__ = [
    "COARSEST_SHARE",
    "REDUCED",
    "GroupPlan",
    "SharpenPlan",
    "bundled_guided",
    "check_settings",
    "guide_names",
    "plan_sharpening",
]

#: share of the self-training budget given to the 60 m group when a product has both groups.
COARSEST_SHARE = 0.25
#: where a method learns when the group's own reduced-resolution copy is big enough.
REDUCED = "reduced"
#: network of ``self`` trained from scratch (features, residual blocks).
FEATURES, BLOCKS = 64, 6
#: ``self``'s training without ``--budget`` or ``--steps``: a fixed number of steps for the finest group (from
#: scratch, or fine-tuning a bundled model, whose smaller network takes about 0.4x the time per step) and for
#: each coarser one (so a rerun gives the same file however busy the machine is), calibrated to about four
#: minutes in all on the 2-core CPU (see the README's sharpening section).
DEFAULT_STEPS, DEFAULT_STEPS_FINETUNE, DEFAULT_STEPS_COARSE = 600, 1200, 200
#: ``--model`` value that makes ``self`` start from a new network even where a bundled one fits.
SCRATCH = "scratch"
#: bundled models that ``self`` fine-tunes without ``--model`` (where one fits the group's bands): those for
#: which fine-tuning measured better than a new network on scenes the model never saw (README, "Sharpening
#: quality": S2 x2 on three unseen scenes, +0.2 dB on average at 300 steps and 2-4x faster; pan x4 on a
#: WorldView tile). Elsewhere ``self`` starts from scratch.
SELF_FINETUNES = ("s2-guided-x2", "pan-guided-x4")


@dataclass(frozen=True)
class GroupPlan:
    """What runs on one group of coarse bands.

    Attributes:
        index: the group's index in the layout (``Layout.groups``).
        bands: target band names; ratio: their pixel-size ratio to the output grid, per axis.
        guides: names of the guide bands, then of the in-between bands (the recorded inputs).
        learn_from: :data:`REDUCED` (the group's reduced copy), ``"full-scale"`` (``glp`` gains fitted
            at the scene's resolution), ``"proxy"`` (``self`` learns the ratio on group ``donor``) or
            None (nothing is learned).
        donor: the layout index of the group whose bands stand in (``"proxy"``), else None.
        model: the ``--model`` value or the bundled name (None: no weights are loaded).
        weights: the checkpoint file; weights_sha256: its SHA-256.
        network: ``{"name", "params"}`` of the guided network that runs (loaded or trained).
        use_between: the network also takes the in-between bands (else the guides only).
        budget: training seconds of this group (None: it trains ``steps``).
        steps: training steps of this group (None: it trains for ``budget`` seconds, or does not train).
        steps_from: where ``steps`` come from: ``"--steps"`` or ``"default"`` (None: no steps).
    """

    index: int
    bands: tuple[str, ...]
    ratio: tuple[int, int]
    guides: tuple[str, ...]
    learn_from: str | None = None
    donor: int | None = None
    model: str | None = None
    weights: Path | None = None
    weights_sha256: str | None = None
    network: dict[str, Any] | None = None
    use_between: bool = True
    budget: float | None = None
    steps: int | None = None
    steps_from: str | None = None


class _Weights(TypedDict):
    """The :class:`GroupPlan` fields of a group that loads a guided checkpoint."""

    model: str
    weights: Path
    weights_sha256: str
    network: dict[str, Any]
    use_between: bool


@dataclass(frozen=True)
class SharpenPlan:
    """What :func:`~geo_med_sr.sharpening.pipeline.sharpen` runs, decided once (JSON-able, no tensors).

    Attributes:
        method: the registered record of the method.
        groups: one :class:`GroupPlan` per planned group of the layout, in its order.
        budget: total training seconds given (None: ``steps`` or the device's default).
        steps: training steps instead of a budget (reproducible), or None.
        seed: training seed (sampling and initial weights).
        device: where networks run (``"auto"``, ``"cpu"``, ``"cuda:N"``); amp: mixed precision on CUDA.
    """

    method: SharpenMethod
    groups: tuple[GroupPlan, ...]
    budget: float | None = None
    steps: int | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = False

    def group(self, index: int) -> GroupPlan:
        """The plan of the layout's group ``index``.

        Raises:
            KeyError: that group was not planned.
        """
        for planned in self.groups:
            if planned.index == index:
                return planned
        raise KeyError(f"group {index} of the layout was not planned")

    def record(self) -> dict[str, Any]:
        """The decisions that change the output's values, as JSON (part of the request fingerprint).

        Settings a method does not use are None (``steps`` of ``glp``), so they do not tell apart
        outputs that are the same; device and tile size are left out (the output does not depend
        on them).
        """
        trains, networks = self.method.trains, self.method.weights != "none" or self.method.trains
        return {
            "method": self.method.name,
            "steps": self.steps if trains else None,
            "budget": self.budget if trains else None,
            "seed": self.seed if trains or self.method.reduced else None,
            "amp": self.amp if networks else None,
            "groups": [
                {
                    "bands": list(g.bands),
                    "ratio": list(g.ratio),
                    "guides": list(g.guides),
                    "learn_from": g.learn_from,
                    "network": g.network,
                    "use_between": g.use_between if networks else None,
                    "budget": g.budget,
                    "steps": g.steps,
                }
                for g in self.groups
            ],
        }


def check_settings(
    method: str, budget: float | None = None, steps: int | None = None, model: str | None = None
) -> SharpenMethod:
    """The registered method called ``method``, once ``budget``/``steps`` are known to be usable.

    ``steps=0`` is allowed where a training method starts from ``model``: the starting model runs
    unchanged (the fine-tune path's origin, e.g. ``--method self --model s2-guided-x2 --steps 0`` is
    ``--method model --model s2-guided-x2``).

    Raises:
        ConfigError: an unknown method (with the closest name), both or a non-positive budget/steps.
    """
    spec = SHARPEN_METHODS.get(method)
    if budget is not None and steps is not None:
        raise ConfigError("give --budget or --steps, not both")
    if budget is not None and not budget > 0:
        raise ConfigError(f"--budget must be a positive number of seconds, got {budget}")
    if model == SCRATCH and spec.weights != "optional":
        raise ConfigError(f"--model {SCRATCH} (a new network) applies to --method self only")
    if steps == 0 and not (spec.trains and model and model != SCRATCH):
        raise ConfigError("--steps 0 needs a model to start from: --method self --model NAME_OR_PATH")
    if steps is not None and steps < 0:
        raise ConfigError(f"--steps must be a positive integer, got {steps}")
    return spec


def guide_names(scene: Scene, layout: Layout, group: Group) -> list[str]:
    """Names of ``group``'s guide bands, then of its in-between bands."""
    return [scene.bands[i].name for i in (*layout.guides, *group.between)]


def bundled_guided(scene: Scene, group: Group) -> str:
    """The bundled guided model for ``group`` of ``scene`` (by product kind and ratio).

    Raises:
        ModelError: none is installed for this kind and ratio.
    """
    from geo_med_sr.models.bundled import find

    kind = "s2" if scene.meta.get("kind") in S2_KINDS else "pan"
    name = f"{kind}-guided-x{group.ratio[0]}"
    if group.ratio[0] != group.ratio[1] or find(name) is None:
        raise ModelError(
            f"no bundled guided model for {'Sentinel-2' if kind == 's2' else 'pan-sharpening'} x{group.ratio[0]}; "
            "use --method self (trains on the scene) or give --model PATH.safetensors"
        )
    return name


def split_budget(layout: Layout, budget: float | None) -> list[float | None]:
    """Training seconds per group: with several groups the coarser ones share :data:`COARSEST_SHARE`."""
    if budget is None or len(layout.groups) == 1:
        return [budget] * len(layout.groups)
    coarsest = budget * COARSEST_SHARE / (len(layout.groups) - 1)
    shares: list[float | None] = [budget - coarsest * (len(layout.groups) - 1)]
    return shares + [coarsest] * (len(layout.groups) - 1)


def plan_sharpening(
    scene: Scene,
    layout: Layout,
    method: str = "self",
    *,
    model: str | None = None,
    budget: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    device: str = "auto",
    amp: bool = False,
    group: int | None = None,
) -> SharpenPlan:
    """Decide what sharpens every group of ``layout`` (reads file headers only, never pixels).

    Args:
        scene, layout: the opened bands and their layout (:func:`~geo_med_sr.sharpening.scene.plan`).
        method: a name of :data:`~geo_med_sr.sharpening.registry.SHARPEN_METHODS`.
        model: a guided checkpoint or bundled name (``model``: instead of the bundled default;
            ``self``: the starting point). Other methods ignore it.
        budget: training seconds in all (split between the groups); steps: training steps instead.
        seed: training seed; device, amp: where the networks run.
        group: plan only this group of the layout, with the whole budget (``evaluate --sharpen``
            scores one group at a time); None: every group, the budget split between them.

    Raises:
        ConfigError: an unknown method or bad budget/steps.
        ModelError: no bundled model for a group, or a checkpoint that is unreadable, not a guided
            network, or made for another ratio, other guides or other bands.
        InputError: a group too small to learn on (and nothing to stand in for it).
    """
    spec = check_settings(method, budget, steps, model)
    shares = dict(enumerate(split_budget(layout, budget))) if group is None else {group: budget}
    groups = tuple(_group_plan(spec, scene, layout, g, model, share) for g, share in shares.items())
    if spec.trains and budget is None:
        finest = min(range(len(layout.groups)), key=lambda g: layout.groups[g].ratio[0])
        groups = tuple(
            replace(
                planned,
                steps=steps if steps is not None else _default_steps(planned, planned.index == finest),
                steps_from="--steps" if steps is not None else "default",
            )
            for planned in groups
        )
    return SharpenPlan(spec, groups, budget, steps, int(seed), str(device), bool(amp))


def _default_steps(planned: GroupPlan, finest: bool) -> int:
    """``self``'s default steps of a group: :data:`DEFAULT_STEPS_FINETUNE` or :data:`DEFAULT_STEPS` for the
    finest group (from a checkpoint or from scratch), :data:`DEFAULT_STEPS_COARSE` for a coarser one."""
    if not finest:
        return DEFAULT_STEPS_COARSE
    return DEFAULT_STEPS_FINETUNE if planned.weights is not None else DEFAULT_STEPS


def _self_start(scene: Scene, group: Group) -> str | None:
    """The bundled model ``self`` fine-tunes on ``group`` without ``--model`` (one of :data:`SELF_FINETUNES`),
    or None (a new network)."""
    try:
        name = bundled_guided(scene, group)
    except ModelError:
        return None
    return name if name in SELF_FINETUNES else None


def _group_plan(
    spec: SharpenMethod, scene: Scene, layout: Layout, g: int, model: str | None, budget: float | None
) -> GroupPlan:
    """The plan of group ``g``: where ``spec`` learns, the weights it loads or the network it trains."""
    group = layout.groups[g]
    bands = tuple(scene.bands[i].name for i in group.targets)
    ratio = (int(group.ratio[0]), int(group.ratio[1]))
    guides = tuple(guide_names(scene, layout, group))
    seconds = budget if spec.trains else None
    learn_from: str | None = None
    donor: int | None = None
    if spec.reduced:
        learn_from = REDUCED
        if too_small(scene, layout, group):
            donors = [k for k, other in enumerate(layout.groups) if other.ratio[0] < group.ratio[0]]
            if spec.when_small == FULL_SCALE:
                learn_from = FULL_SCALE
            elif spec.when_small == PROXY and donors and model in (None, SCRATCH):
                learn_from, donor = PROXY, donors[0]
                proxy = Group(layout.groups[donor].targets, group.ratio, ())
                check_reducible(scene, layout, proxy, scale=group.ratio[0])
            else:
                check_reducible(scene, layout, group)
    name = model if spec.weights == "optional" and model != SCRATCH else None
    if spec.weights == "required":
        name = model or bundled_guided(scene, group)
    # self without --model: fine-tune the bundled model where one is measured to help and fits, else scratch
    optional_start = spec.weights == "optional" and model is None and learn_from == REDUCED
    if optional_start:
        name = _self_start(scene, group)
    if name:
        try:
            weights = _checkpoint(name, scene, layout, group)
        except ModelError:
            if not optional_start:
                raise
        else:
            return GroupPlan(g, bands, ratio, guides, learn_from=learn_from, donor=donor, budget=seconds, **weights)
    if not spec.trains:
        return GroupPlan(g, bands, ratio, guides, learn_from=learn_from, donor=donor, budget=seconds)
    if learn_from == PROXY:
        params, use_between = _params(1, len(layout.guides), group.ratio, bandwise=True), False
    else:
        params, use_between = _params(len(group.targets), len(layout.guides) + len(group.between), group.ratio), True
    return GroupPlan(
        g,
        bands,
        ratio,
        guides,
        learn_from=learn_from,
        donor=donor,
        network={"name": "guided", "params": params},
        use_between=use_between,
        budget=seconds,
    )


def _params(targets: int, guides: int, ratio: Sequence[int], bandwise: bool = False) -> dict[str, Any]:
    """``GuidedNet`` arguments of a network trained from scratch."""
    return {
        "target_channels": int(targets),
        "guide_channels": int(guides),
        "ratio": [int(r) for r in ratio],
        "features": FEATURES,
        "blocks": BLOCKS,
        "bandwise": bool(bandwise),
    }


def _checkpoint(name: str, scene: Scene, layout: Layout, group: Group) -> _Weights:
    """The guided checkpoint ``name`` for ``group``, checked from its header: model, weights, SHA-256,
    network and whether it takes the in-between bands."""
    path = model_path(name)
    config = read_config(path)
    network = config.get("network", {})
    if network.get("name") != "guided":
        raise file_error(ModelError, path, "is not a guided sharpening network; train one with sharpen --method self")
    params = network["params"]
    try:
        ratio = params.get("ratio", 2)
        scale = [int(ratio)] * 2 if isinstance(ratio, int) else [int(r) for r in ratio]
        guide_channels, target_channels = int(params["guide_channels"]), int(params["target_channels"])
        bandwise = bool(params.get("bandwise", False))
    except (KeyError, TypeError, ValueError) as exc:
        raise file_error(ModelError, path, f"stored network configuration is invalid: {exc!r}") from exc
    guides = guide_names(scene, layout, group)
    targets = [scene.bands[i].name for i in group.targets]
    if scale != list(group.ratio):
        raise file_error(ModelError, path, f"was trained for x{scale[0]}, these bands need x{group.ratio[0]}")
    fits = guide_channels == len(guides) or (bandwise and guide_channels == len(layout.guides))
    if not fits or (not bandwise and target_channels != len(targets)):
        raise file_error(
            ModelError,
            path,
            f"takes {guide_channels} guides{'' if bandwise else f' and {target_channels} bands'}; "
            f"these are {len(guides)} guides ({', '.join(guides)}) and {len(targets)} bands ({', '.join(targets)})",
        )
    want = config.get("extra", {}).get("targets")
    if want and not bandwise and [t.upper() for t in want] != [t.upper() for t in targets]:
        raise file_error(ModelError, path, f"was trained for bands {', '.join(want)}, not {', '.join(targets)}")
    return {
        "model": str(name),
        "weights": path,
        "weights_sha256": sha256_file(path),
        "network": {"name": "guided", "params": dict(params)},
        "use_between": guide_channels != len(layout.guides) or not group.between,
    }
