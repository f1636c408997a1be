"""``geo-med-sr sharpen``: restore coarse bands with the sensor's own finer bands, into one multiband COG.

One call (:func:`sharpen`) for the command line and the Python API::

    inputs --io.discover_product--> band files (S2 folder / SAFE / STAC item / files, --pan, --guide)
           --io.open_band--> Scene (one windowed reader + grid per band)
           --plan--> output grid (finest grid where every band has data), guides, groups
           --build_method--> per group: bicubic | brovey | glp (gains fitted at reduced resolution)
                              | model (bundled or given guided weights) | self (trained on the scene)
           --sharpen_scene--> tiles of every output band --io.open_sink--> COG (atomic, ours only)

Band descriptions are the band names, central wavelengths go into the band metadata, stored
numbers keep the input's convention (S2 L2A: DN with the BOA offset; GDAL scale/offset tags say
how to get reflectance) and the provenance says what ran (method, gains, training steps).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geo_med_sr import __version__, io
from geo_med_sr.digest import sha256_file
from geo_med_sr.errors import ConfigError, InputError, ModelError, file_error
from geo_med_sr.sharpening.engine import output_spec, sharpen_scene
from geo_med_sr.sharpening.scene import Band, Group, Layout, Scene, band_stats, plan

__all__ = ["SHARPEN_METHODS", "SharpenResult", "build_method", "open_scene", "sharpen"]

#: ``--method`` choices of ``sharpen`` (``self`` is the default).
SHARPEN_METHODS = ("bicubic", "brovey", "glp", "model", "self")
#: share of the self-training budget given to the 60 m group when a product has both groups.
COARSEST_SHARE = 0.25


@dataclass
class SharpenResult:
    """What :func:`sharpen` wrote: the output, its grid size ``(W, H)``, band names and provenance."""

    output: Path
    shape: tuple[int, int]
    bands: list[str]
    provenance: dict[str, Any]


@contextlib.contextmanager
def open_scene(
    inputs: Sequence[str | os.PathLike],
    *,
    pan: str | os.PathLike | None = None,
    guide: str | os.PathLike | None = None,
    bands: Sequence[str] | None = None,
    offset: float | None = None,
) -> Iterator[Scene]:
    """The bands named by ``inputs`` (and ``pan``/``guide``) opened for windowed reading (a context)."""
    product = io.discover_product(inputs, pan=pan, guide=guide, bands=bands, offset=offset)
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
        yield Scene(opened, {**product.meta, "kind": product.kind})
    finally:
        for band in opened:
            band.source.close()


def _guide_names(scene: Scene, layout: Layout, group: Group) -> list[str]:
    return [scene.bands[i].name for i in (*layout.guides, *group.between)]


def _stats_of(stats: list[dict], indices: Sequence[int]) -> list[dict]:
    return [stats[i] for i in indices]


def _network_method(model: Any, scene: Scene, layout: Layout, group: Group, stats: list[dict], device, amp):
    """A network on the group: guides and in-between bands as inputs, or the guides only when the network
    takes exactly that many (a band-wise model learned without in-between bands)."""
    from geo_med_sr.sharpening.methods import NetworkMethod

    between = model.guide_channels != len(layout.guides) or not group.between
    guides = (*layout.guides, *group.between) if between else layout.guides
    return NetworkMethod(
        model, _stats_of(stats, group.targets), _stats_of(stats, guides), device=device, amp=amp, use_between=between
    )


def bundled_guided(scene: Scene, group: Group) -> str:
    """The bundled guided model for ``group`` of ``scene`` (by product kind and ratio)."""
    from geo_med_sr.models.bundled import find

    kind = "s2" if scene.meta.get("kind") in ("sentinel2", "stac", "safe") else "pan"
    name = f"{kind}-guided-x{group.ratio[0]}"
    if group.ratio[0] != group.ratio[1] or find(name) is None:
        raise ModelError(
            f"no bundled guided model for {'Sentinel-2' if kind == 's2' else 'pan-sharpening'} x{group.ratio[0]}; "
            "use --method self (trains on the scene) or give --model PATH.safetensors"
        )
    return name


def _load_guided(model: str, scene: Scene, layout: Layout, group: Group) -> tuple[Any, dict]:
    from geo_med_sr.models.checkpoint import load_checkpoint, model_path, sidecar_path  # noqa: F401  (torch on demand)

    path = model_path(model)
    net, config = load_checkpoint(path)
    extra = config.get("extra", {})
    if config.get("network", {}).get("name") != "guided":
        raise file_error(ModelError, path, "is not a guided sharpening network; train one with sharpen --method self")
    guides = _guide_names(scene, layout, group)
    targets = [scene.bands[i].name for i in group.targets]
    if list(net.scale) != list(group.ratio):
        raise file_error(ModelError, path, f"was trained for x{net.scale[0]}, these bands need x{group.ratio[0]}")
    fits = net.guide_channels == len(guides) or (net.bandwise and net.guide_channels == len(layout.guides))
    if not fits or (not net.bandwise and net.target_channels != len(targets)):
        raise file_error(
            ModelError,
            path,
            f"takes {net.guide_channels} guides{'' if net.bandwise else f' and {net.target_channels} bands'}; "
            f"these are {len(guides)} guides ({', '.join(guides)}) and {len(targets)} bands ({', '.join(targets)})",
        )
    want = extra.get("targets")
    if want and not net.bandwise and [t.upper() for t in want] != [t.upper() for t in targets]:
        raise file_error(ModelError, path, f"was trained for bands {', '.join(want)}, not {', '.join(targets)}")
    return net, {"model": str(model), "model_sha256": sha256_file(path)}


def build_method(
    name: str,
    scene: Scene,
    layout: Layout,
    g: int,
    stats: list[dict],
    *,
    budget: float | None = None,
    steps: int | None = None,
    model: str | None = None,
    device: str = "auto",
    amp: bool = False,
    seed: int = 0,
    features: int = 64,
    blocks: int = 6,
    progress: bool | None = False,
) -> tuple[Any, dict[str, Any]]:
    """The method that sharpens group ``g`` and what it records in the provenance.

    ``glp`` fits its gains and ``self`` trains a guided network on the scene's reduced-resolution
    copy (bounded windows); ``model`` loads ``model`` (a bundled name or a checkpoint), by default
    the bundled guided model for the group.
    """
    from geo_med_sr.sharpening import methods as fm

    group = layout.groups[g]
    if name == "bicubic":
        return fm.Bicubic(), {}
    if name == "brovey":
        return fm.Brovey(), {}
    if name not in ("glp", "self", "model"):
        raise ConfigError(f"unknown sharpening method {name!r}; choose one of {', '.join(SHARPEN_METHODS)}")
    if name == "model":
        from geo_med_sr.inference.device import resolve_device

        net, info = _load_guided(model or bundled_guided(scene, group), scene, layout, group)
        return _network_method(net, scene, layout, group, stats, resolve_device(device), amp), info
    from geo_med_sr.sharpening.training import reduced_inputs, too_small, wald_pairs

    if name == "glp" and too_small(scene, layout, group):
        gains = fm.fit_glp_full_scale(_sample_inputs(scene, layout, group, stats))
        return fm.GLP(gains), {
            "gains": np.round(gains, 6).tolist(),
            "gains_from": "full-scale regression (the reduced copy is too small)",
            "guides": _guide_names(scene, layout, group),
        }
    donors = any(g.ratio[0] < group.ratio[0] for g in layout.groups)
    if name == "self" and not model and donors and too_small(scene, layout, group):
        return _proxy_self(scene, layout, group, stats, budget, steps, device, amp, seed, features, blocks, progress)
    pairs = wald_pairs(scene, layout, group, stats, seed=seed)
    if name == "glp":
        data = ((reduced_inputs(p, group, stats, detail=True), p.label, p.valid) for p in pairs)  # one at a time
        gains = fm.fit_glp(data)
        return fm.GLP(gains), {
            "gains": np.round(gains, 6).tolist(),
            "gains_from": "reduced resolution",
            "guides": _guide_names(scene, layout, group),
        }
    return _self_method(
        scene, layout, group, stats, pairs, budget, steps, model, device, amp, seed, features, blocks, progress
    )


def _train_report(net, arrays, group, stats, budget, steps, dev, seed, progress=False) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from geo_med_sr.sharpening.training import DEFAULT_BUDGET_CPU, DEFAULT_BUDGET_GPU, SPECTRAL_WEIGHT, train_guided

    if steps is None and budget is None:
        budget = DEFAULT_BUDGET_GPU if dev.type == "cuda" else DEFAULT_BUDGET_CPU
    spectral = (np.array([stats[i]["mean"] for i in group.targets]), np.array([stats[i]["std"] for i in group.targets]))
    bar = tqdm(
        total=100,
        desc=f"self-training ({len(group.targets)} bands)",
        unit="%",
        leave=False,
        disable=None if progress is None else not progress,
    )

    def tick(fraction: float) -> None:
        bar.update(int(100 * min(fraction, 1.0)) - bar.n)

    try:
        report = train_guided(
            net,
            arrays,
            budget=budget,
            steps=steps,
            device=dev,
            seed=seed,
            spectral=spectral,
            spectral_weight=SPECTRAL_WEIGHT,
            progress=tick,
        )
    finally:
        bar.close()
    return {
        "budget_s": budget,
        "steps": report["steps"],
        "train_seconds": report["seconds"],
        "train_loss": round(report["loss"], 6),
        "network": net.config(),
        "seed": seed,
    }


def _proxy_self(scene, layout, group, stats, budget, steps, device, amp, seed, features, blocks, progress=False):
    """``self`` for a group too small for its own reduced copy (S2 60 m bands of a small area): a band-wise
    guided network learns the group's ratio on the finer coarse bands (the 20 m bands reduced by 6, with the
    10 m bands as guides), then restores the group's bands one by one with the same guides (from scratch:
    fine-tuning the bundled band-wise model instead measured worse, see the README's performance notes)."""
    from geo_med_sr.inference.device import resolve_device
    from geo_med_sr.networks.guided import GuidedNet
    from geo_med_sr.sharpening.methods import NetworkMethod
    from geo_med_sr.sharpening.training import training_arrays, wald_pairs

    donors = [g for g in layout.groups if g.ratio[0] < group.ratio[0]]
    if not donors:
        raise InputError(
            f"bands {', '.join(scene.bands[i].name for i in group.targets)} are too small for a reduced-resolution "
            "copy and no finer coarse bands can stand in; use --method glp or model"
        )
    proxy = Group(donors[0].targets, group.ratio, ())
    import torch

    dev = resolve_device(device)
    torch.manual_seed(seed)
    net = GuidedNet(1, len(layout.guides), list(group.ratio), features, blocks, bandwise=True)
    guide_stats = _stats_of(stats, layout.guides)
    trainer = NetworkMethod(net, _stats_of(stats, proxy.targets), guide_stats, use_between=False)
    pairs = wald_pairs(scene, layout, proxy, stats, seed=seed, factor=group.ratio[0])
    arrays = training_arrays(pairs, proxy, stats, trainer.normalised)
    info = _train_report(net, arrays, proxy, stats, budget, steps, dev, seed, progress)
    method = NetworkMethod(net.eval(), _stats_of(stats, group.targets), guide_stats, dev, amp, use_between=False)
    names = [scene.bands[i].name for i in proxy.targets]
    return method, {**info, "reduced_pairs": len(pairs), "trained_on": names}


def _sample_inputs(scene: Scene, layout: Layout, group: Group, stats: list[dict], side: int = 512) -> list:
    """GLP inputs (with detail) on a bounded, even grid of output windows (at most 9 of ``side`` pixels)."""
    from geo_med_sr.inference.protocols import Window
    from geo_med_sr.sharpening.scene import group_inputs

    w, h = layout.grid.shape
    xs = sorted({int(v) for v in np.linspace(0, max(w - side, 0), 3)})
    ys = sorted({int(v) for v in np.linspace(0, max(h - side, 0), 3)})
    boxes = [Window(((x, min(x + side, w)), (y, min(y + side, h)))) for x in xs for y in ys]
    return [group_inputs(scene, layout, group, box, stats, detail=True) for box in boxes]


def _self_method(
    scene, layout, group, stats, pairs, budget, steps, model, device, amp, seed, features, blocks, progress=False
):
    import torch

    from geo_med_sr.inference.device import resolve_device
    from geo_med_sr.networks.guided import GuidedNet
    from geo_med_sr.sharpening.training import training_arrays

    dev = resolve_device(device)
    info: dict[str, Any] = {}
    torch.manual_seed(seed)  # the initial weights too, so --steps gives the same result every time
    if model:
        net, info = _load_guided(model, scene, layout, group)
    else:
        net = GuidedNet(
            len(group.targets), len(layout.guides) + len(group.between), list(group.ratio), features, blocks
        )
    method = _network_method(net, scene, layout, group, stats, dev, amp)
    arrays = training_arrays(pairs, group, stats, method.normalised)
    info.update(_train_report(net, arrays, group, stats, budget, steps, dev, seed, progress))
    method.model = net.eval()
    return method, {**info, "reduced_pairs": len(pairs)}


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


def _split_budget(layout: Layout, budget: float | None) -> list[float | None]:
    if budget is None or len(layout.groups) == 1:
        return [budget] * len(layout.groups)
    coarsest = budget * COARSEST_SHARE / (len(layout.groups) - 1)
    return [budget - coarsest * (len(layout.groups) - 1)] + [coarsest] * (len(layout.groups) - 1)


def sharpen(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    pan: str | os.PathLike | None = None,
    guide: str | os.PathLike | None = None,
    bands: Sequence[str] | str | None = None,
    method: str = "self",
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
) -> SharpenResult:
    """Sharpen the coarse bands of a product with its finer bands; write one multiband GeoTIFF (COG).

    Args:
        inputs: a Sentinel-2 band folder (COG layout or SAFE), a STAC item JSON, or band files;
            with ``pan``/``guide``: the multispectral file(s).
        output: the ``.tif`` to write (on the finest grid).
        pan: a panchromatic GeoTIFF (pan-sharpening); guide: any finer GeoTIFF used as guide.
        bands: band names to keep (``"B05,B8A"``); None keeps all.
        method: ``bicubic``, ``brovey``, ``glp``, ``model`` or ``self`` (train on the scene).
        budget: seconds of self-training (default 240 on a CPU, 60 on a GPU); steps: a number of
            training steps instead (reproducible).
        model: a guided checkpoint or bundled name (``model``; starting point of ``self``).
        offset: DN offset of the bands (``-1000`` for S2 L2A baseline >= 04.00 without metadata).
        device, amp: where the networks run; tile: output pixels per tile side.
        overwrite: replace an earlier output of this tool (never anything else).
        progress: progress bar (None: on a terminal); cog: write a Cloud-Optimized GeoTIFF.
        seed: training seed.

    Raises:
        GeoMedSRError subclasses with a one-line message.
    """
    from tqdm.auto import tqdm

    if method not in SHARPEN_METHODS:
        raise ConfigError(f"unknown sharpening method {method!r}; choose one of {', '.join(SHARPEN_METHODS)}")
    if budget is not None and steps is not None:
        raise ConfigError("give --budget or --steps, not both")
    if budget is not None and not budget > 0:
        raise ConfigError(f"--budget must be a positive number of seconds, got {budget}")
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be a positive integer, got {steps}")
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    out = Path(output)
    extra = [Path(p) for p in (pan, guide) if p is not None]
    io.check_output(out, inputs=[*paths, *extra], overwrite=overwrite)
    with open_scene(paths, pan=pan, guide=guide, bands=bands, offset=offset) as scene:
        layout = plan(scene)
        stats = [band_stats(b) for b in scene.bands]
        methods, records = {}, []
        for g, share in enumerate(_split_budget(layout, budget)):
            with io.naming(paths[0]):
                m, info = build_method(
                    method,
                    scene,
                    layout,
                    g,
                    stats,
                    budget=share,
                    steps=steps,
                    model=model,
                    device=device,
                    amp=amp,
                    seed=seed,
                    progress=progress,
                )
            methods[g] = m
            group = layout.groups[g]
            records.append(
                {
                    "bands": [scene.bands[i].name for i in group.targets],
                    "ratio": list(group.ratio),
                    "guides": _guide_names(scene, layout, group),
                    "method": method,
                    **info,
                }
            )
        spec = output_spec(scene, layout)
        provenance = {
            "tool": "geo_med_sr",
            "version": __version__,
            "command": "sharpen",
            "method": method,
            "inputs": [str(p) for p in paths] + [str(p) for p in extra],
            "product": {k: v for k, v in scene.meta.items() if k != "inputs"},
            "groups": records,
            "grid": {"transform": list(layout.grid.transform), "size": list(layout.grid.shape)},
        }
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
                sharpen_scene(scene, layout, methods, stats, sink, spec, tile=tile, progress=tick)
        finally:
            bar.close()
    return SharpenResult(out, tuple(layout.grid.shape), names, provenance)
