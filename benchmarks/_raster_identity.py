"""Shared by the comparison benchmarks: are two outputs (GeoTIFF, NIfTI) the same, and if not, how far apart?"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

__all__ = ["compare_outputs", "compare_rasters", "compare_volumes", "pixel_digest"]


def pixel_digest(path: str | Path) -> str:
    """SHA-256 of the pixel bytes of every band (full resolution), read band by band with rasterio."""
    import rasterio

    digest = hashlib.sha256()
    with rasterio.open(path) as src:
        for band in range(1, src.count + 1):
            digest.update(np.ascontiguousarray(src.read(band)).tobytes())
    return digest.hexdigest()


def _metadata(src) -> dict:
    """Everything but the pixels that a reader of the file sees (JSON-friendly strings and lists)."""
    profile = {k: (v.to_wkt() if k == "crs" and v is not None else v) for k, v in src.profile.items()}
    profile["transform"] = list(src.transform)[:6]
    return {
        "profile": {k: str(v) for k, v in sorted(profile.items())},
        "crs": src.crs.to_wkt() if src.crs else None,
        "transform": list(src.transform)[:6],
        "descriptions": list(src.descriptions),
        "nodatavals": [str(v) for v in src.nodatavals],
        "scales": list(src.scales),
        "offsets": list(src.offsets),
        "tags": src.tags(),
        "band_tags": [src.tags(b) for b in range(1, src.count + 1)],
        "overviews": [src.overviews(b) for b in range(1, src.count + 1)],
    }


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compare_rasters(a: str | Path, b: str | Path) -> dict:
    """Compare ``a`` with ``b``: metadata, full-resolution pixels band by band, overview pixels, file bytes.

    Returns:
        ``{"identical", "pixels_identical", "metadata_differs", "overviews_identical", "file_bytes_identical",
        "max_abs_diff", "band_max_abs_diff"}``: ``identical`` means byte-equal pixel arrays (every band,
        every overview level) and equal metadata (profile, transform, CRS, band descriptions, nodata,
        scales/offsets, dataset and band tags, overview factors); ``metadata_differs`` names the keys that
        differ; ``band_max_abs_diff`` maps band description (or number) to the largest absolute
        difference (``None`` where the pixels could not be compared: other shape or band count).
    """
    import rasterio

    a, b = Path(a), Path(b)
    with rasterio.open(a) as x, rasterio.open(b) as y:
        ma, mb = _metadata(x), _metadata(y)
        differs = [k for k in ma if ma[k] != mb[k]]
        comparable = x.count == y.count and x.shape == y.shape and x.dtypes == y.dtypes
        bands: dict[str, float | None] = {}
        pixels = comparable
        for band in range(1, x.count + 1):
            name = x.descriptions[band - 1] or str(band)
            if not comparable:
                bands[name] = None
                continue
            p, q = x.read(band), y.read(band)
            if p.tobytes() == q.tobytes():
                bands[name] = 0.0
            else:
                pixels = False
                bands[name] = float(np.abs(p.astype(np.float64) - q.astype(np.float64)).max())
        levels = x.overviews(1) if comparable else []
    overviews = comparable and ma["overviews"] == mb["overviews"]
    for level in range(len(levels) if overviews else 0):
        with rasterio.open(a, overview_level=level) as x, rasterio.open(b, overview_level=level) as y:
            for band in range(1, x.count + 1):
                if x.read(band).tobytes() != y.read(band).tobytes():
                    overviews = False
    known = [v for v in bands.values() if v is not None]
    return {
        "identical": bool(pixels and overviews and not differs),
        "pixels_identical": bool(pixels),
        "overviews_identical": bool(overviews),
        "metadata_differs": differs,
        "file_bytes_identical": _file_sha256(a) == _file_sha256(b),
        "max_abs_diff": max(known) if known else None,
        "band_max_abs_diff": bands,
    }


def compare_volumes(a: str | Path, b: str | Path) -> dict:
    """Compare two NIfTI files: header bytes, affine, voxel arrays (and the file bytes), keys as ``compare_rasters``."""
    import nibabel as nib

    a, b = Path(a), Path(b)
    x, y = nib.load(a), nib.load(b)
    differs = []
    if x.header.binaryblock != y.header.binaryblock:
        differs.append("header")
    if not np.array_equal(x.affine, y.affine):
        differs.append("affine")
    p, q = np.asanyarray(x.dataobj), np.asanyarray(y.dataobj)
    comparable = p.shape == q.shape and p.dtype == q.dtype
    same = comparable and p.tobytes() == q.tobytes()
    diff = 0.0 if same else (float(np.abs(p.astype(np.float64) - q.astype(np.float64)).max()) if comparable else None)
    return {
        "identical": bool(same and not differs),
        "pixels_identical": bool(same),
        "metadata_differs": differs,
        "file_bytes_identical": _file_sha256(a) == _file_sha256(b),
        "max_abs_diff": diff,
        "band_max_abs_diff": {"volume": diff},
    }


def compare_outputs(a: str | Path, b: str | Path) -> dict:
    """``compare_rasters`` or ``compare_volumes`` by suffix, plus the JSON sidecars when there are any.

    A sidecar (``OUT.json`` beside a NIfTI) that differs is named in ``metadata_differs`` as ``sidecar``.
    """
    import json

    a, b = Path(a), Path(b)
    result = compare_volumes(a, b) if a.name.endswith((".nii", ".nii.gz")) else compare_rasters(a, b)
    sides = [p.parent / (p.name.split(".")[0] + ".json") for p in (a, b)]
    if any(s.exists() for s in sides):
        same = all(s.exists() for s in sides) and json.loads(sides[0].read_text()) == json.loads(sides[1].read_text())
        if not same:
            result["metadata_differs"].append("sidecar")
            result["identical"] = False
    return result
