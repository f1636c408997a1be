"""NIfTI-1/NIfTI-2 adapter (nibabel).

Reading gives real-world values (``scl_slope``/``scl_inter`` applied) as float32 when the file is
scaled, else in the stored dtype; spatial axes i, j, k; the 4th axis (time, echoes...) becomes
the channel axis. nibabel's affine is already centre-anchored voxel index -> RAS+ mm, which is
the package convention, so no conversion is needed. Writing keeps the on-disk dtype, the
qform/sform codes, units, description and TR of the source.

Provenance (``meta["provenance"]``) is stored twice: as JSON in a NIfTI header extension of
code ``comment`` (inside the image file, so it is written atomically with the voxels; this is
what :meth:`NiftiAdapter.read_provenance` reads), and in a BIDS-style JSON sidecar beside the
image (``out.json`` for ``out.nii.gz``) holding ``{"Description": ..., "GeoMedSR": provenance}``
for tools that read sidecars rather than header extensions.
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
from .base import ADAPTERS, Adapter, provenance_from_text

SUFFIXES = (".nii", ".nii.gz")
#: NIfTI header extension code of the provenance JSON (nibabel's name for code 6).
PROVENANCE_ECODE = "comment"
#: key of the provenance in the JSON sidecar.
SIDECAR_KEY = "GeoMedSR"


def _has_suffix(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def sidecar_path(path: Path) -> Path:
    """The BIDS-style sidecar of a NIfTI path: ``out.nii.gz`` / ``out.nii`` -> ``out.json``."""
    path = Path(path)
    name = path.name
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else name[: -len(".nii")]
    return path.with_name(stem + ".json")


def sidecar_content(provenance: dict[str, Any]) -> dict[str, Any]:
    """Sidecar JSON: a BIDS ``Description`` line and the provenance under ``"GeoMedSR"``."""
    parts = [f"{key} {provenance[key]}" for key in ("method", "model") if provenance.get(key) is not None]
    scale = provenance.get("scale")
    if scale is not None:
        parts.append(f"scale {'x'.join(str(s) for s in scale) if isinstance(scale, (list, tuple)) else scale}")
    tool = provenance.get("tool") or "geo_med_sr"
    description = f"Super-resolved by {tool}" + (f" ({', '.join(parts)})" if parts else "")
    return {"Description": description, SIDECAR_KEY: provenance}


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
    domain = "medical"
    spatial_dims = 3  # 2D files are read as one-slice volumes
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
            raise file_error(
                InputError, path, f"NIfTI data of shape {data.shape} is not supported: expected 2D, 3D or 4D"
            )
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
        provenance = image.meta.get("provenance")
        if provenance is not None:
            payload = json.dumps(provenance, sort_keys=True).encode()
            header.extensions.append(nib.nifti1.Nifti1Extension(PROVENANCE_ECODE, payload))
        if data.ndim == 4 and info.get("pixdim4"):
            header["pixdim"][4] = info["pixdim4"]
        try:
            nib.save(img, str(path))
            if provenance is not None:
                text = json.dumps(sidecar_content(provenance), indent=2, sort_keys=True)
                sidecar_path(path).write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise file_error(OutputError, path, f"could not write NIfTI ({exc})") from exc

    @classmethod
    def companions(cls, path: Path) -> list[Path]:
        """The JSON sidecar ``write`` creates beside ``path`` when the image has a provenance."""
        return [sidecar_path(path)]

    @classmethod
    def owns_companion(cls, path: Path) -> bool:
        """True for a JSON sidecar holding our ``"GeoMedSR"`` key (a JSON object); never raises."""
        try:
            content = json.loads(Path(path).read_text()) if Path(path).is_file() else None
        except (OSError, ValueError):
            return False
        return isinstance(content, dict) and SIDECAR_KEY in content

    @classmethod
    def read_provenance(cls, path: Path) -> dict[str, Any] | None:
        """The provenance JSON of the header extension (header only; the voxels are not read).

        Returns None when the file is missing, not a readable NIfTI header, or has no
        ``comment`` extension holding a JSON object.
        """
        try:
            img = nib.load(str(path))
            extensions = list(img.header.extensions)
        except Exception:  # nibabel raises many types for corrupt or partial files: no provenance
            return None
        for extension in extensions:
            if extension.get_code() == nib.nifti1.extension_codes.code[PROVENANCE_ECODE]:
                provenance = provenance_from_text(extension.get_content())
                if provenance is not None:
                    return provenance
        return None

    @classmethod
    def describe(cls, image: Any) -> dict[str, Any]:
        """sform/qform codes, units, scaling and description of an image or opened source."""
        info = image.meta.get("nifti", {})
        return {
            "sform/qform code": f"{info.get('sform_code')}/{info.get('qform_code')}",
            "units": info.get("xyz_units"),
            "scaled (scl_slope/inter)": info.get("scaled"),
            "description": info.get("descrip"),
        }


ADAPTERS.add("nifti", NiftiAdapter)
