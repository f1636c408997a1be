"""The reduced-resolution (Wald) protocol for guided sharpening: one rule for training, fitting and evaluation.

Every band of a window of the scene is reduced so that the problem keeps its shape one level
down: the target bands are block-averaged by their ratio ``r`` to the output grid (the label is
the target itself), the guide bands are area-averaged onto the targets' own grid, and the bands
in between (S2 20 m bands for the 60 m group) onto a grid ``r_i`` times coarser than that. Area
averages are exact also when grids are offset by a fraction of a pixel (Landsat's half-pan-pixel
offset becomes a partial-pixel weight), so the reduced problem has the same geometry as the real
one. The reduced bands form an in-memory :class:`~.fusion.Scene` that every method runs on
unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geo_med_sr.errors import InputError
from geo_med_sr.inference.arrays import ArraySource
from geo_med_sr.multires import Grid, Weights, apply_banded, area_weights, relate
from geo_med_sr.sharpening.scene import Band, Group, Layout, Scene, read_band

__all__ = ["ReducedPair", "check_contrast", "label_range", "reduce_group"]


@dataclass
class ReducedPair:
    """A reduced scene with its truth.

    Attributes:
        scene: the reduced bands (physical values, scale 1, offset 0), in the original band order
            (bands the group does not use are left out; ``index`` maps them back).
        index: original band index of each reduced band.
        label: ``(T, W, H)`` physical values of the target bands on the label window.
        valid: ``(T, W, H)`` their validity.
        grid: the label window's grid.
    """

    scene: Scene
    index: list[int]
    label: np.ndarray
    valid: np.ndarray
    grid: Grid


def check_contrast(pair: ReducedPair, names: Sequence[str]) -> None:
    """Refuse a truth band that holds one value on its valid pixels: PSNR and SSIM have no data range
    there (the peak is max - min = 0), so any score would be a made-up number.

    Args:
        pair: the reduced pair; ``pair.label``/``pair.valid`` are ``(T, W, H)``.
        names: the target bands' names, in the order of ``pair.label``.

    Raises:
        InputError: naming the first constant band and its value.
    """
    for k, name in enumerate(names):
        values = pair.label[k][pair.valid[k]]
        if values.size and values.max() == values.min():
            raise InputError(
                f"band {name} holds a single value ({values.flat[0]:g}) on its valid pixels, so PSNR and SSIM "
                "are undefined for it; evaluate a scene with some contrast in that band, or leave it out (--bands)"
            )


def _memory_band(band: Band, values: np.ndarray, valid: np.ndarray, grid: Grid) -> Band:
    source = ArraySource(values[None].astype(np.float64), valid, meta={"dtype": "float64"})
    return Band(band.name, band.role, grid, source, 1.0, 0.0, band.wavelength_nm, None, "float64")


def _reduce_onto(band: Band, target: Grid, q_pixels: float, shape: tuple[int, int], fill: float) -> tuple:
    """``band`` area-averaged onto a grid with ``target``'s corner and pixels of ``q_pixels`` of ``band``'s."""
    rel = relate(band.grid, target, band.name, "the label window")
    weights = [area_weights(shape[a], q_pixels, rel.offset[a], band.grid.shape[a]) for a in range(2)]
    values, valid = read_band(band, (weights[0].lo, weights[1].lo), (weights[0].hi, weights[1].hi), fill)
    return _average(weights[0].matrix, values, weights[1].matrix), _untouched(
        weights[0].matrix, valid, weights[1].matrix
    )


def _average(wx: np.ndarray, values: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """``wx @ values @ wy.T``: ``(X, Y)`` -> ``(mx, my)`` separable weighted averages (a banded product: each
    output reads its footprint only, so a window of ``n`` pixels costs ``O(n^2)``, not ``O(n^3)``)."""
    return apply_banded(values[None], Weights(wx, 0), Weights(wy, 0))[0]


def _untouched(wx: np.ndarray, valid: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """Output pixels whose footprint holds no invalid input pixel (counts of invalid pixels: whole numbers,
    exact in any order of summation)."""
    if valid.all():
        return np.ones((wx.shape[0], wy.shape[0]), bool)
    invalid = (~valid)[None].astype(np.float64)
    return (
        apply_banded(invalid, Weights((wx > 0).astype(np.float64), 0), Weights((wy > 0).astype(np.float64), 0))[0] == 0
    )


def label_range(scene: Scene, layout: Layout, group: Group) -> tuple[tuple[int, int], ...]:
    """Per axis, the target-grid indices whose footprints every guide and in-between band covers."""
    bands = scene.bands
    target = bands[group.targets[0]].grid
    out = []
    for axis in range(2):
        lo, hi = 0, target.shape[axis]
        for i in (*layout.guides, *group.between):
            rel = relate(bands[i].grid, target, bands[i].name, bands[group.targets[0]].name)
            t, o, n = rel.ratio[axis], rel.offset[axis], bands[i].grid.shape[axis]
            lo = max(lo, math.ceil(-o / t - 1e-9))
            hi = min(hi, math.floor((n - o) / t + 1e-9))
        out.append((lo, hi))
    return tuple(out)


def reduce_group(
    scene: Scene,
    layout: Layout,
    group: Group,
    start: tuple[int, int],
    size: tuple[int, int],
    stats: list[dict[str, float]],
    scale: int | None = None,
) -> ReducedPair:
    """The Wald pair of ``group`` on the label window ``start``/``size`` of the targets' grid.

    ``scale`` reduces the targets by another SR factor than their ratio to the guides (a x4 pair
    from a x2 product: targets block-averaged by 4, guides onto the targets' grid as always).

    Args:
        scene, layout, group: what to reduce.
        start: first target-grid index per axis of the label window.
        size: its size per axis; a multiple of the group's ratio and of every in-between ratio.
        stats: per band ``{"mean", "std"}`` (invalid pixels are filled with the mean).

    Raises:
        InputError: a window that guides or in-between bands do not cover, or a bad size.
    """
    bands = scene.bands
    ratio = group.ratio if scale is None else (int(scale), int(scale))
    label_grid = bands[group.targets[0]].grid.window(start, size)
    for axis in range(2):
        steps = [ratio[axis]] + [layout.relations[i].ratio[axis] for i in group.between]
        if size[axis] < 2 * ratio[axis] or any(size[axis] % s for s in steps):
            raise InputError(
                f"a reduced-resolution window needs a size that is a multiple of {steps} and at least "
                f"{2 * ratio[axis]} pixels; got {size[axis]}"
            )
    index: list[int] = []
    reduced: list[Band] = []
    labels, valids = [], []
    for i in group.targets:
        values, valid = read_band(bands[i], start, (start[0] + size[0], start[1] + size[1]), stats[i]["mean"])
        labels.append(values)
        valids.append(valid)
        weights = [area_weights(size[a] // ratio[a], ratio[a], 0.0, size[a]) for a in range(2)]
        small = _average(weights[0].matrix, values, weights[1].matrix)
        small_valid = _untouched(weights[0].matrix, valid, weights[1].matrix)
        shape = (size[0] // ratio[0], size[1] // ratio[1])
        reduced.append(_memory_band(bands[i], small, small_valid, label_grid.scaled(ratio, shape)))
        index.append(i)
    for i in layout.guides:
        rel = relate(bands[i].grid, label_grid)
        values, valid = _reduce_onto(bands[i], label_grid, float(rel.ratio[0]), tuple(size), stats[i]["mean"])
        if rel.ratio[0] != rel.ratio[1]:
            raise InputError(f"band {bands[i].name}: different ratios along x and y are not supported")
        reduced.append(_memory_band(bands[i], values, valid, label_grid))
        index.append(i)
    for i in group.between:
        step = layout.relations[i].ratio
        shape = (size[0] // step[0], size[1] // step[1])
        rel = relate(bands[i].grid, label_grid)
        q = float(rel.ratio[0] * step[0]) if rel.ratio[0] > 0 else float(step[0])
        values, valid = _reduce_onto(bands[i], label_grid, q, shape, stats[i]["mean"])
        reduced.append(_memory_band(bands[i], values, valid, label_grid.scaled(step, shape)))
        index.append(i)
    order = np.argsort(index)
    scene_small = Scene([reduced[k] for k in order], dict(scene.meta, reduced=True))
    return ReducedPair(scene_small, [index[k] for k in order], np.stack(labels), np.stack(valids), label_grid)
