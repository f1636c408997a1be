"""``geo-med-sr sharpen``: restore coarse bands with the sensor's own finer bands, into one multiband COG.

One call (:func:`sharpen`) for the command line and the Python API::

    inputs --io.discover_product--> band files (S2 folder / SAFE / STAC item / files, --pan, --guide)
           --io.open_band--> Scene (one windowed reader + grid per band)
           --plan--> output grid (finest grid where every band has data), guides, groups
           --plan_sharpening--> SharpenPlan, decided once from headers: per group what learns where,
                              the weights and their SHA-256 (refusals happen here) --> request fingerprint
           --build_group--> per group, through the method's registry record: bicubic | brovey | glp
                              (gains fitted at reduced resolution) | model | self (trained on the scene)
           --sharpen_scene--> tiles of every output band --io.open_sink--> COG (atomic, ours only)

Band descriptions are the band names, central wavelengths go into the band metadata, stored
numbers keep the input's convention (S2 L2A: DN with the BOA offset; GDAL scale/offset tags say
how to get reflectance) and the provenance (:func:`geo_med_sr.provenance.build_provenance`, the
shape ``upscale`` writes too) says what ran (method, gains, training steps) and the request.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo_med_sr import io
from geo_med_sr.errors import ConfigError
from geo_med_sr.provenance import build_provenance
from geo_med_sr.sharpening.builders import build_group
from geo_med_sr.sharpening.engine import StageClock, output_spec, sharpen_scene
from geo_med_sr.sharpening.plan import SharpenPlan, check_settings, guide_names, plan_sharpening
from geo_med_sr.sharpening.registry import DEFAULT_METHOD, SHARPEN_METHODS
from geo_med_sr.sharpening.request import FILES_KEY, sharpen_request
from geo_med_sr.sharpening.scene import Band, Layout, Scene, band_stats, plan

__all__ = ["SHARPEN_METHODS", "SharpenResult", "open_scene", "sharpen", "sharpen_request_for"]


@dataclass
class SharpenResult:
    """What :func:`sharpen` wrote: the output, its grid size ``(W, H)``, band names and provenance."""

    output: Path
    shape: tuple[int, int]
    bands: list[str]
    provenance: dict[str, Any]
    #: wall-clock seconds per group and stage (``{"B05,...": {"train": s}}``): kept out of the file, so the
    #: same job gives the same bytes.
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    #: wall-clock seconds of the whole job per stage, also kept out of the file: ``prepare`` (open the bands,
    #: plan, band statistics, the request's file hashes), ``train`` (each group's method: self-training,
    #: GLP gains, loading weights), ``read``, ``inputs``, ``network``, ``write`` (the tiles; see
    #: :class:`~geo_med_sr.sharpening.engine.StageClock`), ``cog`` (finishing the file: the flush and, with
    #: ``cog``, the overviews and the COG copy) and ``total`` (the call; the stages run inside it).
    stages: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def open_scene(
    inputs: Sequence[str | os.PathLike],
    *,
    pan: str | os.PathLike | None = None,
    guide: str | os.PathLike | None = None,
    bands: Sequence[str] | None = None,
    offset: float | None = None,
    item: str | None = None,
) -> Iterator[Scene]:
    """The bands named by ``inputs`` (and ``pan``/``guide``) opened for windowed reading (a context).

    ``Scene.meta`` holds what the product says (kind, baseline, offsets, inputs) and under
    ``"files"`` each band's ``[name, path, index]`` (what the request fingerprint hashes);
    ``item``: the id of the item of a STAC ItemCollection input.
    """
    product = io.discover_product(inputs, pan=pan, guide=guide, bands=bands, offset=offset, item=item)
    opened: list[Band] = []
    try:
        for spec in product.bands:
            source, grid = io.open_band(spec.path, spec.index)
            opened.append(
                Band(
                    spec.name,
                    spec.role,
                    grid,
                    source,
                    float(spec.gain),
                    float(spec.offset),
                    spec.wavelength_nm,
                    spec.nodata,
                    source.dtype.name,
                )
            )
        files = [[spec.name, str(spec.path), int(spec.index)] for spec in product.bands]
        yield Scene(opened, {**product.meta, "kind": product.kind, FILES_KEY: files})
    finally:
        for band in opened:
            band.source.close()


def _band_meta(scene: Scene, layout: Layout, spec) -> dict[str, Any]:
    bands = [scene.bands[i] for i in layout.outputs]
    scaled = any(b.gain != 1.0 or b.offset != 0.0 for b in bands)
    band_tags = []
    for b in bands:
        tags = {"BAND_NAME": b.name}
        if b.wavelength_nm is not None:
            tags.update(
                {
                    "CENTRAL_WAVELENGTH_UM": f"{b.wavelength_nm / 1000:g}",
                    "WAVELENGTH": f"{b.wavelength_nm:g}",
                    "WAVELENGTH_UNITS": "nm",
                }
            )
        if b.role == "categorical":
            tags["CATEGORICAL"] = "YES"
        band_tags.append(tags)
    return {
        "crs": layout.grid.crs,
        "nodata": spec.nodata,
        "descriptions": [b.name for b in bands],
        "scales": [b.gain for b in bands] if scaled else None,
        "offsets": [b.offset * b.gain for b in bands] if scaled else None,
        "band_tags": band_tags,
        "tags": {},
        "area_or_point": "Area",
        "transform": list(layout.grid.transform),
        "size": list(layout.grid.shape),
    }


def check_options(
    *,
    bands: Sequence[str] | str | None,
    method: str,
    budget: float | None,
    steps: int | None,
    model: str | None,
    offset: float | None,
    device: str,
    amp: bool,
    seed: int,
    cog: bool,
    item: str | None = None,
) -> dict[str, Any]:
    """The options of :func:`sharpen` that decide what it writes, checked before any file is touched
    (the rule of each keyword, then the method's :func:`~geo_med_sr.sharpening.plan.check_settings`),
    returned normalised by keyword (``model`` a path string, numbers as their rules return them).
    ``geo-med-sr batch --sharpen`` checks them once for every product.

    Raises:
        ConfigError: one line naming the keyword (``budget=inf: ...``), or the method's refusal of
            the budget/steps/model combination (:func:`~geo_med_sr.sharpening.plan.check_settings`).
    """
    from geo_med_sr import options_check as check

    bands = check.names(bands, "bands=")
    check.text(method, "method=")
    model = None if model is None else os.fspath(check.path(model, "model="))
    check.text(device, "device=")
    budget = check.BUDGET.check_optional(budget, "budget=")
    steps = check.STEPS_OR_ZERO.check_optional(steps, "steps=")
    offset = check.OFFSET.check_optional(offset, "offset=")
    seed = check.SEED.check(seed, "seed=")
    for key, value in (("amp", amp), ("cog", cog)):
        check.flag(value, f"{key}=")
    check.text(item, "item=", optional=True)
    check_settings(method, budget, steps, model)
    return dict(
        bands=bands,
        method=method,
        budget=budget,
        steps=steps,
        model=model,
        offset=offset,
        device=device,
        amp=amp,
        seed=seed,
        cog=cog,
        item=item,
    )


def _decide(scene: Scene, layout: Layout, where: Path, options: dict[str, Any]) -> SharpenPlan:
    """The :class:`~geo_med_sr.sharpening.plan.SharpenPlan` of ``scene`` for the checked ``options`` (headers only)."""
    wanted = inspect.signature(plan_sharpening).parameters  # method, model, budget, steps, seed, device, amp
    with io.naming(where):
        return plan_sharpening(scene, layout, **{k: v for k, v in options.items() if k in wanted})


def sharpen_request_for(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    pan: str | os.PathLike | None = None,
    guide: str | os.PathLike | None = None,
    bands: Sequence[str] | str | None = None,
    method: str = DEFAULT_METHOD,
    budget: float | None = None,
    steps: int | None = None,
    model: str | None = None,
    offset: float | None = None,
    device: str = "auto",
    amp: bool = False,
    cog: bool = True,
    seed: int = 0,
    item: str | None = None,
) -> dict[str, Any]:
    """The request :func:`sharpen` records for these arguments.

    :func:`~geo_med_sr.sharpening.request.sharpen_request` of the scene and its plan, from band
    headers, metadata and band file hashes only: no pixel is decoded, nothing trains, torch is not
    imported. ``geo-med-sr batch --sharpen`` compares it with an existing output's to skip it.

    Args:
        inputs, pan, guide, bands, method, budget, steps, model, offset, device, amp, cog, seed, item:
            as for :func:`sharpen` (device and amp do not change the request).

    Raises:
        GeoMedSRError subclasses, as :func:`sharpen` would raise them before its first pixel.
    """
    from geo_med_sr import options_check as check

    paths = [Path(p) for p in check.paths(inputs, "inputs=")]
    options = check_options(
        bands=bands,
        method=method,
        budget=budget,
        steps=steps,
        model=model,
        offset=offset,
        device=device,
        amp=amp,
        seed=seed,
        cog=cog,
        item=item,
    )
    o = options
    with open_scene(paths, pan=pan, guide=guide, bands=o["bands"], offset=o["offset"], item=o["item"]) as scene:
        return sharpen_request(scene, _decide(scene, plan(scene), paths[0], options), cog=cog)


def sharpen(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    pan: str | os.PathLike | None = None,
    guide: str | os.PathLike | None = None,
    bands: Sequence[str] | str | None = None,
    method: str = DEFAULT_METHOD,
    budget: float | None = None,
    steps: int | None = None,
    model: str | None = None,
    offset: float | None = None,
    device: str = "auto",
    amp: bool = False,
    tile: int = 512,
    overwrite: bool = False,
    progress: bool | None = None,
    cog: bool = True,
    seed: int = 0,
    item: str | None = None,
    request: dict[str, Any] | None = None,
) -> SharpenResult:
    """Sharpen the coarse bands of a product with its finer bands; write one multiband GeoTIFF (COG).

    Args:
        inputs: a Sentinel-2 band folder (COG layout or SAFE), a STAC item JSON, or band files;
            with ``pan``/``guide``: the multispectral file(s). A STAC ItemCollection JSON with ``item``.
        output: the ``.tif`` to write (on the finest grid).
        pan: a panchromatic GeoTIFF (pan-sharpening); guide: any finer GeoTIFF used as guide.
        bands: band names to keep (``"B05,B8A"``); None keeps all.
        method: ``bicubic``, ``brovey``, ``glp``, ``model`` or ``self`` (train on the scene).
        budget: seconds of self-training instead of steps (opt-in: a busy machine does fewer); steps:
            training steps per group (default: ``plan.DEFAULT_STEPS`` for the finest group,
            ``plan.DEFAULT_STEPS_COARSE`` for each coarser one; reproducible bit for bit).
        model: a guided checkpoint or bundled name (``model``; starting point of ``self``).
        offset: DN offset of the bands (``-1000`` for S2 L2A baseline >= 04.00 without metadata).
        device, amp: where the networks run; tile: output pixels per tile side.
        overwrite: replace an earlier output of this tool (never anything else).
        progress: progress bar (None: on a terminal); cog: write a Cloud-Optimized GeoTIFF.
        seed: training seed.
        item: the id of the item to sharpen when an input is a STAC ItemCollection JSON (its assets'
            hrefs are resolved from the collection's folder).
        request: :func:`sharpen_request_for` of these arguments when the caller has it (``geo-med-sr
            batch --sharpen``, which compared it with an existing output's), recorded as given;
            computed here otherwise.

    Raises:
        GeoMedSRError subclasses with a one-line message.
    """
    from tqdm.auto import tqdm

    from geo_med_sr import options_check as check

    # every argument checked before touching a file: one-line ConfigErrors naming the keyword
    paths = [Path(p) for p in check.paths(inputs, "inputs=")]
    out = Path(check.path(output, "output="))
    extra = [Path(check.path(p, f"{k}=")) for k, p in (("pan", pan), ("guide", guide)) if p is not None]
    options = check_options(
        bands=bands,
        method=method,
        budget=budget,
        steps=steps,
        model=model,
        offset=offset,
        device=device,
        amp=amp,
        seed=seed,
        cog=cog,
        item=item,
    )
    tile = check.PATCH_SIZE.check(tile, "tile=")
    check.flag(overwrite, "overwrite=")
    check.flag(progress, "progress=", optional=True)
    if request is not None and not isinstance(request, dict):
        raise ConfigError(f"request={type(request).__name__}: expected the dict of sharpen_request_for, or None")
    written = io.check_output(out, inputs=[*paths, *extra], overwrite=overwrite, formats=("geotiff",))
    o = options
    started, clock = time.perf_counter(), StageClock()
    with open_scene(paths, pan=pan, guide=guide, bands=o["bands"], offset=o["offset"], item=o["item"]) as scene:
        layout = plan(scene)
        # the output pre-flight's size part, from the band headers: before any pixel is read or any training
        io.check_output_size(out, written, (len(layout.outputs), *layout.grid.shape), output_spec(scene, layout).dtype)
        with io.naming(paths[0]):  # a band with no valid pixel: refused before any work
            stats = [band_stats(b) for b in scene.bands]
        decided = _decide(scene, layout, paths[0], options)
        request = request if request is not None else sharpen_request(scene, decided, cog=cog)
        clock.add("prepare", time.perf_counter() - started)
        methods, records, timings = {}, [], {}
        for g, group in enumerate(layout.groups):
            with io.naming(paths[0]), clock("train"):
                methods[g], info = build_group(decided, scene, layout, stats, g, progress)
            if "train_seconds" in info:  # wall-clock time: reported, not written (same job, same bytes)
                timings[",".join(scene.bands[i].name for i in group.targets)] = {"train": info.pop("train_seconds")}
            records.append(
                {
                    "bands": [scene.bands[i].name for i in group.targets],
                    "ratio": list(group.ratio),
                    "guides": guide_names(scene, layout, group),
                    "method": decided.method.name,
                    **info,
                }
            )
        spec = output_spec(scene, layout)
        provenance = build_provenance(
            "sharpen",
            decided.method.name,
            inputs=[*paths, *extra],
            request=request,
            product={k: v for k, v in scene.meta.items() if k not in ("inputs", FILES_KEY)},
            groups=records,
            grid={"transform": list(layout.grid.transform), "size": list(layout.grid.shape)},
        )
        names = [scene.bands[i].name for i in layout.outputs]
        meta = {
            "format": "geotiff",
            "dtype": spec.dtype.name,
            "geotiff": _band_meta(scene, layout, spec),
            "provenance": provenance,
        }
        shape = (len(layout.outputs), *layout.grid.shape)
        bar = tqdm(
            total=None, desc="sharpening", unit="tile", disable=None if progress is None else not progress, leave=False
        )

        def tick(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            with io.open_sink(
                out, shape, layout.grid.centre_affine(), meta, spec.dtype, overwrite=overwrite, cog=cog
            ) as sink:
                sharpen_scene(scene, layout, methods, stats, sink, spec, tile=tile, progress=tick, clock=clock)
                finishing = time.perf_counter()
            clock.add("cog", time.perf_counter() - finishing)  # the sink's close: flush, overviews, COG copy
        finally:
            bar.close()
    clock.add("total", time.perf_counter() - started)
    stages = {k: round(v, 3) for k, v in clock.seconds.items()}
    return SharpenResult(out, tuple(layout.grid.shape), names, provenance, timings, stages)
