"""Declarative configuration: YAML validated into typed objects (unknown keys are errors).

Names are validated against the registries they select from (methods, degradations,
normalisers), so a config and the command line accept exactly what is registered, and a
misspelt name gets the closest suggestion.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from geo_med_sr.degrade import DEGRADATIONS
from geo_med_sr.errors import ConfigError, file_error
from geo_med_sr.normalize import NORMALIZERS
from geo_med_sr.registry import Registry
from geo_med_sr.schema import Frozen, parse_yaml, validate
from geo_med_sr.upscale.registry import METHODS


def _registered(registry: Registry) -> AfterValidator:
    """A pydantic validator accepting the names registered in ``registry`` (lower-cased)."""

    def check(name: str) -> str:
        try:
            registry.get(name)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return name.lower()

    return AfterValidator(check)


MethodName = Annotated[str, _registered(METHODS)]
DegradationName = Annotated[str, _registered(DEGRADATIONS)]
NormalizerName = Annotated[str, _registered(NORMALIZERS)]


class ModelConfig(Frozen):
    """Which upsampler to use.

    ``method``: ``model`` (with ``name``: a checkpoint path), ``self`` (trained on the input
    itself for ``budget`` seconds, or for ``steps`` optimisation steps: reproducible), or a
    classical method; ``bspline-ibp`` is cubic B-spline plus back-projection onto the block
    average. ``consistency`` adds the same back-projection after any method, with the
    ``degradation`` model (``blockavg``, ``gaussian``, ``slice``), so the output re-degraded
    equals the input. ``ensemble`` averages the method over flips (and the 2D transpose): 8
    times the compute, usually 0.1-0.2 dB more. ``fast`` picks the small bundled network where
    one exists (large scenes; its quality cost is in the README).
    """

    method: MethodName = "model"
    name: str | None = None
    budget: float | None = Field(None, gt=0)
    steps: int | None = Field(None, gt=0)
    consistency: bool = False
    ensemble: bool = False
    fast: bool = False
    degradation: DegradationName = "blockavg"

    @model_validator(mode="after")
    def _budget_or_steps(self) -> ModelConfig:
        if self.budget is not None and self.steps is not None:
            raise ValueError("give a training budget (seconds) or a number of steps, not both")
        return self


class NormalizeConfig(Frozen):
    """Intensity normaliser applied before a network (``percentile``, ``window`` or ``none``)."""

    name: NormalizerName = "percentile"
    params: dict[str, float] = Field(default_factory=lambda: {"lower": 1.0, "upper": 99.0})


class InferenceConfig(Frozen):
    """Patch engine settings in LR pixels.

    ``halo`` None = the model's receptive radius; ``fill_radius`` (how far nodata is filled from
    valid neighbours before the network) None = the receptive radius when the image has nodata.
    ``stream``: EDSR networks run in columns of ``column_size`` LR pixels (in the first axes; the
    whole last axis in chunks of about ``chunk_mb`` of features), computing every layer once;
    other models, the ensemble and back-projection use tiles of ``patch_size``.
    """

    patch_size: int = Field(64, ge=1)
    stream: bool = True
    column_size: int = Field(256, ge=1)
    chunk_mb: float = Field(32.0, gt=0)
    halo: int | None = Field(None, ge=0)
    batch_size: int = Field(4, ge=1)
    fill_radius: int | None = Field(None, ge=0)
    device: str = "auto"
    amp: bool = False


class OutputConfig(Frozen):
    """Output values: ``input`` = cast back to the input's storage dtype, or ``float32``."""

    dtype: Literal["input", "float32"] = "input"


class SRConfig(Frozen):
    """Everything :func:`geo_med_sr.upscale.pipeline.super_resolve` needs besides paths and scale."""

    model: ModelConfig = ModelConfig()
    normalize: NormalizeConfig = NormalizeConfig()
    inference: InferenceConfig = InferenceConfig()
    output: OutputConfig = OutputConfig()

    def updated(self, **sections: dict[str, Any]) -> SRConfig:
        """A copy with the given sections' fields replaced (``None`` values are ignored)."""
        data = self.model_dump()
        for section, values in sections.items():
            data[section].update({k: v for k, v in values.items() if v is not None})
        return validate_config(data, source="options")


def validate_config(data: dict[str, Any], source: str | os.PathLike = "config") -> SRConfig:
    """Validate a plain dict into :class:`SRConfig`; errors name the source and the bad key."""
    return validate(SRConfig, data or {}, source)


def as_config(value: SRConfig | dict[str, Any] | str | os.PathLike | None) -> SRConfig:
    """What the Python API accepts as ``config``: an SRConfig, None (defaults), a dict of sections
    (``{"model": {"method": "bspline"}}``), or a YAML path / bundled name (``"medical/mri"``).

    Raises:
        ConfigError: anything else, or a dict or file that does not validate.
    """
    if value is None:
        return SRConfig()
    if isinstance(value, SRConfig):
        return value
    if isinstance(value, dict):
        return validate_config(value, source="config")
    if isinstance(value, (str, os.PathLike)):
        return load_config(value)
    raise ConfigError(
        f"config must be an SRConfig, a dict of sections, a YAML path or a bundled name, got {type(value).__name__}"
    )


def load_config(path: str | os.PathLike) -> SRConfig:
    """Load a YAML file, or a bundled config by name such as ``medical/mri``."""
    path_obj = Path(path)
    if not path_obj.exists():
        bundled = resources.files("geo_med_sr.configs").joinpath(f"{path}.yaml")
        if not bundled.is_file():
            raise file_error(ConfigError, path, "no such config file or bundled config (e.g. medical/mri)")
        text = bundled.read_text()
    else:
        text = path_obj.read_text()
    data = parse_yaml(text, path)
    if data is not None and not isinstance(data, dict):
        raise file_error(ConfigError, path, "a config must be a YAML mapping")
    return validate_config(data or {}, source=path)
