"""super_resolve(src, dst, ...): the tool the CLI, notebooks and scripts call.

read -> check values -> normalise -> patch engine -> inverse -> exact geometry -> atomic write.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from . import __version__, io
from .config import SRConfig
from .errors import ConfigError, InputError, ModelError, file_error
from .geometry import scaled_shape
from .inference.classical import CLASSICAL
from .inference.resolver import SuperResolver
from .normalize import build_normalizer
from .spatial import SpatialArray


@dataclass(frozen=True)
class Result:
    """What :func:`super_resolve` did: paths, grids and the provenance written into the output."""

    output: Path
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    provenance: dict[str, Any]


def parse_scale(text: str | int | Sequence[int]) -> tuple[int, ...]:
    """``"2"`` -> ``(2,)``; ``"1,1,4"`` -> ``(1, 1, 4)``. Factors must be whole numbers >= 1."""
    items = [str(v).strip() for v in (text.split(",") if isinstance(text, str) else np.atleast_1d(text))]
    out = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"--scale {text!r}: {item!r} is not a number; use e.g. 2 or 1,1,4") from None
        if not np.isfinite(value) or value != int(value) or value < 1:
            raise ConfigError(f"--scale {text!r}: factors must be whole numbers >= 1 (got {item}); use e.g. 2 or 1,1,4")
        out.append(int(value))
    if not out:
        raise ConfigError("--scale is empty; use e.g. 2 or 1,1,4")
    return tuple(out)


def broadcast_scale(scale: Sequence[int], image: SpatialArray, path: object) -> tuple[int, ...]:
    """One factor per spatial axis of ``image`` (a single factor applies to every axis)."""
    n = image.spatial_dims
    if len(scale) == 1:
        return tuple(scale) * n
    if len(scale) != n:
        raise file_error(ConfigError, path, f"--scale has {len(scale)} factors but the image has {n} spatial axes (index order, fastest first)")
    return tuple(scale)


def check_finite(image: SpatialArray, path: object) -> None:
    """Refuse NaN/Inf in valid voxels: a network would spread them over their neighbourhood."""
    values = image.array if image.valid is None else image.array[:, image.valid]
    if values.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise file_error(InputError, path, f"contains {bad} NaN/Inf voxel(s); replace them with finite values before super-resolving")


def build_upsampler(config: SRConfig, scale: tuple[int, ...], spatial_dims: int) -> tuple[nn.Module, dict[str, Any]]:
    """The upsampling module for ``config.model`` and its description for provenance."""
    method = config.model.method
    if method != "model":
        return CLASSICAL.get(method)(scale), {"method": method}
    if not config.model.name:
        raise ModelError(
            "--method model needs --model PATH.safetensors: bundled weights are not shipped yet; "
            "use --method bspline, linear or nearest for a classical upscale"
        )
    from .checkpoint import resolve_model

    model, info = resolve_model(config.model.name)
    model_scale = tuple(getattr(model, "scale", ()))
    if model_scale and model_scale != scale:
        raise ModelError(f"model {config.model.name} upsamples by {model_scale} but --scale asks for {scale}")
    if getattr(model, "spatial_dims", spatial_dims) != spatial_dims:
        raise ModelError(f"model {config.model.name} is {model.spatial_dims}D but the image has {spatial_dims} spatial axes")
    return model, {"method": "model", "model": config.model.name, **{k: v for k, v in info.items() if k in ("name", "sha256")}}


def upscale_image(image: SpatialArray, scale: tuple[int, ...], config: SRConfig, *, progress: bool | None = None) -> tuple[SpatialArray, dict[str, Any]]:
    """Super-resolve an in-memory image; returns the HR image and its provenance dict."""
    upsampler, prov = build_upsampler(config, scale, image.spatial_dims)
    if prov["method"] == "model":
        normalizer = build_normalizer(config.normalize.name, **config.normalize.params)
        stats = normalizer.fit(image.array, image.valid)
    else:  # classical interpolation is linear in the values: no normalisation needed
        normalizer = build_normalizer("none")
        stats = normalizer.fit(image.array)
    inf = config.inference
    resolver = SuperResolver(upsampler, scale, patch_size=inf.patch_size, halo=inf.halo, batch_size=inf.batch_size, device=inf.device, amp=inf.amp, progress=progress)
    y = normalizer.inverse(resolver(normalizer.forward(image.array, stats)), stats)
    dtype = "float32" if config.output.dtype == "float32" else image.meta.get("dtype", str(image.array.dtype))
    prov = {"tool": f"geo_med_sr {__version__}", **prov, "scale": list(scale), "normalization": stats}
    meta_update: dict[str, Any] = {"dtype": dtype, "provenance": prov}
    if config.output.dtype == "float32" and "nifti" in image.meta:
        meta_update["nifti"] = {**image.meta["nifti"], "scaled": False}
    return image.with_array(y, scale, meta_update=meta_update), prov


def super_resolve(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    scale: str | int | Sequence[int],
    config: SRConfig | None = None,
    *,
    series: str | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Result:
    """Upscale the image at ``src`` by ``scale`` and write it to ``dst`` with exact geometry.

    Args:
        src: ``.nii``/``.nii.gz`` file or a folder holding a DICOM series.
        dst: ``.nii``/``.nii.gz`` file, or a folder name for a DICOM series.
        scale: one factor or one per spatial axis in index order, fastest first (``"1,1,4"``).
        config: model, normalisation, inference and output settings (defaults if None).
        series: SeriesInstanceUID to pick from a DICOM folder with several series.
        overwrite: replace an existing ``dst``.
        progress: progress bar (None = only on a terminal).

    Raises:
        GeoMedSRError subclasses with a one-line message naming the file and the problem.
    """
    config = config or SRConfig()
    src_path, dst_path = Path(src), Path(dst)
    try:
        factors = parse_scale(scale)
    except ConfigError as exc:
        raise file_error(ConfigError, src_path, str(exc)) from exc
    adapter = io.adapter_for_input(src_path)
    io.check_output(dst_path, inputs=(src_path,), overwrite=overwrite)
    options = {"series": series} if adapter.is_folder else {}
    if series and not adapter.is_folder:
        raise ConfigError(f"--series only applies to DICOM folders, not to {src_path}")
    image = adapter.read(src_path, **options)
    factors = broadcast_scale(factors, image, src_path)
    scaled_shape(image.spatial_shape, factors)
    check_finite(image, src_path)
    hr, prov = upscale_image(image, factors, config, progress=progress)
    io.write(hr, dst_path, overwrite=overwrite)
    return Result(dst_path, image.spatial_shape, hr.spatial_shape, prov)
