"""super_resolve(src, dst, ...): the tool the CLI, notebooks and scripts call.

One path for every format: check -> resolve the method once (:func:`~geo_med_sr.upscale.methods.resolve_method`)
-> open the input (:func:`geo_med_sr.io.open_source`) -> fit the normaliser -> build the upsampler
-> open the output (:func:`geo_med_sr.io.open_sink`, atomic) -> the engine (normalise, fill
nodata, network, inverse, re-mask, cast; window by window) -> exact geometry.

GeoTIFF scenes are read and written window by window, so memory does not grow with scene size;
medical volumes are opened in memory. :func:`upscale_image` runs the same steps on an
in-memory image (what ``evaluate`` uses).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from geo_med_sr import io
from geo_med_sr.dtypes import compute_dtype
from geo_med_sr.errors import ConfigError, InputError, OutputError, ScaleError, file_error
from geo_med_sr.geometry import scale_affine, scaled_shape
from geo_med_sr.geometry import spacing as voxel_spacing
from geo_med_sr.inference.arrays import ArraySink, ArraySource
from geo_med_sr.inference.memory import available_bytes
from geo_med_sr.inference.protocols import ImageSink, ImageSource, Source, Window
from geo_med_sr.inference.radiometry import Radiometry, sample_valid_values
from geo_med_sr.inference.resolver import SuperResolver
from geo_med_sr.normalize import Normalizer, build_normalizer
from geo_med_sr.provenance import build_provenance
from geo_med_sr.scale import factors_for_spacing, parse_scale
from geo_med_sr.scale import for_input as scale_for_input
from geo_med_sr.scale import for_shape as scale_for_shape
from geo_med_sr.spatial import SpatialArray
from geo_med_sr.upscale.config import SRConfig, as_config
from geo_med_sr.upscale.guided import PreparedGuide, check_request, prepare_guide
from geo_med_sr.upscale.methods import Method, build_upsampler, resolve_method
from geo_med_sr.upscale.request import request_for


@dataclass(frozen=True)
class Result:
    """What :func:`super_resolve` did: paths, grids and the provenance written into the output."""

    output: Path
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    provenance: dict[str, Any]


def check_finite(source: ImageSource, path: object) -> None:
    """Refuse NaN/Inf in valid voxels of an in-memory input: a network would spread them over
    their neighbourhood (windowed GeoTIFF inputs mark NaN as nodata instead)."""
    window = Window.from_shape(source.shape[1:])
    values, valid = source.read(window), source.read_valid(window)
    values = values if valid is None else values[:, valid]
    if values.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise file_error(
                InputError,
                path,
                f"contains {bad} NaN/Inf voxel(s); replace them with finite values before super-resolving",
            )


#: most pixels read at once while looking for a valid one beyond the bounded sample (a 512 x 512 window).
SCAN_PIXELS = 1 << 18


def scan_windows(spatial: Sequence[int], max_pixels: int = SCAN_PIXELS) -> list[Window]:
    """Windows covering an image of ``spatial`` shape, in order, each of at most about ``max_pixels``
    pixels: the first two axes are cut into squares, the others are taken whole."""
    spatial = [int(n) for n in spatial]
    rest = int(np.prod(spatial[2:], dtype=np.int64)) if len(spatial) > 2 else 1
    side = max(1, int((max_pixels / rest) ** (1 / min(2, len(spatial)))))
    axes = [range(0, n, side) if a < 2 else range(0, 1) for a, n in enumerate(spatial)]
    windows = []
    for starts in np.ndindex(*[len(r) for r in axes]):
        box = []
        for a, (k, n) in enumerate(zip(starts, spatial)):
            lo = axes[a][k]
            box.append((lo, min(lo + side, n)) if a < 2 else (0, n))
        windows.append(Window(box))
    return windows


def check_any_valid(source: ImageSource) -> None:
    """Refuse an input with no valid pixel (every pixel nodata, masked, NaN or infinite), for every
    method, before an output is opened: a classical method would write an all-nodata image.

    The bounded sample a normaliser fits on (:func:`~geo_med_sr.inference.radiometry.sample_valid_values`)
    settles it for an ordinary image; only when it holds no valid, finite pixel are windows
    (:func:`scan_windows`) read in turn, so the whole image is read only when it is refused.

    Raises:
        InputError: nothing to super-resolve (the caller's :func:`geo_med_sr.io.naming` names the file).
    """
    if not source.may_have_invalid and np.dtype(source.dtype).kind != "f":
        return
    if sample_valid_values(source).shape[1]:
        return
    for window in scan_windows(source.shape[1:]):
        values = source.read(window)
        valid = source.read_valid(window)
        ok = np.ones(values.shape[1:], bool) if valid is None else np.asarray(valid, bool)
        if values.dtype.kind == "f":
            ok = ok & np.isfinite(values).all(axis=0)
        if ok.any():
            return
    raise InputError(
        "has no valid pixel (every pixel is nodata, masked, NaN or infinite): there is nothing to super-resolve"
    )


def fit_normalizer(method: Method, source: ImageSource) -> tuple[Normalizer, dict[str, Any]]:
    """The normaliser ``method`` feeds its upsampler and its statistics on ``source``'s valid pixels.

    Classical interpolation is linear in the values, so it gets the identity (no statistics
    needed); a checkpoint gets the normalisation it was trained with; ``self`` the configured one.
    """
    normalizer = build_normalizer(method.normalize["name"], **method.normalize.get("params", {}))
    if method.kind == "classical":
        return normalizer, normalizer.fit(np.zeros((source.shape[0], 1), np.float32))
    return normalizer, normalizer.fit(sample_valid_values(source))


#: in-plane side (voxels) of the central box the slice thickness is estimated on.
ESTIMATE_SIDE = 256
#: an estimated thickness this close to the slice spacing (relative) is taken as contiguous slices: the
#: estimator's measured precision on real brain MRI (it read 4.0 mm slices as 3.0-3.3 mm; README).
CONTIGUOUS_WITHIN = 0.25


def slice_profile(source: ImageSource, method: Method, given_mm: float | None = None) -> tuple[float | None, Any]:
    """The slice thickness through-plane ``self`` trains with: ``(HR pixels or None, provenance or None)``.

    In order: ``given_mm`` (``--slice-thickness``), the DICOM SliceThickness with the slice spacing,
    else :func:`~geo_med_sr.slice_profile.estimate_thickness` on a central box of the volume (at most
    ``ESTIMATE_SIDE`` voxels in plane, every slice), taken as contiguous slices when it is within
    :data:`CONTIGUOUS_WITHIN` of the spacing. Other methods take no slice profile.

    Raises:
        ConfigError: ``given_mm`` that is not a positive number, or given for a method that has no
            slice profile.
    """
    if method.kind != "self" or method.protocol != "through-plane":
        if given_mm is not None:
            raise ConfigError("--slice-thickness applies to --method self with one thick axis (e.g. --scale 1,1,4)")
        return None, None
    axis, s = method.through_plane_axis, method.scale[method.through_plane_axis]
    spacing = [float(v) for v in voxel_spacing(np.asarray(source.affine))]
    dicom = source.meta.get("dicom") if isinstance(source.meta.get("dicom"), dict) else {}
    step = float(dicom.get("slice_spacing") or spacing[axis])
    extra: dict[str, Any] = {}
    if given_mm is not None:
        if not (np.isfinite(given_mm) and given_mm > 0):
            raise ConfigError(f"--slice-thickness must be a positive number of mm, got {given_mm!r}")
        thickness, how = float(given_mm), "given (--slice-thickness)"
    elif dicom.get("slice_thickness") and dicom.get("slice_spacing"):
        thickness, how = float(dicom["slice_thickness"]), "DICOM SliceThickness"
    else:
        from geo_med_sr.slice_profile import estimate_thickness

        box = [
            (max(0, (n - ESTIMATE_SIDE) // 2), max(0, (n - ESTIMATE_SIDE) // 2) + min(n, ESTIMATE_SIDE))
            if a != axis
            else (0, n)
            for a, n in enumerate(source.shape[1:])
        ]
        values = source.read(Window(box))[0]
        estimate = estimate_thickness(values, axis, (*spacing[:axis], step, *spacing[axis + 1 :]))
        if not np.isfinite(estimate):
            thickness, how = step, "contiguous slices assumed (nothing to estimate the thickness from)"
        elif abs(estimate / step - 1) <= CONTIGUOUS_WITHIN:
            thickness, how = (
                step,
                f"estimated, within {CONTIGUOUS_WITHIN:.0%} of the spacing: contiguous slices assumed",
            )
        else:
            thickness, how = estimate, "estimated"
        if np.isfinite(estimate):
            extra["estimated_mm"] = round(float(estimate), 4)
    info = {"thickness_mm": round(thickness, 4), "slice_spacing_mm": round(step, 4), "source": how, **extra}
    return thickness / (step / s), {**info, "thickness_hr_px": round(thickness / (step / s), 4)}


def output_nodata(source: ImageSource, sink: ImageSink | ArraySink) -> float | None:
    """The value written at invalid output pixels: the sink's nodata; NaN for a float input and output
    without one (a GeoTIFF whose NaN pixels declare no nodata), so that they stay NaN instead of taking
    the values the nodata fill invented under them."""
    if sink.nodata is not None or sink.dtype is None:
        return sink.nodata
    floats = np.dtype(source.dtype).kind == "f" and np.dtype(sink.dtype).kind == "f"
    return float("nan") if floats and source.may_have_invalid else None


@dataclass
class _Engine:
    """Everything that runs on one opened input: the resolver, the fitted normaliser, the nodata
    fill radius and the provenance the output records."""

    resolver: SuperResolver
    normalizer: Normalizer
    stats: dict[str, Any]
    fill_radius: int
    provenance: dict[str, Any]
    guides: tuple[Source, ...] = ()

    def output_shape(self, source: ImageSource) -> tuple[int, ...]:
        """``(C_out, *S*scale)`` of the output of ``source``."""
        return (self.resolver.output_channels(source.shape[0]), *self.resolver.output_shape(source.shape[1:]))

    def run(self, source: ImageSource, sink: ImageSink | ArraySink) -> None:
        """Super-resolve ``source`` into ``sink``, cast to the sink's dtype (None: values in the compute
        dtype of ``source``'s storage, :func:`geo_med_sr.dtypes.compute_dtype`). Invalid pixels get the
        sink's nodata (:func:`output_nodata`)."""
        radiometry = Radiometry(
            self.normalizer,
            self.stats,
            fill_radius=self.fill_radius,
            out_dtype=sink.dtype,
            nodata=output_nodata(source, sink),
            compute_dtype=compute_dtype(source.dtype),
        )
        self.resolver.run(source, sink, radiometry, guides=self.guides)


def _engine(
    source: ImageSource,
    method: Method,
    config: SRConfig,
    progress: bool | None,
    slice_thickness: float | None = None,
    guide: GuideInput | None = None,
    prepared: PreparedGuide | None = None,
) -> _Engine:
    """Fit the normaliser, build (or train) the upsampler and the resolver for ``source``
    (``slice_thickness``: mm, see :func:`slice_profile`; ``guide``: the guide given, ``prepared``: it
    brought into the target's space by :func:`prepare_guide_for` for a guided method). An input with no
    valid pixel is refused first (:func:`check_any_valid`), whatever the method."""
    check_any_valid(source)
    if method.guided and prepared is None:
        raise ConfigError("a guided method needs its guide brought into the target's space first")
    thickness_px, profile = slice_profile(source, method, slice_thickness)
    normalizer, stats = fit_normalizer(method, source)
    upsampler, prov = build_upsampler(
        method,
        source=source,
        norm=(normalizer, stats),
        slice_thickness=thickness_px,
        device=config.inference.device,
        guide=None if prepared is None else prepared.on_target,
    )
    inf = config.inference
    fill = inf.fill_radius
    if fill is None:
        fill = int(upsampler.receptive_radius) if source.may_have_invalid else 0
    resolver = SuperResolver(
        upsampler,
        method.scale,
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
    provenance = build_provenance("upscale", **prov, scale=list(method.scale), normalization=stats)
    if profile is not None:
        provenance["slice_profile"] = profile
    guides: tuple[Source, ...] = ()
    if prepared is not None:
        provenance["guide"] = prepared.provenance
        guides = (prepared.on_output,)
    elif guide is not None:
        provenance["guide"] = {"path": str(guide.path), "used": False, "why": f"{method.name} does not use a guide"}
    return _Engine(resolver, normalizer, stats, fill, provenance, guides)


@dataclass(frozen=True)
class GuideInput:
    """A guide volume and how to bring it into the target's space (``--guide`` and its options)."""

    image: SpatialArray | None
    path: Path
    registered: bool = False
    allow_other_study: bool = False


def prepare_guide_for(source: ImageSource, method: Method, guide: GuideInput | None) -> PreparedGuide | None:
    """The guide channels of a guided method on ``source`` (read whole: medical volumes are in memory);
    None for a method that does not use a guide. Errors name the guide."""
    if not method.guided:
        return None
    if guide is None or guide.image is None:
        raise ConfigError("a guided method needs a guide volume (--guide)")
    window = Window.from_shape(source.shape[1:])
    target = SpatialArray(
        source.read(window).astype(np.float32), np.asarray(source.affine), dict(source.meta), source.read_valid(window)
    )
    return prepare_guide(
        target,
        guide.image,
        method.scale,
        normalize=method.normalize,
        registered=guide.registered,
        allow_other_study=guide.allow_other_study,
        guide_path=guide.path,
    )


def with_guide(method: Method, guided: bool) -> Method:
    """``method`` marked guided when a guide is given and the method uses one (through-plane ``self``)."""
    if not guided or method.kind != "self":
        return method
    if method.protocol != "through-plane" or method.through_plane_axis is None:
        raise ConfigError(f"--guide restores one thick axis of a 3D volume (e.g. --scale 1,1,4), got {method.scale}")
    return replace(method, guided=True, protocol="through-plane")


def guided_config(config: SRConfig, guided: bool) -> SRConfig:
    """With a guide and no method chosen (the default ``model`` without ``--model``), guided ``self``."""
    if guided and config.model.method == "model" and not config.model.name:
        return config.updated(model={"method": "self"})
    return config


def _output_dtype(config: SRConfig, source: ImageSource) -> np.dtype:
    return np.dtype("float32") if config.output.dtype == "float32" else np.dtype(source.dtype)


def _output_meta(meta: dict[str, Any], dtype: np.dtype, provenance: dict[str, Any]) -> dict[str, Any]:
    """What the output's metadata changes from the input's: its dtype and provenance (and a
    float output of a scaled NIfTI is written unscaled)."""
    update: dict[str, Any] = {"dtype": dtype.name, "provenance": provenance}
    if dtype == np.float32 and "nifti" in meta:
        update["nifti"] = {**meta["nifti"], "scaled": False}
    return update


def upscale_image(
    image: SpatialArray,
    scale: tuple[int, ...],
    config: SRConfig,
    *,
    progress: bool | None = None,
    method: Method | None = None,
    guide: GuideInput | None = None,
) -> tuple[SpatialArray, dict[str, Any]]:
    """Super-resolve an in-memory image; returns the HR image (float32 values) and provenance.

    ``method`` is :func:`~geo_med_sr.upscale.methods.resolve_method` of ``config`` for this image when
    the caller has it already; ``guide`` a guide volume (guided ``self``: the default then).
    """
    config = guided_config(as_config(config), guide is not None)
    method = method or resolve_method(config, domain=io.domain_of(image.meta), scale=scale)
    method = with_guide(method, guide is not None)
    source = ArraySource.from_image(image)
    prepared = prepare_guide_for(source, method, guide)
    engine = _engine(source, method, config, progress, guide=guide, prepared=prepared)
    sink = ArraySink(engine.output_shape(source), dtype=None, values=compute_dtype(source.dtype))
    engine.run(source, sink)
    update = _output_meta(image.meta, _output_dtype(config, source), engine.provenance)
    return image.with_array(sink.array, scale, meta_update=update), engine.provenance


def super_resolve(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    scale: str | int | Sequence[int] | None = None,
    config: SRConfig | dict[str, Any] | str | os.PathLike | None = None,
    *,
    series: str | None = None,
    bands: str | int | Sequence[int] | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    cog: bool = True,
    request: dict[str, Any] | None = None,
    method: Method | None = None,
    write_options: dict[str, Any] | None = None,
    target_spacing: float | None = None,
    slice_thickness: float | None = None,
    guide: str | os.PathLike | None = None,
    guide_registered: bool = False,
    allow_other_study: bool = False,
) -> Result:
    """Upscale the image at ``src`` by ``scale`` and write it to ``dst`` with exact geometry.

    Args:
        src: ``.nii``/``.nii.gz`` file, a folder holding a DICOM series, or a ``.tif`` GeoTIFF.
        dst: ``.nii``/``.nii.gz`` file, a folder name for a DICOM series, or a ``.tif`` file.
        scale: one factor or one per spatial axis in index order, fastest first (``"1,1,4"``);
            a single factor leaves an axis of length 1 (a 2D image, one slice) alone.
        config: model, normalisation, inference and output settings: an SRConfig, a dict of
            sections, a YAML path or a bundled name (defaults if None).
        series: SeriesInstanceUID to pick from a DICOM folder with several series.
        bands: 1-based GeoTIFF bands to keep (``"1,2,3"``, ``[1, 2]`` or ``3``); None keeps all.
        overwrite: replace an existing ``dst`` that this tool wrote (never anything else).
        progress: progress bar (None = only on a terminal).
        cog: GeoTIFF output as a Cloud-Optimized GeoTIFF with overviews (else a tiled GeoTIFF).
        request: :func:`~geo_med_sr.upscale.request.request_for` of these arguments when the caller
            already has it (saves hashing the input twice); recorded in the provenance.
        method: :func:`~geo_med_sr.upscale.methods.resolve_method` for this input when the caller has it.
        write_options: for a DICOM output: ``modality`` ("MR", "CT", "OT"), ``template`` (a
            DICOM series folder giving patient and study), ``patient_id``, ``patient_name``.
        target_spacing: medical volumes, instead of ``scale`` (None): the whole factor per axis
            that brings the voxel spacing closest to this many mm
            (:func:`~geo_med_sr.scale.factors_for_spacing`); the choice is in the provenance.
        slice_thickness: through-plane ``self``: the slice thickness in mm (None: from DICOM, else
            estimated from the data; see :func:`slice_profile`), recorded in the provenance.
        guide: a finer volume of the same patient (NIfTI file or DICOM series folder, any orientation,
            spacing and field of view; never written) that restores the thick axis
            (:mod:`geo_med_sr.upscale.guided`): guided ``self`` is then the default method; classical
            methods ignore it (recorded).
        guide_registered: the guide already shares the target's world space (no registration).
        allow_other_study: go on when a DICOM guide's PatientID / StudyInstanceUID differ from the target's.

    Raises:
        GeoMedSRError subclasses with a one-line message naming the file and the problem.
    """
    from geo_med_sr import options_check as check

    # the arguments' types and ranges, before any file is opened: one-line ConfigErrors naming the keyword
    src_path, dst_path = Path(check.path(src, "src=")), Path(check.path(dst, "dst="))
    target_spacing = check.MM.check_optional(target_spacing, "target_spacing=")
    slice_thickness = check.MM.check_optional(slice_thickness, "slice_thickness=")
    check.text(series, "series=", optional=True)
    guide_path = None if guide is None else Path(check.path(guide, "guide="))
    for key, value in (
        ("overwrite", overwrite),
        ("cog", cog),
        ("guide_registered", guide_registered),
        ("allow_other_study", allow_other_study),
    ):
        check.flag(value, f"{key}=")
    check.flag(progress, "progress=", optional=True)
    config = guided_config(as_config(config), guide_path is not None)
    check.BUDGET.check_optional(config.model.budget, "config model.budget=")  # the schema lets inf through
    check.STEPS.check_optional(config.model.steps, "config model.steps=")
    try:
        if (scale is None) == (target_spacing is None):
            raise ConfigError("give a scale or a target spacing (--scale or --target-spacing), one of them")
        given = parse_scale(scale) if target_spacing is None else (1,)
        band_list = io.parse_bands(bands)
    except ConfigError as exc:
        raise file_error(type(exc), src_path, str(exc)) from exc
    adapter_in = io.adapter_for_input(src_path)
    if target_spacing is not None and adapter_in.domain != "medical":
        raise file_error(ConfigError, src_path, "--target-spacing is for NIfTI/DICOM volumes; use --scale")
    if guide_path is not None:
        check_request(guide_path, adapter_in.domain, None if target_spacing is not None else given, config.model.method)
    elif guide_registered or allow_other_study:
        raise file_error(ConfigError, src_path, "--guide-registered and --allow-other-study apply to --guide")
    inputs = (src_path,) if guide_path is None else (src_path, guide_path)
    adapter_out = io.check_output(dst_path, inputs=inputs, overwrite=overwrite)
    if adapter_in.domain != adapter_out.domain:
        want = "a .tif output" if adapter_in.domain == "geo" else "a .nii/.nii.gz or folder output"
        raise file_error(OutputError, dst_path, f"a {adapter_in.name} input needs {want}")
    if series and not adapter_in.is_folder:
        raise file_error(ConfigError, src_path, "--series only applies to DICOM folders")
    if band_list is not None and not adapter_in.band_selection:
        raise file_error(ConfigError, src_path, "--bands only applies to GeoTIFF inputs")
    options = _write_options(adapter_out, dst_path, write_options, cog)
    factors = scale_for_input(given, adapter_in.spatial_dims, src_path)
    method = method or resolve_method(config, domain=adapter_in.domain, scale=factors, bands=band_list)
    guided = guide_path is not None
    with io.open_source(src_path, series=series, bands=band_list) as source:
        chosen = None
        if target_spacing is not None:
            chosen = _spacing_choice(source.affine, target_spacing, src_path)
            fitted = tuple(chosen["scale"])
        else:
            fitted = scale_for_shape(factors, given, source.shape[1:], src_path)
        if fitted != tuple(method.scale):
            method = resolve_method(config, domain=adapter_in.domain, scale=fitted, bands=band_list)
            request = None
        method = with_guide(method, guided)
        factors = fitted
        request = request or request_for(src_path, factors, config, series=series, bands=bands, cog=cog, method=method)
        guide_input = None
        if guide_path is not None:
            request = {**request, "guide": _guide_request(guide_path, method, guide_registered, allow_other_study)}
            with io.naming(guide_path):
                image = io.read(guide_path) if method.guided else None
            guide_input = GuideInput(image, guide_path, guide_registered, allow_other_study)
        out_spatial = scaled_shape(source.shape[1:], factors)
        out_shape = (source.shape[0], *out_spatial)  # networks here keep the channel count
        io.check_output_size(  # the size part of the output pre-flight: disk, and memory for a DICOM series
            dst_path,
            adapter_out,
            out_shape,
            _output_dtype(config, source),
            compute_dtype=compute_dtype(source.dtype),
            memory=available_bytes(),
        )
        if not adapter_in.reads_windows:
            check_finite(source, src_path)
        prepared = prepare_guide_for(source, method, guide_input)  # its errors name the guide
        with io.naming(src_path):  # what the input cannot give (no valid pixel, too small to train on) names it
            engine = _engine(source, method, config, progress, slice_thickness, guide_input, prepared)
        provenance = {**engine.provenance, "inputs": [str(src_path)], "request": request}
        if chosen is not None:
            provenance["target_spacing"] = chosen
        dtype = _output_dtype(config, source)
        meta = {**copy.deepcopy(source.meta), **_output_meta(source.meta, dtype, provenance)}
        affine = scale_affine(source.affine, factors)
        if adapter_out.is_folder:
            options["input_sha256"] = request.get("input_sha256")
        with io.open_sink(
            dst_path, engine.output_shape(source), affine, meta, dtype, overwrite=overwrite, **options
        ) as sink:
            engine.run(source, sink)
    return Result(dst_path, tuple(source.shape[1:]), tuple(out_spatial), provenance)


def _guide_request(path: Path, method: Method, registered: bool, allow_other_study: bool) -> dict[str, Any]:
    """What of the guide decides the output (recorded in the request: a changed guide is a new job)."""
    from geo_med_sr.digest import hash_input

    if not method.guided:
        return {"used": False}
    return {"sha256": hash_input(path), "registered": registered, "allow_other_study": allow_other_study}


def _spacing_choice(affine: np.ndarray, target: float, path: Path) -> dict[str, Any]:
    """``{"target_mm", "input_mm", "scale", "output_mm"}``: the factors that bring the spacing of the
    grid ``affine`` (voxel sizes = column norms) closest to ``target`` mm."""
    spacing = [float(v) for v in voxel_spacing(np.asarray(affine))]
    try:
        factors = factors_for_spacing(spacing, target)
    except ScaleError as exc:
        raise file_error(ScaleError, path, str(exc)) from exc
    return {
        "target_mm": float(target),
        "input_mm": [round(v, 6) for v in spacing],
        "scale": list(factors),
        "output_mm": [round(v / k, 6) for v, k in zip(spacing, factors)],
    }


def _write_options(adapter: type, path: Path, options: dict[str, Any] | None, cog: bool) -> dict[str, Any]:
    """The options the output's adapter gets: ``cog`` for GeoTIFF, ``write_options`` for DICOM."""
    options = dict(options or {})
    unknown = set(options) - DICOM_OPTIONS
    if unknown:
        raise file_error(
            ConfigError, path, f"unknown write option(s) {sorted(unknown)}; known: {sorted(DICOM_OPTIONS)}"
        )
    given = {k: v for k, v in options.items() if v is not None}
    if adapter.domain == "geo":
        return {"cog": cog}
    if given and not adapter.is_folder:
        names = ", ".join("--" + k.replace("_", "-") for k in sorted(given))
        raise file_error(ConfigError, path, f"{names} only apply to DICOM series outputs (a folder name)")
    return given


#: write options of DICOM outputs (see :func:`super_resolve`).
DICOM_OPTIONS = {"modality", "template", "patient_id", "patient_name"}
