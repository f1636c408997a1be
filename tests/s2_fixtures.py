"""Small Sentinel-2-like products for the sharpening tests: band files on the 10/20 m grids
(``s2_folder``), and a reader of an output's pixels and metadata (``read``).

Import from tests with ``from s2_fixtures import s2_folder`` (the tests folder is on the path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine

CRS = "EPSG:32749"
S2_10 = ("B02", "B03", "B04", "B08")
S2_20 = ("B05", "B06", "B07", "B8A", "B11", "B12")


def write_band(path: Path, data: np.ndarray, transform: Affine, crs: str = CRS, nodata=0, driver="GTiff") -> Path:
    """A single-band file; ``data`` is ``(rows, cols)``."""
    profile = {
        "driver": driver,
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
    }
    if nodata is not None:
        profile["nodata"] = nodata
    if driver == "JP2OpenJPEG":  # lossless, as ESA's products
        profile.update(QUALITY="100", REVERSIBLE="YES")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def scene_arrays(n: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Reflectance x1e4 (rows, cols) of 10 m, 20 m and 60 m bands with shared structure."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.random((n, n)), 2.0)
    base = (base - base.min()) / np.ptp(base)
    out = {}
    for k, name in enumerate(S2_10):
        out[name] = 500 + 2000 * base + 300 * k + 50 * gaussian_filter(rng.random((n, n)), 1.0)
    fine20 = {name: 800 + 2500 * base + 200 * k for k, name in enumerate(S2_20)}
    out.update({k: v.reshape(n // 2, 2, n // 2, 2).mean((1, 3)) for k, v in fine20.items()})
    out["B01"] = (400 + 1000 * base).reshape(n // 6, 6, n // 6, 6).mean((1, 3)) if n % 6 == 0 else None
    return {k: v for k, v in out.items() if v is not None}


def s2_folder(root: Path, n: int = 48, scl: bool = True, seed: int = 0) -> Path:
    """A Sentinel-2 COG-layout folder (B02.tif ...) with 10/20/60 m grids sharing the upper-left corner."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in scene_arrays(n, seed).items():
        step = 10 * n / data.shape[0]
        write_band(root / f"{name}.tif", np.round(data).astype(np.uint16), Affine(step, 0, 600000, 0, -step, 7100000))
    if scl:
        classes = (np.arange((n // 2) ** 2).reshape(n // 2, n // 2) % 11 + 1).astype(np.uint8)
        write_band(root / "SCL.tif", classes, Affine(20, 0, 600000, 0, -20, 7100000))
    return root


def read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        return src.read(), {
            "transform": src.transform,
            "crs": src.crs.to_string(),
            "descriptions": src.descriptions,
            "tags": [src.tags(i) for i in range(1, src.count + 1)],
            "scales": src.scales,
            "offsets": src.offsets,
            "nodata": src.nodata,
            "dtypes": src.dtypes,
            "meta": src.tags(),
        }
