"""Guided sharpening on the window driver: only what is specific to sharpening lives here.

The walk over block-aligned tiles of the output grid, the halo (the methods' largest receptive
radius), the reader and writer threads, progress, the cast to the output dtype, nodata marking
and the writes belong to :class:`~geo_med_sr.inference.driver.WindowDriver`. The driver reads
the **guides** (the bands of the output grid) itself, as guide Sources on the output grid, on
each tile grown by the halo and mirror-reflected outside the grid. Sharpening's compute adds:

* which bands each group needs: the coarse bands sampled under the tile
  (:func:`~.scene.group_inputs`, fed the driver's guide windows cropped to each method's radius);
* the output band order: guides copied, sharpened bands converted back to their stored numbers,
  categorical bands (SCL) by nearest neighbour.

Every value is a function of global indices, so the result does not depend on the tile size.
Where the time goes is summed per stage on a :class:`StageClock` (reported, never written).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geo_med_sr.inference.driver import WindowDriver, WindowInputs
from geo_med_sr.inference.protocols import GuidedMethod, OutputSpec, Sink, Window
from geo_med_sr.multires import Relation
from geo_med_sr.sharpening.scene import Band, Group, GroupInputs, Layout, Scene, group_inputs, nearest

__all__ = ["GuideSource", "OutputSpec", "StageClock", "output_spec", "run_method", "sharpen_scene"]


class StageClock:
    """Wall-clock seconds per stage of a job, summed over every call (``with clock("read"): ...``).

    What :func:`sharpen_scene` adds: ``read`` (the guide windows and their physical values),
    ``inputs`` (each group's coarse bands sampled under the tile, the guides' detail), ``network``
    (the methods) and ``write`` (the sink's writes). The times are reported, never written into an
    output: the same job gives the same bytes. With the driver's threads the stages overlap.

    Attributes:
        seconds: stage name -> seconds, in the order the stages first ran.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        """Count ``seconds`` more for ``stage``."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)


def output_spec(scene: Scene, layout: Layout) -> OutputSpec:
    """One storage dtype for all written bands (their common type; float32 when they mix floats) and
    the nodata value they share (None when none has one; NaN for a float output, so that NaN, infinite
    and masked pixels stay NaN in their own band instead of becoming 0 or invented values)."""
    bands = [scene.bands[i] for i in layout.outputs]
    dtype = np.result_type(*[np.dtype(b.dtype) for b in bands])
    if dtype.kind == "f":
        dtype = np.dtype(np.float32) if dtype.itemsize <= 4 else np.dtype(np.float64)
    values = {b.nodata for b in bands if b.nodata is not None}
    nodata = sorted(values)[0] if values else (float("nan") if dtype.kind == "f" else None)
    return OutputSpec(np.dtype(dtype), None if nodata is None else float(nodata))


def run_method(
    method: GuidedMethod, scene: Scene, layout: Layout, group: Group, window: Window, stats: Sequence[dict]
) -> tuple[np.ndarray, np.ndarray]:
    """``method`` on one ``window`` of the output grid, outside the driver (whole-scene evaluation):
    its inputs read with the method's halo, the result cropped back to ``window``. Returns physical
    values and validity, ``(T, *window.shape)`` each."""
    r = int(method.receptive_radius)
    inputs = group_inputs(scene, layout, group, Window(window).grown((r, r)), stats, detail=method.needs_detail)
    return _cropped(method, inputs, r, Window(window).shape)


def _cropped(method: GuidedMethod, inputs: GroupInputs, r: int, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    crop = (slice(None), slice(r, r + shape[0]), slice(r, r + shape[1]))
    return method(inputs)[crop], inputs.valid[crop]


class GuideSource:
    """A band of the output grid as a one-channel Source on the output grid (its offset removed).

    Args:
        band: a guide band (ratio 1 to the output grid).
        relation: its relation to the output grid (an integer offset).
        shape: the output grid's shape.
        clock: where the reads count as ``read`` (None: not timed).
    """

    def __init__(self, band: Band, relation: Relation, shape: Sequence[int], clock: StageClock | None = None) -> None:
        self.source = band.source
        self.shift = tuple(int(round(o)) for o in relation.offset)
        self.shape = (1, *(int(n) for n in shape))
        self.clock = clock if clock is not None else StageClock()

    def _own(self, window: Window) -> Window:
        return Window((a - s, b - s) for (a, b), s in zip(window, self.shift))

    def read(self, window: Window) -> np.ndarray:
        """Stored values ``(1, *window.shape)``."""
        with self.clock("read"):
            return self.source.read(self._own(window))

    def read_valid(self, window: Window) -> np.ndarray | None:
        with self.clock("read"):
            return self.source.read_valid(self._own(window))

    def read_band_valid(self, window: Window) -> None:
        """None: one band, whose validity :meth:`read_valid` gives."""
        return None


@dataclass
class _Tile:
    """What the reader prepared for one tile: its window, the copied categorical bands' stored
    values and validity (output slot -> ``(W, H)`` each), and the guides' physical values (invalid
    pixels at the band's mean) and validity on the tile grown by the halo (``(G, W, H)`` each).
    Each group's inputs, and the guides' own output copies, are made from these only when needed
    (in :meth:`_Sharpening._sharpen`), so no second copy of a guide is held beside the output."""

    window: Window
    copies: dict[int, tuple[np.ndarray, np.ndarray]]
    guides: np.ndarray
    guide_valid: np.ndarray


class _Sharpening:
    """The window driver's compute for guided sharpening (windows on the output grid, scale 1).

    ``prepare`` (reader thread) turns the driver's guide windows into physical values and reads the
    categorical bands under the tile; ``__call__`` (main thread) makes each group's inputs (the
    coarse bands under the tile, the guides), runs its method and assembles the output bands in order.
    """

    def __init__(
        self,
        scene: Scene,
        layout: Layout,
        methods: Mapping[int, GuidedMethod],
        stats: Sequence[dict],
        clock: StageClock,
    ) -> None:
        self.scene, self.layout, self.methods, self.stats, self.clock = scene, layout, methods, stats, clock
        self.slot = {band: k for k, band in enumerate(layout.outputs)}
        self.written = [g for g, group in enumerate(layout.groups) if any(t in self.slot for t in group.targets)]
        #: output pixels of context around a tile: the largest receptive radius of the methods that run
        self.halo = max((int(methods[g].receptive_radius) for g in self.written), default=0)

    def prepare(self, windows: list[WindowInputs]) -> list[_Tile]:
        with self.clock("read"):
            return [self._prepare(w) for w in windows]

    def _prepare(self, w: WindowInputs) -> _Tile:
        bands, layout = self.scene.bands, self.layout
        window = w.patch.owned
        # the guides' physical values and validity on the read box (tile grown by the halo), stacked
        # ``(G, W, H)`` so that each group's inputs take a view of them instead of a copy
        shape = w.output_read.shape
        values = np.empty((len(layout.guides), *shape), np.float64)
        valid = np.ones(values.shape, bool)
        for k, (i, raw, ok) in enumerate(zip(layout.guides, w.guides, w.guide_valid)):
            values[k] = bands[i].physical(raw[0])
            if ok is not None:
                valid[k] = np.asarray(ok, bool)
            valid[k] &= np.isfinite(values[k])
        copies = {}
        idx = [np.arange(a, b) for a, b in window]
        for band in layout.outputs:
            if band not in layout.guides and bands[band].role == "categorical":
                copies[self.slot[band]] = nearest(bands[band], layout.relations[band], idx)
        for k, i in enumerate(layout.guides):
            values[k][~valid[k]] = self.stats[i]["mean"]  # as the methods see the guides (in place: no copy)
        return _Tile(window, copies, values, valid)

    def _copy_guides(self, tile: _Tile, out: np.ndarray, valid: np.ndarray) -> None:
        """Write the guide bands that are also outputs into their slots of ``out``/``valid``
        (stored values; invalid pixels 0 before the inverse radiometry, as the writer re-marks them)."""
        halo, shape, layout = self.halo, tile.window.shape, self.layout
        own = (slice(halo, halo + shape[0]), slice(halo, halo + shape[1]))
        for band in layout.outputs:
            if band in layout.guides:
                g, k = layout.guides.index(band), self.slot[band]
                ok = tile.guide_valid[g][own]
                out[k] = self.scene.bands[band].stored(np.where(ok, tile.guides[g][own], 0.0))
                valid[k] = ok

    def _group_inputs(self, tile: _Tile, g: int) -> GroupInputs:
        """Group ``g``'s inputs on ``tile`` grown by its method's radius (guides from the prepared ones)."""
        method = self.methods[g]
        halo, r, shape = self.halo, int(method.receptive_radius), tile.window.shape
        crop = (slice(None), slice(halo - r, halo + r + shape[0]), slice(halo - r, halo + r + shape[1]))
        guides = tile.guides[crop]  # a view; invalid pixels already at the band mean (see _prepare)
        guide_valid = tile.guide_valid[crop].all(axis=0)
        return group_inputs(
            self.scene,
            self.layout,
            self.layout.groups[g],
            tile.window.grown((r, r)),
            self.stats,
            detail=method.needs_detail,
            guide_values=(guides, guide_valid),
        )

    def __call__(self, tiles: list[_Tile]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self._sharpen(tile) for tile in tiles]

    def _sharpen(self, tile: _Tile) -> tuple[np.ndarray, np.ndarray]:
        """Stored values (float64, not yet rounded) and validity ``(C_out, *tile.shape)``."""
        bands = self.scene.bands
        out = np.zeros((len(self.layout.outputs), *tile.window.shape), dtype=np.float64)
        valid = np.ones(out.shape, bool)
        for k, (values, ok) in tile.copies.items():
            out[k], valid[k] = values, ok
        self._copy_guides(tile, out, valid)
        for g in self.written:
            method = self.methods[g]
            with self.clock("inputs"):
                inputs = self._group_inputs(tile, g)
            with self.clock("network"):
                result, ok = _cropped(method, inputs, int(method.receptive_radius), tile.window.shape)
            del inputs
            for k, band in enumerate(self.layout.groups[g].targets):
                if band in self.slot:
                    out[self.slot[band]] = bands[band].stored(result[k])
                    valid[self.slot[band]] = ok[k]
        return out, valid

    def finish(self, values: np.ndarray) -> np.ndarray:
        return values


class _TimedSink:
    """``sink`` with its writes counted as ``write`` on ``clock`` (everything else passed through)."""

    def __init__(self, sink: Sink, clock: StageClock) -> None:
        self.sink, self.clock = sink, clock

    @property
    def block(self) -> tuple[int, ...]:
        return self.sink.block

    def write(self, window: Window, data: np.ndarray, *args: Any, **kwargs: Any) -> None:
        with self.clock("write"):
            self.sink.write(window, data, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)


def sharpen_scene(
    scene: Scene,
    layout: Layout,
    methods: Mapping[int, GuidedMethod],
    stats: Sequence[dict],
    sink: Sink,
    spec: OutputSpec,
    tile: int = 512,
    progress: Callable[[int, int], None] | None = None,
    threads: bool = False,
    clock: StageClock | None = None,
) -> None:
    """Sharpen every group of ``scene`` tile by tile into ``sink`` (``(C_out, *layout.grid.shape)``).

    Args:
        scene, layout: the bands and their plan.
        methods: group index -> method (:mod:`.methods`).
        stats: per band ``{"mean", "std"}`` (nodata fill, network normalisation).
        sink: where finished tiles go; its ``block`` rounds ``tile`` up to whole blocks.
        spec: output dtype and nodata.
        tile: output pixels per tile side.
        progress: called with ``(done, total)`` after each tile.
        threads: read and write in the driver's background threads. Off by default: a sharpening
            window holds every band of a 512-pixel tile in float64 and its methods hold the GIL, so
            the queued windows cost peak memory (+8 to +20 % on the shared S2 scene) and gained no time
            (``benchmarks/bench_compare.py``); the output is the same either way.
        clock: where the seconds of ``read``, ``inputs``, ``network`` and ``write`` are added
            (:class:`StageClock`); None: not kept.
    """
    clock = clock if clock is not None else StageClock()
    compute = _Sharpening(scene, layout, methods, stats, clock)
    shape = layout.grid.shape
    guides = [GuideSource(scene.bands[i], layout.relations[i], shape, clock) for i in layout.guides]
    driver = WindowDriver(
        (1, 1),
        tile,
        compute.halo,
        aligned=True,
        threads=threads,
        progress=progress if progress is not None else False,
        desc="sharpening",
        unit="tile",
    )
    driver.run(compute, _TimedSink(sink, clock), spec, guides=guides, shape=shape)
