"""Guided sharpening: the scene of bands, its layout on the finest grid, and the inputs of every method.

A :class:`Scene` is a list of :class:`Band` s, each with its own :class:`~geo_med_sr.multires.Grid`
and a window reader. :func:`plan` decides once (a :class:`Layout`):

* the **output grid**: the finest grid (the 10 m bands, the pan band), cropped to the pixels whose
  centres every coarser band covers;
* the **guides**: the bands on that grid; the **groups**: coarser bands that share a ratio to it
  (S2 20 m bands x2, 60 m bands x6), each with the bands between (the 20 m bands for the 60 m
  group) as extra inputs;
* which bands are written, in which order.

:func:`group_inputs` computes, for any window of the output grid (it may extend outside: the
image is mirror-reflected there), the physical values every method starts from: the coarse bands
sampled at the output pixels' centres with Keys' cubic kernel (exactly, through the sub-pixel
offset of the grids), the guides, the in-between bands, per-band validity and, on request, the
guides' MTF-GLP detail. Every value is a function of global indices only, so tiles computed
separately equal the whole image (the streaming engine's oracle).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geo_med_sr.errors import InputError
from geo_med_sr.inference.protocols import Source, Window
from geo_med_sr.multires import (
    Grid,
    Relation,
    Weights,
    apply_banded,
    apply_separable,
    covered_range,
    cubic_weights,
    fine_positions,
    fold,
    gaussian_kernel,
    keys_cubic,
    nearest_indices,
    relate,
    tap_weights,
)

__all__ = ["Band", "Group", "Layout", "Scene", "check_guides_finer", "group_inputs", "plan"]

#: MTF gain of the coarse bands at their Nyquist frequency assumed by the GLP low-pass filter.
MTF_NYQUIST_GAIN = 0.3


@dataclass
class Band:
    """One band: its grid, a reader of ``(1, W, H)`` windows, and how its numbers become physical values.

    Attributes:
        name: band name (``"B05"``, ``"pan"``).
        role: ``"spectral"``, ``"pan"``, ``"guide"`` or ``"categorical"`` (carried by nearest neighbour).
        grid: its pixels.
        source: windowed reader (``read``/``read_valid`` in index order, one channel).
        gain, offset: radiometry: physical value = ``(stored + offset) * gain`` (S2 L2A: 1e-4, -1000).
        wavelength_nm: central wavelength, or None.
        nodata: the stored nodata value, or None.
        dtype: the stored dtype name.
    """

    name: str
    role: str
    grid: Grid
    source: Source
    gain: float = 1.0
    offset: float = 0.0
    wavelength_nm: float | None = None
    nodata: float | None = None
    dtype: str = "float32"

    def physical(self, stored: np.ndarray) -> np.ndarray:
        """Stored numbers -> physical values (float64)."""
        return (np.asarray(stored, dtype=np.float64) + self.offset) * self.gain

    def stored(self, physical: np.ndarray) -> np.ndarray:
        """Physical values -> stored numbers (float64, not yet rounded)."""
        return np.asarray(physical, dtype=np.float64) / self.gain - self.offset


@dataclass
class Scene:
    """The bands of one product and what the adapters said about it (JSON-able ``meta``)."""

    bands: list[Band]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Group:
    """Coarse bands restored together.

    Attributes:
        targets: indices (into ``Scene.bands``) of the bands to sharpen.
        ratio: their pixel-size ratio to the output grid, per axis.
        between: bands coarser than the output grid but finer than the targets (extra inputs).
    """

    targets: tuple[int, ...]
    ratio: tuple[int, int]
    between: tuple[int, ...] = ()


@dataclass(frozen=True)
class Layout:
    """What :func:`plan` decided for a scene.

    Attributes:
        grid: the output grid.
        guides: indices of the bands on the output grid.
        groups: the groups of coarse bands, finest ratio first.
        relations: band index -> its :class:`~geo_med_sr.multires.Relation` to the output grid
            (guides: ratio 1 and an integer offset).
        outputs: band indices written, in order.
    """

    grid: Grid
    guides: tuple[int, ...]
    groups: tuple[Group, ...]
    relations: dict[int, Relation]
    outputs: tuple[int, ...]

    def group_of(self, band: int) -> Group | None:
        """The group that sharpens ``band`` (None for guides and categorical bands)."""
        return next((g for g in self.groups if band in g.targets), None)


#: product kinds that are Sentinel-2 (``Scene.meta["kind"]``) and their guide bands (10 m).
S2_KINDS = ("sentinel2", "stac", "safe")
S2_GUIDES = ("B02", "B03", "B04", "B08")


def plan(scene: Scene, write_guides: bool | None = None) -> Layout:
    """Decide the output grid, guides, groups and written bands of ``scene``.

    Args:
        scene: the bands.
        write_guides: write the bands of the finest grid too; default: yes unless the finest
            bands are a pan or guide file (pan-sharpening writes the multispectral bands only).

    Raises:
        InputError: nothing to sharpen, finest bands on different grids, or any band whose grid
            does not nest in the finest one (:func:`~geo_med_sr.multires.relate` says why), a pan or
            guide not finer than every spectral band (:func:`check_guides_finer`).
    """
    bands = scene.bands
    measured = [i for i, b in enumerate(bands) if b.role != "categorical"]
    if not measured:
        raise InputError("no spectral band to sharpen was found among the inputs")
    check_guides_finer(scene)
    finest = min(bands[i].grid.resolution for i in measured)
    guides = [i for i in measured if math.isclose(bands[i].grid.resolution, finest, rel_tol=1e-9)]
    base = bands[guides[0]].grid
    for i in guides[1:]:
        if bands[i].grid != base:
            raise InputError(
                f"the finest bands {bands[guides[0]].name} and {bands[i].name} have the same pixel size but "
                f"different grids ({base.transform}, {base.shape} vs {bands[i].grid.transform}, "
                f"{bands[i].grid.shape}); give bands of one product"
            )
    others = [i for i in range(len(bands)) if i not in guides]
    if not any(bands[i].role != "categorical" for i in others):
        names = ", ".join(bands[i].name for i in guides)
        if scene.meta.get("kind") in S2_KINDS and not any(bands[i].name in S2_GUIDES for i in guides):
            chosen = ",".join(bands[i].name for i in guides)
            raise InputError(
                f"--bands {chosen}: no finer band was selected to guide these; Sentinel-2's guides are its 10 m "
                f"bands {', '.join(S2_GUIDES)}: add them (--bands {','.join(S2_GUIDES)},{chosen})"
            )
        raise InputError(f"every band ({names}) is on the finest grid: there is nothing coarser to sharpen")
    relations = {i: relate(base, bands[i].grid, bands[guides[0]].name, bands[i].name) for i in others}
    lo, hi = [0, 0], list(base.shape)
    for i, rel in relations.items():
        for axis in range(2):
            a, b = covered_range(base.shape[axis], bands[i].grid.shape[axis], rel.ratio[axis], rel.offset[axis])
            lo[axis], hi[axis] = max(lo[axis], a), min(hi[axis], b)
    if hi[0] <= lo[0] or hi[1] <= lo[1]:
        raise InputError("the coarse bands have no area in common with each other on the finest grid")
    grid = base.window(lo, (hi[0] - lo[0], hi[1] - lo[1]))
    relations = {i: relate(grid, bands[i].grid, "the output grid", bands[i].name) for i in range(len(bands))}
    by_ratio: dict[tuple[int, int], list[int]] = {}
    for i in others:
        if bands[i].role != "categorical":
            by_ratio.setdefault(relations[i].ratio, []).append(i)
    groups = []
    for ratio in sorted(by_ratio, key=lambda r: r[0] * r[1]):
        between = [j for r, js in by_ratio.items() if r[0] * r[1] < ratio[0] * ratio[1] for j in js]
        groups.append(Group(tuple(by_ratio[ratio]), ratio, tuple(sorted(between))))
    if write_guides is None:
        write_guides = not any(bands[i].role in ("pan", "guide") for i in guides)
    outputs = [
        i
        for i in range(len(bands))
        if (i not in guides or write_guides) and bands[i].role in ("spectral", "categorical")
    ]
    outputs.sort(key=lambda i: (bands[i].role == "categorical", i))
    return Layout(grid, tuple(guides), tuple(groups), relations, tuple(outputs))


#: the roles of bands given only to guide (``--pan``, ``--guide``): they are never sharpened nor written.
GUIDE_ROLES = ("pan", "guide")


def _file_of(scene: Scene, index: int) -> str | None:
    """The file band ``index`` was read from (``Scene.meta["files"]``: ``[name, path, band]`` per band), or None."""
    files = scene.meta.get("files")
    if isinstance(files, list) and index < len(files) and len(files[index]) > 1:
        return str(files[index][1])
    return None


def check_guides_finer(scene: Scene) -> None:
    """Refuse a pan or guide band that is not finer than every spectral band it would sharpen.

    A guide on the grid of the bands, or coarser, sharpens nothing: :func:`plan` would take the
    spectral bands as the finest grid, sharpen the guide itself (it is never written) and crop the
    output to the guide's extent, a silent wrong result. Pixel sizes are compared as
    :attr:`~geo_med_sr.multires.Grid.resolution` (the larger of the two axes, CRS units).

    Raises:
        InputError: naming the guide's file, both pixel sizes and the band.
    """
    bands = scene.bands
    spectral = [b for b in bands if b.role == "spectral"]
    if not spectral:
        return
    finest = min(spectral, key=lambda b: b.grid.resolution)  # the band a guide must beat
    for i, guide in enumerate(bands):
        if guide.role not in GUIDE_ROLES or finest.grid.resolution > guide.grid.resolution * (1 + 1e-9):
            continue
        what = "pan" if guide.role == "pan" else "guide"
        where = _file_of(scene, i) or guide.name
        raise InputError(
            f"{where}: the --{what} has pixels of {guide.grid.resolution:g} CRS units, not finer than band "
            f"{finest.name}'s {finest.grid.resolution:g}; a {what} must be finer than every band it sharpens: "
            f"give a finer {what}, or leave --{what} out to sharpen with the product's own finest bands"
        )


# ------------------------------------------------------------------------------- reading


def read_band(band: Band, lo: Sequence[int], hi: Sequence[int], fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Physical values ``(W, H)`` and validity of ``band`` on its own index box ``[lo, hi)``.

    Invalid (nodata, masked, non-finite) pixels are replaced by ``fill``.
    """
    window = Window(((int(lo[0]), int(hi[0])), (int(lo[1]), int(hi[1]))))
    values = band.physical(band.source.read(window)[0])
    valid = band.source.read_valid(window)
    valid = np.ones(values.shape, bool) if valid is None else np.asarray(valid, bool).copy()
    valid &= np.isfinite(values)
    values[~valid] = fill
    return values, valid


def _valid_sample(band: Band, boxes: Sequence[tuple[tuple[int, int], tuple[int, int]]], stop: int | None) -> np.ndarray:
    """Valid physical values of ``band`` in ``boxes`` (index boxes ``(lo, hi)``), 1D; reading stops once
    ``stop`` values are collected (None: read every box)."""
    chunks, count = [], 0
    for lo, hi in boxes:
        values, valid = read_band(band, lo, hi, 0.0)
        chunks.append(values[valid])
        count += chunks[-1].size
        if stop is not None and count >= stop:
            break
    return np.concatenate(chunks) if chunks else np.zeros(0)


def band_stats(band: Band, max_pixels: int = 1 << 20, tile: int = 512) -> dict[str, float]:
    """Mean and standard deviation (physical values) of ``band``'s valid pixels, from a bounded sample.

    Small bands are read whole; larger ones through an even grid of ``tile``-sized windows
    holding about ``max_pixels`` pixels, so the cost does not grow with the scene. When that grid
    holds no valid pixel (a scene mostly outside the swath), every tile is read in turn until
    ``max_pixels`` valid values are found, so a band is refused only when it has none at all.
    Invalid pixels: nodata, masked, NaN and +-inf (:func:`read_band`).

    Raises:
        InputError: the band has no valid pixel.
    """
    w, h = band.grid.shape
    boxes: list[tuple[tuple[int, int], tuple[int, int]]]
    if w * h <= max_pixels:
        boxes = [((0, 0), (w, h))]
    else:
        count = max(1, int(math.sqrt(max_pixels / tile**2)))
        xs = np.linspace(0, max(w - tile, 0), count).astype(int)
        ys = np.linspace(0, max(h - tile, 0), count).astype(int)
        boxes = [((x, y), (min(x + tile, w), min(y + tile, h))) for x in xs for y in ys]
    sample = _valid_sample(band, boxes, None)
    if sample.size == 0 and w * h > max_pixels:  # the even grid missed every valid pixel: look everywhere
        every = [((x, y), (min(x + tile, w), min(y + tile, h))) for x in range(0, w, tile) for y in range(0, h, tile)]
        sample = _valid_sample(band, every, max_pixels)
    if sample.size == 0:
        raise InputError(
            f"band {band.name} has no valid pixel (every pixel is nodata, masked, NaN or infinite): nothing to sharpen"
        )
    std = float(sample.std())
    return {"mean": float(sample.mean()), "std": std if std > 0 else 1.0}


def _axis_indices(window: Window, layout: Layout) -> list[np.ndarray]:
    """Output-grid indices of ``window`` per axis, folded into the grid (mirror outside it)."""
    return [fold(np.arange(a, b), n) for (a, b), n in zip(window, layout.grid.shape)]


def _sample_weights(idx: Sequence[np.ndarray], band: Band, rel: Relation) -> list[Weights]:
    return [
        cubic_weights(fine_positions(idx[axis], rel.ratio[axis], rel.offset[axis]), band.grid.shape[axis])
        for axis in range(2)
    ]


def upsampled(band: Band, rel: Relation, idx: Sequence[np.ndarray], fill: float) -> tuple[np.ndarray, np.ndarray]:
    """``band`` sampled by cubic convolution at the centres of output pixels ``idx`` (per axis), and
    its validity there (that of the band pixel containing each centre): ``(W, H)`` each."""
    wx, wy = _sample_weights(idx, band, rel)
    values, valid = read_band(band, (wx.lo, wy.lo), (wx.hi, wy.hi), fill)
    out = apply_separable(values[None], wx, wy)[0]
    nx = nearest_indices(fine_positions(idx[0], rel.ratio[0], rel.offset[0]), band.grid.shape[0]) - wx.lo
    ny = nearest_indices(fine_positions(idx[1], rel.ratio[1], rel.offset[1]), band.grid.shape[1]) - wy.lo
    return out, valid[np.ix_(nx, ny)]


def nearest(band: Band, rel: Relation, idx: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stored values and validity of the ``band`` pixel containing each output pixel centre (``(W, H)``)."""
    n = [
        nearest_indices(fine_positions(idx[axis], rel.ratio[axis], rel.offset[axis]), band.grid.shape[axis])
        for axis in range(2)
    ]
    lo = [int(v.min()) for v in n]
    hi = [int(v.max()) + 1 for v in n]
    window = Window(((lo[0], hi[0]), (lo[1], hi[1])))
    raw = band.source.read(window)[0]
    valid = band.source.read_valid(window)
    valid = np.ones(raw.shape, bool) if valid is None else np.asarray(valid, bool)
    sel = np.ix_(n[0] - lo[0], n[1] - lo[1])
    return raw[sel], valid[sel]


def on_grid(band: Band, rel: Relation, idx: Sequence[np.ndarray], fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Physical values and validity of a band of the output grid at output pixels ``idx``."""
    own = [idx[axis] - int(round(rel.offset[axis])) for axis in range(2)]
    lo = [int(v.min()) for v in own]
    hi = [int(v.max()) + 1 for v in own]
    values, valid = read_band(band, lo, hi, fill)
    if all(len(v) == h - a and v[0] == a and np.all(np.diff(v) == 1) for v, a, h in zip(own, lo, hi)):
        return values, valid  # a box of the band (no mirrored index): already in order
    sel = np.ix_(own[0] - lo[0], own[1] - lo[1])
    return values[sel], valid[sel]


def glp_weights(idx: np.ndarray, n_out: int, ratio: int, offset: float) -> Weights:
    """MTF-GLP low-pass along one axis: Gaussian MTF filter (gain :data:`MTF_NYQUIST_GAIN` at the coarse
    Nyquist), decimation to the coarse pixel centres and cubic interpolation back to output pixels ``idx``.

    The three maps are composed tap by tap (4 coarse centres per output pixel, 4 output pixels per coarse
    centre, the Gaussian's taps around each), folded at the grid's border, so a window of ``m`` pixels
    costs ``O(m * 16 * taps)``.

    Args:
        idx: output-grid indices ``(N,)`` of the pixels to filter (folded into the grid).
        n_out: length of the output grid along this axis (pixels).
        ratio: coarse / output pixel-size ratio along this axis.
        offset: position of the coarse grid's corner on the output grid along this axis (output pixels).

    Returns:
        Weights over output-grid indices (mirror-folded).
    """
    positions = fine_positions(idx, ratio, offset)
    coarse = np.floor(positions).astype(np.int64)[:, None] + np.arange(-1, 3)  # (N, 4) centres, inside or beyond
    up = keys_cubic(positions[:, None] - coarse)
    centres = offset + (coarse + 0.5) * ratio - 0.5  # on the output grid
    fine = np.floor(centres).astype(np.int64)[..., None] + np.arange(-1, 3)  # (N, 4, 4) output pixels
    decimate = keys_cubic(centres[..., None] - fine)
    sigma = ratio * math.sqrt(-2.0 * math.log(MTF_NYQUIST_GAIN)) / math.pi
    mtf = gaussian_kernel(sigma)  # on taps -r..r
    radius = len(mtf) // 2
    taps = fold(fold(fine, n_out)[..., None] + np.arange(-radius, radius + 1), n_out)  # (N, 4, 4, 2r + 1)
    weights = up[:, :, None, None] * decimate[..., None] * mtf
    return tap_weights(taps.reshape(len(idx), -1), weights.reshape(len(idx), -1), None)


@dataclass
class GroupInputs:
    """Physical inputs of one group on one window of the output grid (all ``(., W, H)`` float64).

    Attributes:
        up: the targets sampled at the output pixel centres ``(T, W, H)``.
        guides: the guide bands ``(G, W, H)``.
        between: the in-between bands sampled like ``up`` ``(I, W, H)``.
        valid: per target band ``(T, W, H)``: its pixel and every guide valid.
        detail: guides minus their MTF-GLP low-pass ``(G, W, H)``, when asked.
    """

    up: np.ndarray
    guides: np.ndarray
    between: np.ndarray
    valid: np.ndarray
    detail: np.ndarray | None = None


def group_inputs(
    scene: Scene,
    layout: Layout,
    group: Group,
    window: Window,
    stats: Sequence[dict[str, float]],
    detail: bool = False,
    guide_values: tuple[Sequence[np.ndarray] | np.ndarray, np.ndarray] | None = None,
) -> GroupInputs:
    """The inputs of ``group``'s methods on ``window`` of the output grid (mirror-reflected outside it).

    Args:
        scene, layout: the scene and its plan.
        group: which bands.
        window: output-grid box (index order); may extend outside the grid.
        stats: per band of the scene ``{"mean", "std"}`` (invalid pixels are filled with the mean).
        detail: also compute the guides' MTF-GLP detail.
        guide_values: the guides on ``window`` when already read (the window driver's): their
            physical values ``(W, H)`` each or stacked ``(G, W, H)`` (used as given: no copy; invalid pixels
            filled with the mean) and their common validity ``(W, H)``.
    """
    idx = _axis_indices(Window(window), layout)
    bands = scene.bands
    guides, guide_valid = guide_values if guide_values is not None else ([], np.ones([len(i) for i in idx], bool))
    for i in layout.guides if guide_values is None else ():
        values, valid = on_grid(bands[i], layout.relations[i], idx, stats[i]["mean"])
        guides.append(values)
        guide_valid &= valid
    ups, valids = [], []
    for i in group.targets:
        values, valid = upsampled(bands[i], layout.relations[i], idx, stats[i]["mean"])
        ups.append(values)
        valids.append(valid & guide_valid)
    between = [upsampled(bands[i], layout.relations[i], idx, stats[i]["mean"])[0] for i in group.between]
    shape = (0, len(idx[0]), len(idx[1]))
    out = GroupInputs(
        np.stack(ups),
        guides if isinstance(guides, np.ndarray) else np.stack(guides),
        np.stack(between) if between else np.zeros(shape),
        np.stack(valids),
    )
    if detail:
        rel = layout.relations[group.targets[0]]
        wx, wy = (glp_weights(idx[a], layout.grid.shape[a], rel.ratio[a], rel.offset[a]) for a in range(2))
        box = [np.arange(wx.lo, wx.hi), np.arange(wy.lo, wy.hi)]
        lows = apply_banded(
            np.stack([on_grid(bands[i], layout.relations[i], box, stats[i]["mean"])[0] for i in layout.guides]), wx, wy
        )
        out.detail = out.guides - lows
    return out
