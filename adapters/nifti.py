"""NIfTI-1/NIfTI-2 adapter (nibabel).

Reading gives real-world values (``scl_slope``/``scl_inter`` applied) as float32 when the file is
scaled, else in the stored dtype; spatial axes i, j, k; the 4th axis (time, echoes...) becomes
the channel axis. nibabel's affine is already centre-anchored voxel index -> RAS+ mm, which is
the package convention, so no conversion is needed. Writing keeps the on-disk dtype, the
qform/sform codes, units, description and TR of the source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..dtypes import cast_to_dtype
from ..errors import InputError, OutputError, file_error
from ..spatial import SpatialArray
from .base import ADAPTERS, Adapter

SUFFIXES = (".nii", ".nii.gz")


def _has_suffix(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def _header_meta(header: nib.Nifti1Header) -> dict[str, Any]:
    xyz_units, t_units = header.get_xyzt_units()
    zooms = header.get_zooms()
    descrip = header["descrip"].item()
    return {
        "sform_code": int(header["sform_code"]),
        "qform_code": int(header["qform_code"]),
        "xyz_units": xyz_units,
        "t_units": t_units,
        "descrip": descrip.decode("latin-1").rstrip("\x00") if isinstance(descrip, bytes) else str(descrip),
        "pixdim4": float(zooms[3]) if len(zooms) > 3 else None,
    }


class NiftiAdapter(Adapter):
    """``.nii`` / ``.nii.gz`` files, 2D to 4D."""

    name = "nifti"
    is_folder = False

    @classmethod
    def can_read(cls, path: Path) -> bool:
        return path.is_file() and _has_suffix(path)

    @classmethod
    def can_write(cls, path: Path) -> bool:
        return _has_suffix(path)

    @classmethod
    def read(cls, path: Path, **options: Any) -> SpatialArray:
        """Read ``path`` into a ``(T, X, Y, Z)`` SpatialArray (``T = 1`` for 3D files)."""
        path = Path(path)
        try:
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
        except Exception as exc:  # nibabel raises many types for corrupt files
            raise file_error(InputError, path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise file_error(InputError, path, f"expected a NIfTI image, nibabel read a {type(img).__name__}")
        if data.ndim > 4 or data.ndim < 2:
            raise file_error(InputError, path, f"NIfTI data of shape {data.shape} is not supported: expected 2D, 3D or 4D")
        while data.ndim < 3:
            data = data[..., np.newaxis]
        array = data[np.newaxis] if data.ndim == 3 else np.moveaxis(data, 3, 0)
        stored = img.get_data_dtype()
        slope, inter = img.dataobj.slope, img.dataobj.inter
        scaled = not (slope in (None, 1.0) and inter in (None, 0.0))
        if scaled:
            array = array.astype(np.float32)
        meta = {
            "format": "nifti",
            "source": str(path),
            "dtype": str(stored),
            "nifti": {**_header_meta(img.header), "scaled": bool(scaled)},
        }
        meta["description"] = meta["nifti"]["descrip"]
        return SpatialArray(array=np.ascontiguousarray(array), affine=img.affine, meta=meta)

    @classmethod
    def write(cls, image: SpatialArray, path: Path, **options: Any) -> None:
        """Write ``image`` (``(T, X, Y, Z)``) to ``path``; values are cast to ``meta["dtype"]``.

        Integer storage of a scaled source lets nibabel choose ``scl_slope``/``scl_inter`` for
        the new value range; unscaled integer storage is rounded and clipped.
        """
        if image.spatial_dims != 3:
            raise file_error(OutputError, path, f"NIfTI output needs 3 spatial axes, got {image.spatial_dims}")
        info = image.meta.get("nifti", {})
        dtype = np.dtype(image.meta.get("dtype", "float32"))
        array = image.array
        rescale = image.meta.get("rescale")
        scaled = bool(info.get("scaled", False)) or (rescale is not None and tuple(rescale) != (1.0, 0.0))
        if dtype.kind in "iu" and not scaled:
            array = cast_to_dtype(array, dtype)
        data = array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, 3)
        img = nib.Nifti1Image(data, image.affine)
        header = img.header
        header.set_data_dtype(dtype)
        header.set_xyzt_units(info.get("xyz_units") or "mm", info.get("t_units") or "sec")
        img.set_sform(image.affine, code=int(info.get("sform_code", 1)) or 1)
        img.set_qform(image.affine, code=int(info.get("qform_code", 1)) or 1)
        description = options.get("description") or info.get("descrip") or image.meta.get("description", "")
        header["descrip"] = description.encode("latin-1", "replace")[:79]
        if "provenance" in image.meta:
            payload = json.dumps(image.meta["provenance"], sort_keys=True).encode()
            header.extensions.append(nib.nifti1.Nifti1Extension("comment", payload))
        if data.ndim == 4 and info.get("pixdim4"):
            header["pixdim"][4] = info["pixdim4"]
        try:
            nib.save(img, str(path))
        except OSError as exc:
            raise file_error(OutputError, path, f"could not write NIfTI ({exc})") from exc

    @classmethod
    def describe(cls, image: SpatialArray) -> dict[str, Any]:
        info = image.meta.get("nifti", {})
        return {
            "sform/qform code": f"{info.get('sform_code')}/{info.get('qform_code')}",
            "units": info.get("xyz_units"),
            "scaled (scl_slope/inter)": info.get("scaled"),
            "description": info.get("descrip"),
        }


ADAPTERS.add("nifti", NiftiAdapter)
