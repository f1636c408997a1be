"""Training configurations: YAML validated into typed objects (unknown keys are errors).

``geo-med-sr train`` trains one of two kinds of network, told apart by the config's ``task``:
``upscale`` (the default when ``task`` is absent: a single-image SR network, :class:`TrainConfig`)
or ``sharpen`` (a guided sharpening network, :class:`GuidedTrainConfig`).
:func:`load_training_config` returns the one the file asks for (a pydantic discriminated union on
``task``); :func:`load_train_config` accepts only the first.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AliasChoices, Discriminator, Field, PositiveInt, Tag, field_validator

from geo_med_sr.degrade import DEGRADATIONS
from geo_med_sr.errors import ConfigError, file_error
from geo_med_sr.normalize import NORMALIZERS
from geo_med_sr.registry import Registry
from geo_med_sr.schema import Frozen, Strict, parse_yaml, validate

__all__ = [
    "GuidedTrainConfig",
    "NamedParams",
    "TrainConfig",
    "TrainingConfig",
    "load_train_config",
    "load_training_config",
]


class NamedParams(Frozen):
    """A registered name plus constructor parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(Frozen):
    """Everything ``geo-med-sr train`` needs besides the data paths for an SR network (``task: upscale``).

    ``patch_size`` is in LR pixels; ``scale`` one factor per spatial axis; ``lr`` the Adam
    learning rate, decayed to 0 by a cosine schedule over ``steps``. ``decimate_p`` is the share
    of HR patches taken from a nearest-neighbour decimated copy of a training image (by one of
    ``decimate_factors``), for the aliasing of scenes resampled by nearest neighbour;
    ``transpose`` adds random 2D transposes to the random flips. ``task`` may be omitted; it is
    not part of the dumped configuration (what checkpoints record).
    """

    task: Literal["upscale"] = Field("upscale", exclude=True)
    network: NamedParams = NamedParams(name="edsr", params={"features": 32, "num_blocks": 8})
    spatial_dims: Literal[2, 3] = 2
    scale: list[int] = Field(default_factory=lambda: [2, 2])
    degradation: NamedParams = NamedParams(name="blockavg")
    normalize: NamedParams = NamedParams(name="percentile", params={"lower": 1.0, "upper": 99.0})
    patch_size: int = Field(32, ge=4)
    decimate_p: float = Field(0.0, ge=0.0, le=1.0)
    decimate_factors: list[PositiveInt] = Field(default_factory=lambda: [2, 3], min_length=1)
    transpose: bool = False
    batch_size: int = Field(16, ge=1)
    steps: int = Field(1000, ge=1)
    lr: float = Field(2e-4, gt=0)
    loss: Literal["l1", "l2", "charbonnier"] = "l1"
    val_every: int = Field(100, ge=1)
    checkpoint_every: int = Field(500, ge=1)
    seed: int = 0
    device: str = "auto"
    amp: bool = False

    @field_validator("network")
    @classmethod
    def _registered_network(cls, value: NamedParams) -> NamedParams:
        from geo_med_sr.networks import NETWORKS

        return _registered(NETWORKS, value)

    @field_validator("degradation")
    @classmethod
    def _registered_degradation(cls, value: NamedParams) -> NamedParams:
        return _registered(DEGRADATIONS, value)

    @field_validator("normalize")
    @classmethod
    def _registered_normalizer(cls, value: NamedParams) -> NamedParams:
        return _registered(NORMALIZERS, value)


def _registered(registry: Registry, value: NamedParams) -> NamedParams:
    """``value`` when its name is registered; the registry's message (closest name) otherwise."""
    try:
        registry.get(value.name)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return value


class GuidedTrainConfig(Strict):
    """What a guided sharpening network is trained on and how (``task: sharpen``).

    ``ratio``: the band group to learn (its pixel-size ratio to the finest grid); ``scale``: the
    network's SR factor when it differs from ``ratio`` (``factor`` is read as ``scale``, as older
    configs and checkpoints spell it); ``bands``: the S2 band names to read (None: all);
    ``region``: the fraction of each scene's columns to train on; ``max_pixels``: Wald pairs
    per scene; ``patch_size`` in pixels of the reduced finest grid; ``balance``: how a training
    patch picks its scene (``pair``: every Wald pair alike, so a large scene with many pairs
    dominates; ``scene``: each scene alike, then one of its pairs).
    """

    task: Literal["sharpen"]
    ratio: int = Field(2, ge=2, le=16)
    scale: int | None = Field(None, ge=2, le=16, validation_alias=AliasChoices("scale", "factor"))
    bands: list[str] | None = None
    features: int = Field(64, ge=4)
    blocks: int = Field(6, ge=0)
    bandwise: bool = False
    region: tuple[float, float] | None = None
    max_pixels: int = Field(1 << 20, ge=1024)
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(8, ge=1)
    patch_size: int = Field(48, ge=8)
    lr: float = Field(1e-3, gt=0)
    seed: int = 0
    device: str = "auto"
    balance: Literal["pair", "scene"] = "pair"


#: the tasks a training config may name (``task:``), the first the default.
TASKS = ("upscale", "sharpen")


def _task(value: Any) -> str:
    """The ``task`` of a training config (a dict from YAML or a validated config); ``upscale`` if absent."""
    if isinstance(value, dict):
        return value.get("task", TASKS[0])
    return getattr(value, "task", TASKS[0])


#: a training config of either task, chosen by ``task``.
TrainingConfig = Annotated[
    Union[Annotated[TrainConfig, Tag("upscale")], Annotated[GuidedTrainConfig, Tag("sharpen")]],  # noqa: UP007
    Discriminator(
        _task,
        custom_error_type="task",
        custom_error_message=f"expected one of {', '.join(TASKS)} (the default when absent)",
    ),
]


def _problem(error: dict[str, Any]) -> str:
    """``field: message`` of one error of the union (the task tag left out of the location)."""
    loc = list(error["loc"])
    if loc[:1] and loc[0] in TASKS:
        loc = loc[1:]
    return f"{'.'.join(str(p) for p in loc) or 'task'}: {error['msg']}"


def _read(path: str | os.PathLike | None) -> dict[str, Any]:
    """The mapping of a training YAML file (empty when ``path`` is None)."""
    if path is None:
        return {}
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise file_error(ConfigError, path, f"cannot read the training config ({exc.strerror})") from exc
    data = parse_yaml(text, path) or {}
    if not isinstance(data, dict):
        raise file_error(ConfigError, path, "a training config must be a YAML mapping")
    return data


#: the most weights a training config may ask for. Training holds four float32 copies of every weight
#: (the weight, its gradient and Adam's two moments: 16 bytes), so 2**28 weights take 4 GiB before a
#: single activation; the largest published EDSR has 43 M weights, the bundled networks under 1 M.
MAX_WEIGHTS = 1 << 28


def _whole(value: Any, default: int) -> int | None:
    """``value`` (``default`` when None) as an int, or None when it is not a whole number (left to the network)."""
    value = default if value is None else value
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def estimated_weights(features: int, kernel_size: int, spatial_dims: int, convolutions: int, upsample: int = 1) -> int:
    """Weights of a plain convolutional network, torch-free: ``features**2 * kernel_size**spatial_dims``
    per ``features -> features`` convolution, ``convolutions`` of them, plus the sub-pixel upsampler's
    (``upsample`` = the product of the scale factors, its output channels per feature).

    An estimate for refusing absurd sizes (it leaves out biases and the few input/output channels),
    not an exact count.
    """
    per_conv = int(features) ** 2 * int(kernel_size) ** int(spatial_dims)
    return per_conv * (int(convolutions) + int(upsample))


def _network_size(config: TrainConfig | GuidedTrainConfig) -> tuple[int, str] | None:
    """``(estimated weights, description)`` of the network ``config`` trains, or None when its parameters
    are not whole numbers (the network's own checks then refuse them)."""
    if isinstance(config, GuidedTrainConfig):
        ratio = config.scale or config.ratio
        count = estimated_weights(config.features, 3, 2, 2 * config.blocks + 3, ratio * ratio)
        return count, f"features {config.features}, blocks {config.blocks}"
    params = config.network.params
    features = _whole(params.get("features"), 32)
    kernel = _whole(params.get("kernel_size"), 3)
    blocks = _whole(params.get("num_blocks"), 8)
    groups = _whole(params.get("num_groups"), 1)
    if None in (features, kernel, blocks, groups):
        return None
    upsample = math.prod(int(f) for f in config.scale) if config.scale else 1
    count = estimated_weights(features, kernel, config.spatial_dims, groups * (2 * blocks + 1) + 3, upsample)
    return count, f"network.params features {features}, num_blocks {blocks}" + (
        f", num_groups {groups}" if "num_groups" in params else ""
    )


def check_network_size(config: TrainConfig | GuidedTrainConfig, source: str | os.PathLike) -> None:
    """Refuse a network too large to train (:data:`MAX_WEIGHTS`), before anything is allocated.

    Raises:
        ConfigError: one line naming ``source``, the parameters, the estimate, the limit and why.
    """
    size = _network_size(config)
    if size is None or size[0] <= MAX_WEIGHTS:
        return
    count, what = size
    raise file_error(
        ConfigError,
        source,
        f"{what} ask for about {count:.3g} weights, above the limit of {MAX_WEIGHTS:.3g} (2**28): training keeps "
        f"4 float32 copies of each weight (weight, gradient, two Adam moments), {16 * count / 2**30:.3g} GiB before "
        "any activation; use fewer features or blocks",
    )


def _check_aliases(data: dict[str, Any], source: str | os.PathLike) -> None:
    """Refuse a guided config giving ``scale`` and its old name ``factor`` both (one would be dropped silently)."""
    if _task(data) == "sharpen" and "scale" in data and "factor" in data:
        raise file_error(
            ConfigError,
            source,
            f"gives both scale ({data['scale']!r}) and factor ({data['factor']!r}), the same setting "
            "('factor' is its old name); keep one",
        )


def load_training_config(path: str | os.PathLike | None, **overrides: Any) -> TrainConfig | GuidedTrainConfig:
    """Load a training YAML of either task (the SR defaults when ``path`` is None) and apply overrides.

    Args:
        path: the YAML file; its ``task`` (``upscale`` when absent, or ``sharpen``) picks the type.
        **overrides: top-level values that replace the file's (None values are ignored), e.g.
            ``steps``, ``seed``, ``device``.

    Raises:
        ConfigError: one line naming the file and every bad field, a key given twice (:func:`parse_yaml`),
            ``scale`` and ``factor`` both, or a network above :data:`MAX_WEIGHTS` weights.
    """
    data = _read(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    source = path or "training options"
    _check_aliases(data, source)
    config = validate(TrainingConfig, data, source, "invalid training configuration", describe=_problem)
    if isinstance(config, TrainConfig) and len(config.scale) != config.spatial_dims:
        raise file_error(
            ConfigError, source, f"scale {config.scale} needs {config.spatial_dims} factors (one per spatial axis)"
        )
    check_network_size(config, source)
    return config


def load_train_config(path: str | os.PathLike | None, **overrides: Any) -> TrainConfig:
    """Load an SR training config (``task: upscale`` or no task) like :func:`load_training_config`.

    Raises:
        ConfigError: as :func:`load_training_config`, or the file is a guided sharpening config.
    """
    config = load_training_config(path, **overrides)
    if not isinstance(config, TrainConfig):
        raise file_error(ConfigError, path, "is a guided sharpening config (task: sharpen), not an SR one")
    return config
