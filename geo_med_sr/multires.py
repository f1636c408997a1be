"""Grids of different resolutions: how they relate, and exact resampling between them (pure numpy).

Guided sharpening combines bands measured on different grids (Sentinel-2's 10/20/60 m bands, a
panchromatic band and its multispectral bands). Everything here is index maths on one axis at a
time, in the package's index order (axis 0 = columns/x, axis 1 = rows/y), with rasterio's
corner-anchored transforms ``(a, b, c, d, e, f)``:

* :class:`Grid`: CRS, transform and size of one band's pixels; :func:`relate` checks that a coarse
  grid nests in a fine one (same CRS, axis-aligned, integer ratio of pixel sizes, overlap) and
  returns the ratio and the sub-pixel **offset** of the coarse grid's corner, in fine pixels
  (USGS Landsat puts the 30 m grid half a 15 m pixel off the pan grid: offset ``(0.5, -0.5)``).
* Sampling a coarse band at the fine grid's pixel centres: fine pixel ``j`` has its centre at
  coarse index ``(j + 0.5 - offset) / ratio - 0.5`` (:func:`fine_positions`); with offset 0 this is
  the rule of DESIGN §3 (``(i + 0.5)/s - 0.5``).
* :class:`Weights`: a linear map from a range of an axis to sample positions (cubic, nearest,
  Gaussian, area average), with mirror reflection folded in at the image border, so that a value
  depends only on global indices: tiles computed separately equal the whole image.

The weights are stored dense but are banded (each sample weighs a few neighbouring inputs):
:func:`apply_banded` multiplies only the band, so a window of ``n`` pixels costs ``O(n^2 * band)``
instead of the ``O(n^3)`` of :func:`apply_separable`.

Area averaging (:func:`area_weights`) is the exact block average over each output pixel's
footprint, also when the footprint straddles input pixels (the reduced-resolution pairs of a
half-pixel-offset product); it is what the Wald protocol uses to reduce every band.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from geo_med_sr.errors import InputError

__all__ = [
    "Grid",
    "Relation",
    "Weights",
    "apply_banded",
    "apply_separable",
    "area_weights",
    "covered_range",
    "cubic_weights",
    "fine_positions",
    "gaussian_kernel",
    "gaussian_weights",
    "keys_cubic",
    "nearest_indices",
    "reflect_indices",
    "relate",
    "tap_weights",
]

#: relative tolerance on a ratio of pixel sizes being an integer, and on a shared CRS axis.
RATIO_TOLERANCE = 1e-6


def reflect_indices(start: int, stop: int, n: int) -> np.ndarray:
    """Indices ``start..stop-1`` folded into ``[0, n)`` by mirror reflection without edge repeat.

    Matches ``numpy.pad(mode="reflect")`` for any distance (repeated folding), and maps
    everything to 0 when ``n == 1``.
    """
    return fold(np.arange(start, stop), n)


def fold(idx: np.ndarray, n: int) -> np.ndarray:
    """Integer indices (any values) folded into ``[0, n)`` like :func:`reflect_indices`."""
    idx = np.asarray(idx, dtype=np.int64)
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - idx, idx)


@dataclass(frozen=True)
class Grid:
    """The pixels of one band: CRS, rasterio transform (corner-anchored) and size in index order.

    Attributes:
        crs: a CRS string comparable for equality (``"EPSG:32629"`` or WKT), or None.
        transform: ``(a, b, c, d, e, f)``: ``x = a*col + b*row + c``, ``y = d*col + e*row + f``.
        shape: ``(columns, rows)``.
    """

    crs: str | None
    transform: tuple[float, float, float, float, float, float]
    shape: tuple[int, int]

    @property
    def step(self) -> tuple[float, float]:
        """Signed pixel size per axis (``a``, ``e``), CRS units."""
        return (float(self.transform[0]), float(self.transform[4]))

    @property
    def origin(self) -> tuple[float, float]:
        """Corner of pixel (0, 0) per axis (``c``, ``f``), CRS units."""
        return (float(self.transform[2]), float(self.transform[5]))

    @property
    def resolution(self) -> float:
        """The larger absolute pixel size (CRS units)."""
        return max(abs(s) for s in self.step)

    def window(self, start: Sequence[int], shape: Sequence[int]) -> Grid:
        """The sub-grid of ``shape`` pixels starting at index ``start`` (index order)."""
        a, b, c, d, e, f = self.transform
        x0, y0 = (int(v) for v in start)
        moved = (a, b, c + a * x0 + b * y0, d, e, f + d * x0 + e * y0)
        return Grid(self.crs, tuple(float(v) for v in moved), (int(shape[0]), int(shape[1])))

    def scaled(self, factor: Sequence[float], shape: Sequence[int]) -> Grid:
        """A grid with pixels ``factor`` times larger per axis, the same corner, ``shape`` pixels."""
        a, b, c, d, e, f = self.transform
        fx, fy = (float(v) for v in factor)
        return Grid(self.crs, (a * fx, b * fy, c, d * fx, e * fy, f), (int(shape[0]), int(shape[1])))

    def centre_affine(self) -> np.ndarray:
        """``(3, 3)`` centre-anchored index -> CRS affine (the package's convention)."""
        a, b, c, d, e, f = self.transform
        return np.array([[a, b, c + (a + b) / 2], [d, e, f + (d + e) / 2], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Relation:
    """How a coarse grid sits on a fine one, per axis (index order).

    Attributes:
        ratio: integer pixel-size ratio coarse/fine per axis.
        offset: position of the coarse grid's corner in fine pixels (fine corner = 0).
    """

    ratio: tuple[int, int]
    offset: tuple[float, float]


def _describe(grid: Grid) -> str:
    a, b, c, d, e, f = grid.transform
    return f"pixel {a:g} x {e:g} at ({c:g}, {f:g}), {grid.shape[0]}x{grid.shape[1]}"


def relate(fine: Grid, coarse: Grid, fine_name: str = "fine band", coarse_name: str = "coarse band") -> Relation:
    """Check that ``coarse`` nests in ``fine`` and say how (ratio and sub-pixel offset).

    Raises:
        InputError: different CRS, a rotated/sheared grid, axes of opposite direction, a
            non-integer ratio, or no overlap; the message says what disagrees and by how much.
    """
    if fine.crs != coarse.crs:
        raise InputError(
            f"{coarse_name} is in CRS {coarse.crs} but {fine_name} is in {fine.crs}; "
            "reproject one of them first (e.g. gdalwarp -t_srs) so that they share a CRS"
        )
    for grid, name in ((fine, fine_name), (coarse, coarse_name)):
        a, b, c, d, e, f = grid.transform
        if b != 0 or d != 0:
            raise InputError(
                f"{name} has a rotated or sheared grid (transform terms b={b:g}, d={d:g}); guided sharpening "
                "needs axis-aligned pixels: warp it to a north-up grid first"
            )
    ratio, offset = [], []
    for axis, (sf, sc, of, oc) in enumerate(zip(fine.step, coarse.step, fine.origin, coarse.origin)):
        label = "x" if axis == 0 else "y"
        if sf == 0 or sc == 0 or (sf > 0) != (sc > 0):
            raise InputError(
                f"{coarse_name} ({_describe(coarse)}) and {fine_name} ({_describe(fine)}) run in opposite "
                f"directions along {label}; flip one of them first"
            )
        r = sc / sf
        rounded = round(r)
        if rounded < 1 or abs(r - rounded) > RATIO_TOLERANCE * max(1.0, r):
            raise InputError(
                f"the {label} pixel size of {coarse_name} ({abs(sc):g}) is {r:.6g} times that of {fine_name} "
                f"({abs(sf):g}), not a whole number; resample one of them to an integer ratio (e.g. 2, 3 or 6)"
            )
        ratio.append(int(rounded))
        offset.append((oc - of) / sf)
    relation = Relation((ratio[0], ratio[1]), (offset[0], offset[1]))
    for axis in range(2):
        lo, hi = covered_range(fine.shape[axis], coarse.shape[axis], relation.ratio[axis], relation.offset[axis])
        if hi <= lo:
            raise InputError(
                f"{coarse_name} ({_describe(coarse)}) and {fine_name} ({_describe(fine)}) do not overlap along "
                f"{'x' if axis == 0 else 'y'}; give bands of the same scene"
            )
    return relation


def fine_positions(indices: np.ndarray, ratio: int, offset: float) -> np.ndarray:
    """Centre-index coordinates on the coarse grid of the centres of fine pixels ``indices``."""
    return (np.asarray(indices, dtype=np.float64) + 0.5 - offset) / ratio - 0.5


def covered_range(n_fine: int, n_coarse: int, ratio: int, offset: float) -> tuple[int, int]:
    """Half-open range of fine indices whose centres lie inside the coarse grid's extent (edges included)."""
    lo = math.ceil(offset - 0.5 - 1e-9)
    hi = math.floor(offset + ratio * n_coarse - 0.5 + 1e-9) + 1
    return max(lo, 0), min(hi, n_fine)


@dataclass(frozen=True)
class Weights:
    """A linear map ``values[lo:lo+k] -> samples`` along one axis: ``samples = matrix @ values[lo:lo+k]``.

    Attributes:
        matrix: ``(m, k)`` float64 weights (mirror reflection at the border already folded in).
        lo: first index of the input range the columns refer to.
    """

    matrix: np.ndarray
    lo: int

    @property
    def hi(self) -> int:
        """One past the last input index the columns refer to."""
        return self.lo + self.matrix.shape[1]

    def then(self, outer: Weights) -> Weights:
        """``outer`` applied after this map (``outer``'s inputs are this map's sample rows)."""
        return Weights(outer.matrix @ self.matrix, self.lo)

    def compose(self, inner: Weights) -> Weights:
        """This map applied to the output of ``inner``, whose rows must be the indices ``self.lo..self.hi``."""
        if inner.matrix.shape[0] != self.matrix.shape[1]:
            raise ValueError(f"cannot compose {self.matrix.shape} with {inner.matrix.shape}")
        return Weights(self.matrix @ inner.matrix, inner.lo)


def tap_weights(taps: np.ndarray, weights: np.ndarray, n: int | None) -> Weights:
    """Dense weights from per-sample ``taps`` (``(m, t)`` global indices) folded into ``[0, n)`` (None: unfolded)."""
    folded = taps if n is None else fold(taps, n)
    lo, hi = int(folded.min()), int(folded.max()) + 1
    matrix = np.zeros((taps.shape[0], hi - lo))
    rows = np.repeat(np.arange(taps.shape[0]), taps.shape[1])
    np.add.at(matrix, (rows, folded.ravel() - lo), weights.ravel())
    return Weights(matrix, lo)


def keys_cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (``a = -0.5``, the usual bicubic) at ``t``."""
    x = np.abs(t)
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def cubic_weights(
    positions: np.ndarray, n: int | None, kernel: Callable[[np.ndarray], np.ndarray] = keys_cubic
) -> Weights:
    """Cubic interpolation of an axis of ``n`` samples at centre-index ``positions`` (4 taps, mirror border;
    ``n`` None: an unbounded axis, taps never folded)."""
    positions = np.asarray(positions, dtype=np.float64)
    base = np.floor(positions).astype(np.int64)
    taps = base[:, None] + np.arange(-1, 3)[None, :]
    return tap_weights(taps, kernel(positions[:, None] - taps), n)


def nearest_indices(positions: np.ndarray, n: int) -> np.ndarray:
    """Index of the pixel containing each centre-index position (clamped to ``[0, n)``)."""
    return np.clip(np.floor(np.asarray(positions) + 0.5).astype(np.int64), 0, n - 1)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """The normalised Gaussian (standard deviation ``sigma`` pixels) on taps ``-r..r``, ``r = ceil(3 sigma)``."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_weights(indices: np.ndarray, n: int, sigma: float) -> Weights:
    """Gaussian low-pass (standard deviation ``sigma`` pixels, normalised, radius ``ceil(3 sigma)``) at ``indices``."""
    kernel = gaussian_kernel(sigma)
    offsets = np.arange(len(kernel)) - len(kernel) // 2
    taps = np.asarray(indices, dtype=np.int64)[:, None] + offsets[None, :]
    return tap_weights(taps, np.broadcast_to(kernel, taps.shape), n)


def area_weights(n_out: int, q: float, offset: float, n_in: int) -> Weights:
    """Exact area average onto ``n_out`` pixels of ``q`` input pixels each, the first starting at ``offset``.

    Output pixel ``i`` covers ``[offset + i*q, offset + (i+1)*q)`` in input corner coordinates; its
    value is the mean of the input over that footprint (partial pixels weighted by their overlap).

    Raises:
        InputError: a footprint leaving ``[0, n_in]``.
    """
    starts = offset + q * np.arange(n_out)
    if n_out < 1 or starts[0] < -1e-9 or starts[-1] + q > n_in + 1e-9:
        raise InputError(f"{n_out} pixels of {q:g} starting at {offset:g} do not fit in {n_in} input pixels")
    lo = max(0, math.floor(starts[0] + 1e-9))
    hi = min(n_in, math.ceil(starts[-1] + q - 1e-9))
    # the input pixels each footprint can touch (its first and ceil(q) more): the other weights are 0
    cols = np.floor(starts).astype(np.int64)[:, None] + np.arange(math.ceil(q) + 1)
    rows = np.broadcast_to(np.arange(n_out)[:, None], cols.shape)
    inside = (cols >= lo) & (cols < hi)
    rows, cols = rows[inside], cols[inside]
    left = np.maximum(starts[rows], cols.astype(np.float64))
    right = np.minimum(starts[rows] + q, (cols + 1).astype(np.float64))
    matrix = np.zeros((n_out, hi - lo))
    matrix[rows, cols - lo] = np.clip(right - left, 0.0, None) / q
    return Weights(matrix, lo)


def apply_separable(values: np.ndarray, wx: Weights, wy: Weights) -> np.ndarray:
    """``(C, X, Y)`` values (indices ``wx.lo.., wy.lo..``) -> ``(C, mx, my)`` samples (float64)."""
    block = np.asarray(values, dtype=np.float64)
    shape = (wx.matrix.shape[0], wy.matrix.shape[0])
    if block.shape[1:] != (wx.matrix.shape[1], wy.matrix.shape[1]):
        raise ValueError(f"values {block.shape[1:]} do not match weights {wx.matrix.shape}, {wy.matrix.shape}")
    return np.stack([wx.matrix @ plane @ wy.matrix.T for plane in block]) if len(block) else np.zeros((0, *shape))


#: output samples per block of :func:`apply_banded`: each block multiplies only the input range its rows weigh
#: (the band plus the block), in one BLAS call for all planes. Shorter blocks multiply fewer zeros (2-3x faster
#: with one BLAS thread for a narrow band such as an area average) but make more calls, and each call of a
#: multithreaded BLAS waits for its threads: on a loaded 2-core machine blocks sized to the band (16-64 rows)
#: made the GLP fit 2x slower than 128-row blocks, which were as fast as 256.
BAND_ROWS = 128


def _band_blocks(matrix: np.ndarray, rows: int = BAND_ROWS) -> list[tuple[slice, slice]]:
    """Blocks of ``rows`` rows of ``matrix`` ``(m, k)`` with the column range holding their non-zero weights:
    ``[(row_slice, column_slice), ...]`` (an empty column slice for a block of zero rows)."""
    nonzero = matrix != 0
    blocks = []
    for start in range(0, matrix.shape[0], rows):
        stop = min(start + rows, matrix.shape[0])
        cols = np.flatnonzero(nonzero[start:stop].any(axis=0))
        span = slice(int(cols[0]), int(cols[-1]) + 1) if cols.size else slice(0, 0)
        blocks.append((slice(start, stop), span))
    return blocks


def apply_banded(values: np.ndarray, wx: Weights, wy: Weights, rows: int = BAND_ROWS) -> np.ndarray:
    """:func:`apply_separable` for banded weights (cubic, area, Gaussian and their compositions): ``(C, X, Y)``
    -> ``(C, mx, my)`` float64 in ``O(C * X * Y * (band + rows))`` instead of ``O(C * X * Y * (X + Y))``.

    Each block of ``rows`` output samples along an axis (see :data:`BAND_ROWS`) is one matrix product over the
    inputs it weighs, for all ``C`` planes at once (few large BLAS calls). Equal to
    :func:`apply_separable` up to the order of rounding of the sums (a few ulp): the terms left out are products
    with zero weights. The result is a view of one ``(mx, C, my)`` array (contiguous when ``C`` is 1).
    """
    block = np.asarray(values, dtype=np.float64)
    (mx, kx), (my, ky), c = wx.matrix.shape, wy.matrix.shape, len(block)
    if block.shape[1:] != (kx, ky):
        raise ValueError(f"values {block.shape[1:]} do not match weights {wx.matrix.shape}, {wy.matrix.shape}")
    planes = block.reshape(c * kx, ky)
    along_y = np.zeros((c * kx, my))
    for rs, cs in _band_blocks(wy.matrix, rows):
        if cs.stop > cs.start:
            along_y[:, rs] = planes[:, cs] @ wy.matrix[rs, cs].T
    side = np.ascontiguousarray(along_y.reshape(c, kx, my).transpose(1, 0, 2)).reshape(kx, c * my)
    del along_y
    out = np.zeros((mx, c * my))
    for rs, cs in _band_blocks(wx.matrix, rows):
        if cs.stop > cs.start:
            out[rs] = wx.matrix[rs, cs] @ side[cs]
    return out.reshape(mx, c, my).transpose(1, 0, 2)
