"""super_resolve(src, dst, ...): the tool the CLI, notebooks and scripts call.

open -> check -> fit normaliser -> patch engine (normalise, fill nodata, network, inverse,
re-mask, cast; window by window) -> exact geometry -> atomic write.

Medical volumes are read into memory; GeoTIFF scenes stream window by window from a
:class:`~geo_med_sr.adapters.geotiff.GeoTiffSource` into a
:class:`~geo_med_sr.adapters.geotiff.GeoTiffSink`, so memory does not grow with scene size.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from . import __version__, io
from .config import SRConfig
from .errors import ConfigError, InputError, ModelError, OutputError, file_error
from .geometry import scale_affine, scaled_shape
from .inference.classical import CLASSICAL
from .inference.consistency import BackProjection  # also registers the classical "bspline-ibp"
from .inference.ensemble import SelfEnsemble
from .inference.radiometry import Radiometry, sample_valid_values
from .inference.resolver import SuperResolver
from .normalize import Normalizer, build_normalizer
from .request import broadcast_scale, model_choice, parse_bands, parse_scale, request_for, sha256_file
from .spatial import SpatialArray
from .training.degrade import build_degradation


@dataclass(frozen=True)
class Result:
    """What :func:`super_resolve` did: paths, grids and the provenance written into the output."""

    output: Path
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    provenance: dict[str, Any]


def check_finite(image: SpatialArray, path: object) -> None:
    """Refuse NaN/Inf in valid voxels: a network would spread them over their neighbourhood."""
    values = image.array if image.valid is None else image.array[:, image.valid]
    if values.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise file_error(
                InputError,
                path,
                f"contains {bad} NaN/Inf voxel(s); replace them with finite values before super-resolving",
            )


def _checkpoint_normalize(config: SRConfig, domain: str, scale: tuple[int, ...]) -> dict[str, Any] | None:
    """The normalisation a checkpoint was trained with (from its JSON sidecar), if recorded."""
    from .checkpoint import sidecar_path

    try:
        info = json.loads(sidecar_path(model_choice(config, domain, scale)[2]).read_text())
    except (OSError, ValueError):
        return None
    spec = info.get("extra", {}).get("normalize")
    return spec if isinstance(spec, dict) and "name" in spec else None


def fit_normalizer(
    config: SRConfig, source: Any, domain: str = "medical", scale: tuple[int, ...] = ()
) -> tuple[Normalizer, dict[str, Any]]:
    """The normaliser the method needs and its statistics on ``source``'s valid pixels.

    A checkpoint is fed the normalisation it was trained with (recorded in its config); ``self``
    gets the configured normaliser; classical interpolation is linear in the values, so it gets
    the identity.
    """
    if config.model.method in ("model", "self"):
        spec = _checkpoint_normalize(config, domain, scale) if config.model.method == "model" else None
        spec = spec or {"name": config.normalize.name, "params": config.normalize.params}
        normalizer = build_normalizer(spec["name"], **spec.get("params", {}))
        return normalizer, normalizer.fit(sample_valid_values(source))
    normalizer = build_normalizer("none")
    return normalizer, normalizer.fit(np.zeros((source.shape[0], 1), np.float32))


def build_upsampler(
    config: SRConfig,
    scale: tuple[int, ...],
    spatial_dims: int,
    *,
    source: Any = None,
    norm: tuple[Normalizer, dict[str, Any]] | None = None,
    slice_thickness: float | None = None,
    domain: str = "medical",
) -> tuple[nn.Module, dict[str, Any]]:
    """The upsampling module for ``config.model`` (self-ensemble, back-projection when asked) and its provenance.

    ``source`` and ``norm`` are needed by ``--method self``, which trains on the input itself;
    ``slice_thickness`` (HR pixels) is its through-plane slice profile. ``domain`` (``medical``
    or ``geo``) picks the bundled default when ``--method model`` has no ``--model``.
    """
    upsampler, prov = _base_upsampler(config, scale, spatial_dims, source, norm, slice_thickness, domain)
    if config.model.ensemble:
        upsampler = SelfEnsemble(upsampler)
        prov = {**prov, "ensemble": len(upsampler.members)}
    if config.model.consistency:
        degradation = build_degradation(config.model.degradation, scale, spatial_dims)
        upsampler = BackProjection(upsampler, degradation)
        prov = {**prov, "consistency": {"degradation": config.model.degradation, "iterations": upsampler.iterations}}
    return upsampler, prov


def _base_upsampler(
    config: SRConfig,
    scale: tuple[int, ...],
    spatial_dims: int,
    source: Any,
    norm: Any,
    slice_thickness: float | None,
    domain: str,
) -> tuple[nn.Module, dict[str, Any]]:
    method = config.model.method
    if method == "self":
        from .training.selfsup import self_supervised_upsampler

        if source is None or norm is None:
            raise ConfigError("--method self needs the input image to train on")
        model, info = self_supervised_upsampler(
            source,
            *norm,
            scale,
            budget=config.model.budget,
            device=config.inference.device,
            slice_thickness=slice_thickness,
            domain=domain,
        )
        return model, {"method": "self", "self_supervised": info}
    if method != "model":
        return CLASSICAL.get(method)(scale), {"method": method}
    from .checkpoint import resolve_model

    name, source_note, weights = model_choice(config, domain, scale)
    model, info = resolve_model(name)
    model = _through_plane(model, scale, spatial_dims)
    model_scale = tuple(getattr(model, "scale", ()))
    if model_scale and model_scale != scale:
        raise ModelError(f"model {name} upsamples by {model_scale} but --scale asks for {scale}")
    if getattr(model, "spatial_dims", spatial_dims) != spatial_dims:
        raise ModelError(f"model {name} is {model.spatial_dims}D but the image has {spatial_dims} spatial axes")
    network = info.get("network", {}).get("name", type(model).__name__)
    return model, {
        "method": "model",
        "model": str(name),
        "model_source": source_note,
        "network": network,
        "weights_sha256": sha256_file(weights),
    }


def _through_plane(model: nn.Module, scale: tuple[int, ...], spatial_dims: int) -> nn.Module:
    """A 2D ``(s, 1)`` network on a 3D volume scaled along one axis: the two-orientation plane ensemble."""
    thick = [a for a, f in enumerate(scale) if f > 1]
    if (
        spatial_dims == 3
        and getattr(model, "spatial_dims", 3) == 2
        and len(thick) == 1
        and tuple(model.scale) == (scale[thick[0]], 1)
    ):
        from .training.selfsup import PlaneEnsemble

        return PlaneEnsemble(model, thick[0])
    return model


def _radiometry(
    config: SRConfig,
    norm: tuple[Normalizer, dict[str, Any]],
    upsampler: nn.Module,
    *,
    out_dtype: Any,
    nodata: float | None,
    has_mask: bool,
) -> Radiometry:
    """The fitted normaliser plus the nodata fill/re-mask settings."""
    fill = config.inference.fill_radius
    if fill is None:
        fill = int(getattr(upsampler, "receptive_radius", 0)) if has_mask else 0
    return Radiometry(norm[0], norm[1], fill_radius=fill, out_dtype=out_dtype, nodata=nodata)


def _slice_thickness_px(meta: dict[str, Any], scale: Sequence[int]) -> float | None:
    """Through-plane slice thickness in HR pixels when the file records it (DICOM), else None."""
    info = meta.get("dicom") if isinstance(meta.get("dicom"), dict) else {}
    thickness, spacing = info.get("slice_thickness"), info.get("slice_spacing")
    if not thickness or not spacing:
        return None
    return float(thickness) / (float(spacing) / max(scale))


def _provenance(prov: dict[str, Any], scale: Sequence[int], radiometry: Radiometry) -> dict[str, Any]:
    return {"tool": f"geo_med_sr {__version__}", **prov, "scale": list(scale), "normalization": radiometry.stats}


def _resolver(config: SRConfig, upsampler: nn.Module, scale: tuple[int, ...], progress: bool | None) -> SuperResolver:
    inf = config.inference
    return SuperResolver(
        upsampler,
        scale,
        patch_size=inf.patch_size,
        halo=inf.halo,
        batch_size=inf.batch_size,
        device=inf.device,
        amp=inf.amp,
        progress=progress,
        stream=inf.stream,
        column_size=inf.column_size,
        chunk_mb=inf.chunk_mb,
    )


def upscale_image(
    image: SpatialArray, scale: tuple[int, ...], config: SRConfig, *, progress: bool | None = None
) -> tuple[SpatialArray, dict[str, Any]]:
    """Super-resolve an in-memory image; returns the HR image (float32 values) and provenance."""
    from .inference.io import ArraySource

    source = ArraySource(image.array, image.valid)
    domain = "geo" if image.meta.get("format") == "geotiff" else "medical"
    norm = fit_normalizer(config, source, domain, scale)
    upsampler, prov = build_upsampler(
        config,
        scale,
        image.spatial_dims,
        source=source,
        norm=norm,
        slice_thickness=_slice_thickness_px(image.meta, scale),
        domain=domain,
    )
    radiometry = _radiometry(config, norm, upsampler, out_dtype=None, nodata=None, has_mask=image.valid is not None)
    y = _resolver(config, upsampler, scale, progress)(image.array, image.valid, radiometry)
    dtype = "float32" if config.output.dtype == "float32" else image.meta.get("dtype", str(image.array.dtype))
    prov = _provenance(prov, scale, radiometry)
    meta_update: dict[str, Any] = {"dtype": dtype, "provenance": prov}
    if config.output.dtype == "float32" and "nifti" in image.meta:
        meta_update["nifti"] = {**image.meta["nifti"], "scaled": False}
    return image.with_array(y, scale, meta_update=meta_update), prov


def _stream(
    adapter_in: Any,
    adapter_out: Any,
    src: Path,
    dst: Path,
    factors: tuple[int, ...],
    config: SRConfig,
    *,
    bands: Sequence[int] | None,
    overwrite: bool,
    progress: bool | None,
    cog: bool,
    request: dict[str, Any],
) -> Result:
    """GeoTIFF path: read windows, super-resolve, write windows; never the whole scene."""
    with adapter_in.open_source(src, bands=bands) as source:
        scale = broadcast_scale(factors, len(source.shape) - 1, src)
        out_spatial = scaled_shape(source.shape[1:], scale)
        norm = fit_normalizer(config, source, "geo", scale)
        upsampler, prov = build_upsampler(config, scale, len(scale), source=source, norm=norm, domain="geo")
        meta = copy.deepcopy(source.meta)
        nodata = meta.get("geotiff", {}).get("nodata")
        nodata = float("nan") if nodata == "nan" else nodata
        out_dtype = np.dtype("float32") if config.output.dtype == "float32" else np.dtype(source.dtype)
        if (
            nodata is not None
            and out_dtype.kind in "iu"
            and not (np.iinfo(out_dtype).min <= nodata <= np.iinfo(out_dtype).max)
        ):
            raise file_error(ConfigError, src, f"nodata {nodata} does not fit the output dtype {out_dtype}")
        radiometry = _radiometry(
            config, norm, upsampler, out_dtype=out_dtype, nodata=nodata, has_mask=source.may_have_invalid
        )
        resolver = _resolver(config, upsampler, scale, progress)
        prov = {**_provenance(prov, scale, radiometry), "request": request}
        meta.update(dtype=out_dtype.name, provenance=prov)
        out_shape = (resolver.output_channels(source.shape[0]), *out_spatial)
        with io.atomic_path(dst, overwrite=overwrite) as tmp:
            with adapter_out.open_sink(
                tmp, out_shape, scale_affine(source.affine, scale), meta, out_dtype, cog=cog, name=dst
            ) as sink:
                resolver.run(source, sink, radiometry)
        return Result(dst, tuple(source.shape[1:]), tuple(out_spatial), prov)


def super_resolve(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    scale: str | int | Sequence[int],
    config: SRConfig | None = None,
    *,
    series: str | None = None,
    bands: str | Sequence[int] | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    cog: bool = True,
    request: dict[str, Any] | None = None,
) -> Result:
    """Upscale the image at ``src`` by ``scale`` and write it to ``dst`` with exact geometry.

    Args:
        src: ``.nii``/``.nii.gz`` file, a folder holding a DICOM series, or a ``.tif`` GeoTIFF.
        dst: ``.nii``/``.nii.gz`` file, a folder name for a DICOM series, or a ``.tif`` file.
        scale: one factor or one per spatial axis in index order, fastest first (``"1,1,4"``).
        config: model, normalisation, inference and output settings (defaults if None).
        series: SeriesInstanceUID to pick from a DICOM folder with several series.
        bands: 1-based GeoTIFF bands to keep (``"1,2,3"``); None keeps all.
        overwrite: replace an existing ``dst``.
        progress: progress bar (None = only on a terminal).
        cog: GeoTIFF output as a Cloud-Optimized GeoTIFF with overviews (else a tiled GeoTIFF).
        request: :func:`request_for` of these arguments when the caller already has it (saves
            hashing the input twice); recorded in the provenance.

    Raises:
        GeoMedSRError subclasses with a one-line message naming the file and the problem.
    """
    config = config or SRConfig()
    src_path, dst_path = Path(src), Path(dst)
    try:
        factors = parse_scale(scale)
        band_list = parse_bands(bands)
    except ConfigError as exc:
        raise file_error(ConfigError, src_path, str(exc)) from exc
    adapter_in = io.adapter_for_input(src_path)
    adapter_out = io.check_output(dst_path, inputs=(src_path,), overwrite=overwrite)
    streaming = bool(getattr(adapter_in, "streaming", False))
    if streaming != bool(getattr(adapter_out, "streaming", False)):
        want = "a .tif output" if streaming else "a .nii/.nii.gz or folder output"
        raise file_error(OutputError, dst_path, f"a {adapter_in.name} input needs {want}")
    if series and not adapter_in.is_folder:
        raise file_error(ConfigError, src_path, "--series only applies to DICOM folders")
    if band_list is not None and not streaming:
        raise file_error(ConfigError, src_path, "--bands only applies to GeoTIFF inputs")
    request = request or request_for(src_path, scale, config, series=series, bands=bands, cog=cog)
    if streaming:
        return _stream(
            adapter_in,
            adapter_out,
            src_path,
            dst_path,
            factors,
            config,
            bands=band_list,
            overwrite=overwrite,
            progress=progress,
            cog=cog,
            request=request,
        )
    image = adapter_in.read(src_path, **({"series": series} if adapter_in.is_folder else {}))
    factors = broadcast_scale(factors, image.spatial_dims, src_path)
    scaled_shape(image.spatial_shape, factors)
    check_finite(image, src_path)
    hr, prov = upscale_image(image, factors, config, progress=progress)
    prov = {**prov, "request": request}
    hr.meta["provenance"] = prov
    io.write(hr, dst_path, overwrite=overwrite)
    return Result(dst_path, image.spatial_shape, hr.spatial_shape, prov)
