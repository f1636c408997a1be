"""Streaming guided sharpening: tiles of the output grid, every band read by windows, written as finished.

For each tile of the output grid (``tile`` pixels, aligned with the sink's blocks) the engine
reads the windows it needs of every band (the guides on the tile grown by the method's radius,
the coarse bands under it), runs each group's method and writes the tile of every output band:
bands of the output grid copied, sharpened bands converted back to their stored numbers,
categorical bands (SCL) by nearest neighbour. Memory is bounded by the tile; inputs outside the
output grid are mirror-reflected, so the result does not depend on the tile size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from geo_med_sr.dtypes import cast_to_dtype, mark_nodata
from geo_med_sr.inference.protocols import Sink, Window
from geo_med_sr.sharpening.scene import Group, Layout, Scene, group_inputs, nearest, on_grid

__all__ = ["OutputSpec", "output_spec", "run_method", "sharpen_scene", "tiles"]


@dataclass(frozen=True)
class OutputSpec:
    """Storage of the sharpened product: dtype and nodata of every written band."""

    dtype: np.dtype
    nodata: float | None


def output_spec(scene: Scene, layout: Layout) -> OutputSpec:
    """One storage dtype for all written bands (their common type; float32 when they mix floats) and
    the nodata value they share (None when none has one)."""
    bands = [scene.bands[i] for i in layout.outputs]
    dtype = np.result_type(*[np.dtype(b.dtype) for b in bands])
    if dtype.kind == "f":
        dtype = np.dtype(np.float32) if dtype.itemsize <= 4 else np.dtype(np.float64)
    values = {b.nodata for b in bands if b.nodata is not None}
    nodata = sorted(values)[0] if values else None
    return OutputSpec(np.dtype(dtype), None if nodata is None else float(nodata))


def tiles(shape: Sequence[int], tile: int) -> list[Window]:
    """Windows of ``tile`` pixels covering ``shape`` (index order), row of tiles after row."""
    return [
        Window(((x, min(x + tile, shape[0])), (y, min(y + tile, shape[1]))))
        for y in range(0, shape[1], tile)
        for x in range(0, shape[0], tile)
    ]


def run_method(
    method: Callable, scene: Scene, layout: Layout, group: Group, window: Window, stats: Sequence[dict]
) -> tuple[np.ndarray, np.ndarray]:
    """``method`` on ``window`` of the output grid: its inputs read with the method's halo, the result cropped
    back to ``window``. Returns physical values and validity, ``(T, *window.shape)`` each."""
    r = int(method.radius)
    inputs = group_inputs(scene, layout, group, Window(window).grown((r, r)), stats, detail=method.needs_detail)
    shape = Window(window).shape
    crop = (slice(None), slice(r, r + shape[0]), slice(r, r + shape[1]))
    return method(inputs)[crop], inputs.valid[crop]


def sharpen_tile(
    scene: Scene,
    layout: Layout,
    methods: Mapping[int, Callable],
    stats: Sequence[dict],
    window: Window,
    spec: OutputSpec,
) -> np.ndarray:
    """Stored values ``(C_out, *window.shape)`` of every written band on ``window`` of the output grid."""
    bands = scene.bands
    idx = [np.arange(a, b) for a, b in window]
    shape = window.shape
    out = np.zeros((len(layout.outputs), *shape), dtype=np.float64)
    valid = np.ones(out.shape, bool)
    slot = {band: k for k, band in enumerate(layout.outputs)}
    for band in layout.outputs:
        rel = layout.relations[band]
        if band in layout.guides:
            values, ok = on_grid(bands[band], rel, idx, 0.0)
            out[slot[band]], valid[slot[band]] = bands[band].stored(values), ok
        elif bands[band].role == "categorical":
            out[slot[band]], valid[slot[band]] = nearest(bands[band], rel, idx)
    for g, group in enumerate(layout.groups):
        if not any(t in slot for t in group.targets):
            continue
        result, ok = run_method(methods[g], scene, layout, group, window, stats)
        for k, band in enumerate(group.targets):
            if band in slot:
                out[slot[band]] = bands[band].stored(result[k])
                valid[slot[band]] = ok[k]
    stored = cast_to_dtype(out, spec.dtype)
    return mark_nodata(stored, valid, spec.nodata, copy=False)


def sharpen_scene(
    scene: Scene,
    layout: Layout,
    methods: Mapping[int, Callable],
    stats: Sequence[dict],
    sink: Sink,
    spec: OutputSpec,
    tile: int = 512,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Sharpen every group of ``scene`` tile by tile into ``sink`` (``(C_out, *layout.grid.shape)``).

    Args:
        scene, layout: the bands and their plan.
        methods: group index -> method (:mod:`.fusion_methods`).
        stats: per band ``{"mean", "std"}`` (nodata fill, network normalisation).
        sink: where finished tiles go; its ``block`` rounds ``tile`` up to whole blocks.
        spec: output dtype and nodata.
        tile: output pixels per tile side.
        progress: called with ``(done, total)`` after each tile.
    """
    block = int(max(sink.block)) if sink.block else 1
    tile = max(block, (int(tile) + block - 1) // block * block)
    boxes = tiles(layout.grid.shape, tile)
    for k, window in enumerate(boxes):
        sink.write(window, sharpen_tile(scene, layout, methods, stats, window, spec))
        if progress is not None:
            progress(k + 1, len(boxes))
