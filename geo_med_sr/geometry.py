"""Pure geometry functions (numpy only; no I/O, no torch).

Conventions (DESIGN §3):

* An affine is an ``(n+1, n+1)`` float64 matrix mapping the array index of a pixel/voxel
  **centre** to world coordinates (RAS mm for medical data, CRS units for rasters).
* Spatial axes are in index order, fastest axis first (NIfTI i,j,k; DICOM column,row,slice;
  GeoTIFF column,row).
* ``scale`` is a per-axis positive factor; ``scale > 1`` makes the grid finer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geo_med_sr.errors import ScaleError
from geo_med_sr.scale import as_scale

#: LPS (DICOM/ITK) <-> RAS (NIfTI) flip of the world axes; its own inverse.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def scale_affine(affine: np.ndarray, scale: float | Sequence[float]) -> np.ndarray:
    """Affine of the grid refined by ``scale`` that keeps the field of view.

    ``A_hr = A_lr @ S`` with ``S = diag(1/s_0, ..., 1/s_{n-1}, 1)`` and translation column
    ``(1/s_i - 1)/2``: HR centre ``j`` sits at LR index ``(j + 0.5)/s - 0.5``. A fractional
    ``scale = 1/b`` gives the affine of a ``b``-block average.

    Args:
        affine: ``(n+1, n+1)`` centre-anchored index->world matrix of the input grid.
        scale: per-axis factor (number or ``n`` numbers).

    Returns:
        ``(n+1, n+1)`` float64 affine of the output grid.
    """
    affine = np.asarray(affine, dtype=np.float64)
    n = affine.shape[0] - 1
    s = np.asarray(as_scale(scale, n, whole=False))
    index_map = np.eye(n + 1)
    index_map[:n, :n] = np.diag(1.0 / s)
    index_map[:n, n] = (1.0 / s - 1.0) / 2.0
    return affine @ index_map


def scaled_shape(shape: Sequence[int], scale: Sequence[float]) -> tuple[int, ...]:
    """Spatial shape after scaling; each ``shape[i] * scale[i]`` must be an integer."""
    out = []
    for n, s in zip(shape, scale):
        value = n * s
        if abs(value - round(value)) > 1e-9:
            raise ScaleError(f"axis of size {n} cannot be scaled by {s}: {value} is not a whole number of voxels")
        out.append(int(round(value)))
    return tuple(out)


def spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size per index axis: the column norms of the linear part, shape ``(n,)``."""
    affine = np.asarray(affine, dtype=np.float64)
    n = affine.shape[0] - 1
    return np.linalg.norm(affine[:n, :n], axis=0)


def direction(affine: np.ndarray) -> np.ndarray:
    """Unit direction cosines of each index axis (columns), shape ``(n, n)``."""
    affine = np.asarray(affine, dtype=np.float64)
    n = affine.shape[0] - 1
    return affine[:n, :n] / spacing(affine)


def origin(affine: np.ndarray) -> np.ndarray:
    """World position of the centre of voxel 0, shape ``(n,)``."""
    affine = np.asarray(affine, dtype=np.float64)
    return affine[:-1, -1].copy()


def compose_affine(direction_cols: np.ndarray, spacing_vec: Sequence[float], origin_vec: Sequence[float]) -> np.ndarray:
    """Centre-anchored affine from direction cosines (columns), spacing and origin."""
    d = np.asarray(direction_cols, dtype=np.float64)
    n = d.shape[0]
    out = np.eye(n + 1)
    out[:n, :n] = d * np.asarray(spacing_vec, dtype=np.float64)
    out[:n, n] = np.asarray(origin_vec, dtype=np.float64)
    return out


def corner_to_centre(affine: np.ndarray) -> np.ndarray:
    """Convert a corner-anchored affine (index 0 = outer corner of pixel 0) to centre-anchored."""
    affine = np.asarray(affine, dtype=np.float64)
    n = affine.shape[0] - 1
    shift = np.eye(n + 1)
    shift[:n, n] = 0.5
    return affine @ shift


def centre_to_corner(affine: np.ndarray) -> np.ndarray:
    """Convert a centre-anchored affine to corner-anchored (inverse of :func:`corner_to_centre`)."""
    affine = np.asarray(affine, dtype=np.float64)
    n = affine.shape[0] - 1
    shift = np.eye(n + 1)
    shift[:n, n] = -0.5
    return affine @ shift


def lps_to_ras(affine: np.ndarray) -> np.ndarray:
    """Flip the world axes of a 3D affine between LPS and RAS (the map is its own inverse)."""
    return LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)


ras_to_lps = lps_to_ras


def orientation_code(affine: np.ndarray, labels: str = "RAS", opposite: str = "LPI") -> str:
    """Closest world-axis label for each index axis, e.g. ``"RAS"`` or ``"LPS"``.

    Greedy on the direction cosines: the largest remaining ``|cos|`` fixes one (world axis,
    index axis) pair at a time; the sign picks ``labels`` (positive) or ``opposite``.
    """
    d = np.abs(direction(affine))
    signs = np.sign(direction(affine))
    n = d.shape[0]
    code = [""] * n
    for _ in range(n):
        w, col = np.unravel_index(np.argmax(d), d.shape)
        code[col] = labels[w] if signs[w, col] >= 0 else opposite[w]
        d[w, :] = -1.0
        d[:, col] = -1.0
    return "".join(code)


def affine_difference_in_voxels(a: np.ndarray, b: np.ndarray) -> float:
    """Largest displacement between the grids of two affines, in voxels of ``a``.

    Compares where the corners of the unit index cube land; zero means identical grids.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = a.shape[0] - 1
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * n, indexing="ij")).reshape(n, -1)
    pts = np.vstack([corners, np.ones(corners.shape[1])])
    diff_world = (a - b) @ pts
    diff_index = np.linalg.solve(a[:n, :n], diff_world[:n])
    return float(np.max(np.abs(diff_index)))
