"""Training configuration: YAML validated into a typed object (unknown keys are errors)."""

from __future__ import annotations

import os
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator

from geo_med_sr.degrade import DEGRADATIONS
from geo_med_sr.errors import ConfigError, file_error
from geo_med_sr.normalize import NORMALIZERS
from geo_med_sr.registry import Registry


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NamedParams(_Strict):
    """A registered name plus constructor parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Strict):
    """Everything ``geo-med-sr train`` needs besides the data paths.

    ``patch_size`` is in LR pixels; ``scale`` one factor per spatial axis; ``lr`` the Adam
    learning rate, decayed to 0 by a cosine schedule over ``steps``. ``decimate_p`` is the share
    of HR patches taken from a nearest-neighbour decimated copy of a training image (by one of
    ``decimate_factors``), for the aliasing of scenes resampled by nearest neighbour;
    ``transpose`` adds random 2D transposes to the random flips.
    """

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


def load_train_config(path: str | os.PathLike | None, **overrides: Any) -> TrainConfig:
    """Load a YAML training config (or the defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path) as handle:
                data = yaml.safe_load(handle) or {}
        except OSError as exc:
            raise file_error(ConfigError, path, f"cannot read the training config ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise file_error(ConfigError, path, f"not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise file_error(ConfigError, path, "a training config must be a YAML mapping")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise file_error(
            ConfigError, path or "training options", f"invalid training configuration: {problems}"
        ) from exc
    if len(config.scale) != config.spatial_dims:
        raise file_error(
            ConfigError,
            path or "training options",
            f"scale {config.scale} needs {config.spatial_dims} factors (one per spatial axis)",
        )
    return config
