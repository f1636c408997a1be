"""NIfTI header fields: the record of a source header kept in ``meta["nifti"]`` and the header of an
output rebuilt from it on a new grid (qform and sform mapped by the same index map), and the storage
``(dtype, scl_slope, scl_inter)`` an output is written with. See :mod:`geo_med_sr.adapters.nifti` for
what is carried, recomputed and dropped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from geo_med_sr.errors import OutputError, file_error

__all__ = ["header_meta", "index_map_of", "set_header", "storage_of", "storage_scaling"]

#: header fields copied verbatim (name -> JSON type).
_CARRIED = {
    "intent_code": int,
    "toffset": float,
    "cal_min": float,
    "cal_max": float,
}
_SLICE_TIMING = {"slice_code": int, "slice_start": int, "slice_end": int, "slice_duration": float}
_TEXT = {"descrip": 80, "aux_file": 24, "intent_name": 16}


def _text(value: Any) -> str:
    value = value.item() if hasattr(value, "item") else value
    return value.decode("latin-1").rstrip("\x00") if isinstance(value, bytes) else str(value)


def _float_or_none(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def header_meta(img: nib.Nifti1Image) -> dict[str, Any]:
    """The JSON-able record ``write`` needs to rebuild the header on a new grid (``meta["nifti"]``)."""
    header = img.header
    xyz_units, t_units = header.get_xyzt_units()
    pixdim = [float(v) for v in header["pixdim"]]
    info: dict[str, Any] = {
        "version": 2 if isinstance(header, nib.Nifti2Header) else 1,
        "sform_code": int(header["sform_code"]),
        "qform_code": int(header["qform_code"]),
        "affine": np.asarray(img.affine, np.float64).tolist(),
        "qform": header.get_qform().tolist(),
        "sform": header.get_sform().tolist(),
        "xyz_units": xyz_units,
        "t_units": t_units,
        "xyzt_units": int(header["xyzt_units"]),
        "pixdim_t": pixdim[4:8],
        "pixdim4": pixdim[4] if len(img.shape) > 3 else None,
        "dim_info": list(header.get_dim_info()),
        "intent_p": [float(header[f"intent_p{i}"]) for i in (1, 2, 3)],
        "scl_slope": _float_or_none(header["scl_slope"]),
        "scl_inter": _float_or_none(header["scl_inter"]),
    }
    for name, kind in {**_CARRIED, **_SLICE_TIMING}.items():
        info[name] = kind(header[name])
    for name in _TEXT:
        info[name] = _text(header[name])
    return info


def index_map_of(info: dict[str, Any], affine: np.ndarray) -> np.ndarray | None:
    """``M = inv(A_in) @ A_out`` from the source's affine to ``affine``, when it is a per-axis
    scale and shift (what ``scale_affine`` makes); None otherwise (no source affine, resampled)."""
    if info.get("affine") is None:
        return None
    try:
        index_map = np.linalg.solve(np.asarray(info["affine"], np.float64), np.asarray(affine, np.float64))
    except np.linalg.LinAlgError:
        return None
    linear = index_map[:3, :3]
    diagonal = np.diag(linear)
    if not np.allclose(linear, np.diag(diagonal), atol=1e-9) or np.any(diagonal <= 0):
        return None
    return index_map


def set_header(header: nib.Nifti1Header, info: dict[str, Any], affine: np.ndarray, description: str) -> None:
    """Fill ``header`` (shape and dtype already set) from the source's ``info`` for the grid ``affine``."""
    index_map = index_map_of(info, affine)
    if index_map is None:
        qform = sform = affine
    else:
        qform, sform = (np.asarray(info[key], np.float64) @ index_map for key in ("qform", "sform"))
        if not np.all(np.isfinite(qform)):  # garbage quaternion fields under qform_code 0
            qform = affine
    header.set_qform(qform, code=int(info.get("qform_code", 1)))
    header.set_sform(sform, code=int(info.get("sform_code", 1)))
    if "xyzt_units" in info:
        header["xyzt_units"] = info["xyzt_units"]
    else:
        header.set_xyzt_units(info.get("xyz_units") or "mm", info.get("t_units") or "sec")
    pixdim_t = info.get("pixdim_t") or [info.get("pixdim4") or 1.0, 1.0, 1.0, 1.0]
    header["pixdim"][4:8] = pixdim_t
    for name in _CARRIED:
        if name in info:
            header[name] = info[name]
    for i, value in enumerate(info.get("intent_p", [])[:3], start=1):
        header[f"intent_p{i}"] = value
    for name, size in _TEXT.items():
        text = description if name == "descrip" else info.get(name, "")
        header[name] = str(text).encode("latin-1", "replace")[: size - 1]
    freq, phase, slice_dim = (list(info.get("dim_info") or []) + [None] * 3)[:3]
    header.set_dim_info(freq, phase, slice_dim)
    if index_map is not None:
        scaled = ~np.isclose(np.diag(index_map)[:3], 1.0, rtol=0, atol=1e-9)
        if not (scaled[slice_dim] if slice_dim is not None else scaled.any()):
            for name in _SLICE_TIMING:
                header[name] = info.get(name, 0)


def storage_scaling(meta: dict[str, Any], info: dict[str, Any], dtype: np.dtype) -> tuple[float, float]:
    """``(scl_slope, scl_inter)`` of the output: the source's own pair for integer storage of a
    scaled source (or a DICOM ``rescale``), else ``(1, 0)``."""
    if dtype.kind not in "iu":
        return 1.0, 0.0
    if info.get("scaled") and info.get("scl_slope"):
        return float(info["scl_slope"]), float(info.get("scl_inter") or 0.0)
    rescale = meta.get("rescale")
    if not info and isinstance(rescale, (list, tuple)) and len(rescale) == 2 and float(rescale[0]) != 0:
        return float(rescale[0]), float(rescale[1])
    return 1.0, 0.0


def storage_of(meta: dict[str, Any], spatial_dims: int, path: Path) -> tuple[np.dtype, float, float]:
    """``(dtype, scl_slope, scl_inter)`` an output with ``meta`` is stored with (refusals name ``path``)."""
    if spatial_dims != 3:
        raise file_error(OutputError, path, f"NIfTI output needs 3 spatial axes, got {spatial_dims}")
    dtype = np.dtype(meta.get("dtype", "float32"))
    if dtype.kind not in "iuf":
        raise file_error(OutputError, path, f"NIfTI output of dtype {dtype} is not supported")
    return (dtype, *storage_scaling(meta, meta.get("nifti") or {}, dtype))
