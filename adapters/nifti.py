"""NIfTI-1/NIfTI-2 adapter (nibabel).

Reading gives real-world values in a ``(T, X, Y, Z)`` array (the 4th axis, time or echoes,
becomes the channel axis; 2D files are one-slice volumes): the stored dtype when the file is
unscaled, else ``raw * scl_slope + scl_inter`` as float32 (8/16-bit storage) or float64 (wider
storage). nibabel's affine is already centre-anchored voxel index -> RAS+ mm, the package
convention. Refused before any voxel is read, with a one-line :class:`InputError`: complex and
RGB data, headers whose voxel count does not fit the file (truncated file, lying dims) or
exceeds 1 TiB.

Writing keeps the header of the source (``meta["nifti"]``, JSON-able, filled by ``read``):

============  =====================================================================================
carried       qform_code, sform_code (0 stays 0), xyzt_units, pixdim[4..7] (TR...), toffset,
              dim_info, intent_code/name/p1..p3, cal_min/cal_max, descrip, aux_file, the storage
              dtype and, for integer storage, the source's own scl_slope/scl_inter; slice_code/
              start/end/duration only when the slice axis (dim_info) is not scaled
recomputed    dim, pixdim[0..3], quatern_*/qoffset_* and srow_* (the source's qform and sform each
              mapped by the same index map ``M = inv(A_in) @ A_out``), vox_offset
dropped       slice timing of a scaled slice axis (written 0), the source's header extensions
              (ours holds the new provenance), glmin/glmax and the Analyze legacy fields
============  =====================================================================================

The engine's output (:meth:`NiftiAdapter.open_sink`) is streamed: each window is cast to the
storage dtype and written to disk as it is finished, then the header is put in front of it when
the run ends, so the output never sits in memory whole (:mod:`geo_med_sr.adapters.nifti_stream`); the
file is byte for byte what :meth:`NiftiAdapter.write` writes for the same values. The header fields and
the storage scaling are in :mod:`geo_med_sr.adapters.nifti_header`.

Float storage is written unscaled (slope 1, inter 0). The output is NIfTI-2 when the source was,
or when a dimension exceeds NIfTI-1's 32767.

Provenance (``meta["provenance"]``) is stored twice: as JSON in a NIfTI header extension of
code ``comment`` (inside the image file, so it is written atomically with the voxels; this is
what :meth:`NiftiAdapter.read_provenance` reads), and in a BIDS-style JSON sidecar beside the
image (``out.json`` for ``out.nii.gz``) holding ``{"Description": ..., "GeoMedSR": provenance}``
for tools that read sidecars rather than header extensions.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.openers import Opener
from nibabel.volumeutils import seek_tell

from geo_med_sr.adapters.base import ADAPTERS, Adapter, provenance_from_text
from geo_med_sr.adapters.nifti_header import header_meta, set_header, storage_of
from geo_med_sr.adapters.nifti_stream import COPY_CHUNK, StreamedSink
from geo_med_sr.dtypes import cast_to_dtype
from geo_med_sr.errors import InputError, OutputError, file_error
from geo_med_sr.spatial import SpatialArray

SUFFIXES = (".nii", ".nii.gz")
#: NIfTI header extension code of the provenance JSON (nibabel's name for code 6).
PROVENANCE_ECODE = "comment"
#: key of the provenance in the JSON sidecar.
SIDECAR_KEY = "GeoMedSR"
#: largest voxel payload a header may describe (bytes) before anything is allocated.
MAX_VOXEL_BYTES = 2**40
#: deflate cannot expand more than ~1032:1, so a .nii.gz of n bytes holds at most this many times n.
GZIP_MAX_RATIO = 1032
_RGB_NAMES = {128: "RGB24", 2304: "RGBA32"}


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


# ------------------------------------------------------------------ checks before reading voxels


def _size_text(nbytes: int) -> str:
    """``157286400`` -> ``"157 MB"`` (decimal units, 3 significant digits)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes} bytes"


def _check_dtype(path: Path, img: nib.Nifti1Image) -> np.dtype:
    """The stored dtype, or InputError for RGB, complex and other non-numeric data."""
    stored = img.get_data_dtype()
    code = int(img.header["datatype"])
    if stored.fields is not None:
        name = _RGB_NAMES.get(code, f"code {code}")
        raise file_error(
            InputError,
            path,
            f"RGB NIfTI (datatype {name}) is not supported; convert it to a 4D file with one volume per colour, "
            "e.g. in Python: nib.Nifti1Image(numpy.stack([d['R'], d['G'], d['B']], -1), img.affine) "
            "with d = numpy.asanyarray(img.dataobj)",
        )
    if stored.kind == "c":
        raise file_error(
            InputError,
            path,
            f"complex data ({stored.name}) is not supported; write the magnitude/phase or real/imaginary parts "
            "as separate files",
        )
    if stored.kind not in "iuf" or stored.itemsize > 8:
        raise file_error(InputError, path, f"NIfTI data of type {stored} is not supported; convert it to float64")
    return stored


def _gzip_payload(path: Path, limit: int) -> int:
    """Bytes a (possibly damaged) gzip file decompresses to, counted up to ``limit``."""
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while total < limit:
                chunk = stream.read(min(1 << 16, limit - total))
                if not chunk:
                    break
                total += len(chunk)
    except (OSError, EOFError, zlib.error):
        pass
    return total


def _check_size(path: Path, img: nib.Nifti1Image, stored: np.dtype) -> tuple[int, str]:
    """``(voxel bytes, description)`` of the header, or InputError when the file cannot hold them."""
    shape = tuple(int(n) for n in img.shape)
    needed = math.prod(shape) * stored.itemsize
    described = f"the header describes {'x'.join(map(str, shape))} {stored.name} = {_size_text(needed)} of voxels"
    size, offset = path.stat().st_size, int(img.dataobj.offset)
    if needed > MAX_VOXEL_BYTES:
        raise file_error(InputError, path, f"{described}, more than the 1 TiB this tool reads; the header is wrong")
    if path.name.lower().endswith(".gz"):
        if offset + needed > GZIP_MAX_RATIO * size:
            raise file_error(
                InputError,
                path,
                f"not a readable NIfTI file: {described} but the file holds {_size_text(size)} compressed, which "
                f"cannot decompress to more than {_size_text(GZIP_MAX_RATIO * size)}; the file is truncated or "
                "its header is wrong",
            )
    elif size - offset < needed:
        raise file_error(
            InputError,
            path,
            f"not a readable NIfTI file: {described} but the file holds {_size_text(max(size - offset, 0))} after "
            "the header; the file is truncated or its header is wrong",
        )
    return needed, described


def _read_raw(path: Path, img: nib.Nifti1Image, needed: int, described: str) -> np.ndarray:
    """The stored (unscaled) voxels; a short or damaged stream becomes a one-line InputError."""
    try:
        return np.asanyarray(img.dataobj.get_unscaled())
    except MemoryError as exc:
        raise file_error(InputError, path, f"{described}: not enough memory to read them") from exc
    except Exception as exc:  # EOFError, OSError, zlib.error, ValueError from a short or damaged stream
        offset, gz = int(img.dataobj.offset), path.name.lower().endswith(".gz")
        held = _gzip_payload(path, offset + needed) - offset if gz else needed
        if held < needed:
            problem = f"{described} but the file holds {_size_text(max(held, 0))} after the header"
        else:
            problem = f"the {'compressed ' if gz else ''}data is damaged or ends early ({type(exc).__name__}: {exc})"
        raise file_error(
            InputError, path, f"not a readable NIfTI file: {problem}; the file is truncated or its header is wrong"
        ) from exc


class NiftiAdapter(Adapter):
    """``.nii`` / ``.nii.gz`` files, 2D to 4D."""

    name = "nifti"
    domain = "medical"
    spatial_dims = 3  # 2D files are read as one-slice volumes
    is_folder = False
    #: the input is read whole (nibabel); the output is streamed to disk window by window (:class:`StreamedSink`).
    reads_windows = False
    writes_windows = True

    @classmethod
    def can_read(cls, path: Path) -> bool:
        return path.is_file() and _has_suffix(path)

    @classmethod
    def can_write(cls, path: Path) -> bool:
        return _has_suffix(path)

    @classmethod
    def read(cls, path: Path, **options: Any) -> SpatialArray:
        """Read ``path`` into a ``(T, X, Y, Z)`` SpatialArray (``T = 1`` for 3D files, ``Z = 1`` for 2D).

        The header is checked (dimensions, data type, file size) before any voxel is read.
        """
        path = Path(path)
        try:
            img = nib.load(str(path))
        except Exception as exc:  # nibabel raises many types for corrupt files
            raise file_error(InputError, path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise file_error(InputError, path, f"expected a NIfTI image, nibabel read a {type(img).__name__}")
        if not 2 <= len(img.shape) <= 4:
            raise file_error(
                InputError, path, f"NIfTI data of shape {img.shape} is not supported: expected 2D, 3D or 4D"
            )
        stored = _check_dtype(path, img)
        data = _read_raw(path, img, *_check_size(path, img, stored))
        while data.ndim < 3:
            data = data[..., np.newaxis]
        array = data[np.newaxis] if data.ndim == 3 else np.moveaxis(data, 3, 0)
        slope, inter = float(img.dataobj.slope), float(img.dataobj.inter)
        scaled = not (slope == 1.0 and inter == 0.0)
        if scaled:  # real-world values; float32 holds 8/16-bit storage times a slope, wider storage needs float64
            real = np.float32 if stored.itemsize <= 2 or stored == np.float32 else np.float64
            array = array.astype(real) * real(slope) + real(inter)
        info = {**header_meta(img), "scaled": bool(scaled)}
        info["scl_slope"], info["scl_inter"] = (slope, inter) if scaled else (None, None)
        meta = {"format": "nifti", "source": str(path), "dtype": stored.name, "nifti": info}
        meta["description"] = info["descrip"]
        return SpatialArray(array=np.ascontiguousarray(array), affine=img.affine, meta=meta)

    @classmethod
    def write(cls, image: SpatialArray, path: Path, **options: Any) -> None:
        """Write ``image`` (``(T, X, Y, Z)`` real-world values, float32 or float64) to ``path``.

        Values are stored as ``meta["dtype"]``: integer storage of a scaled source keeps the
        source's ``scl_slope``/``scl_inter`` and stores ``round((value - inter) / slope)`` clipped
        to the dtype (0 stays 0 when inter is 0); other integer storage is rounded and clipped;
        float storage is unscaled. The header is the source's one on the new grid (module doc).
        """
        dtype, slope, inter = storage_of(image.meta, image.spatial_dims, path)
        unchanged = image.array.dtype == dtype and (slope, inter) == (1.0, 0.0)  # e.g. int64 beyond 2**53: no cast
        raw = image.array if unchanged else cast_to_dtype(image.array, dtype, slope, inter)
        cls.write_stored(raw, image.affine, image.meta, path, **options)

    @classmethod
    def open_sink(
        cls,
        path: Path,
        shape: tuple[int, ...],
        affine: np.ndarray,
        meta: dict[str, Any],
        dtype: np.dtype | str,
        *,
        name: str | Path | None = None,
        **options: Any,
    ) -> StreamedSink:
        """A sink that writes each window to disk as it arrives, cast to the storage dtype (the storage
        scaling depends on the metadata only); the header is written when it closes (:class:`StreamedSink`)."""
        return StreamedSink(cls, Path(path), tuple(shape), affine, meta, **options)

    @classmethod
    def _image(
        cls,
        data: Any,
        storage: tuple[np.dtype, float, float],
        affine: np.ndarray,
        meta: dict[str, Any],
        **options: Any,
    ) -> nib.Nifti1Image:
        """The nibabel image of stored values ``data`` ``(X, Y, Z[, T])`` with ``storage`` ``(dtype, slope,
        inter)`` (:func:`storage_of`), header and provenance extension set."""
        dtype, slope, inter = storage
        info = meta.get("nifti") or {}
        nifti2 = info.get("version") == 2 or max(data.shape) > 32767
        image_class = nib.Nifti2Image if nifti2 else nib.Nifti1Image
        header = image_class.header_class()
        header.set_data_dtype(dtype)
        header.set_data_shape(data.shape)
        description = options.get("description") or info.get("descrip") or meta.get("description", "")
        set_header(header, info, affine, description)
        img = image_class(data, header.get_best_affine(), header=header)
        img.header.set_slope_inter(slope, inter)  # after construction: nibabel resets the scaling of a new image
        provenance = meta.get("provenance")
        if provenance is not None:
            payload = json.dumps(provenance, sort_keys=True).encode()
            img.header.extensions.append(nib.nifti1.Nifti1Extension(PROVENANCE_ECODE, payload))
        return img

    @classmethod
    def _write_sidecar(cls, meta: dict[str, Any], path: Path) -> None:
        provenance = meta.get("provenance")
        if provenance is not None:
            text = json.dumps(sidecar_content(provenance), indent=2, sort_keys=True)
            sidecar_path(path).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def write_stored(
        cls, raw: np.ndarray, affine: np.ndarray, meta: dict[str, Any], path: Path, **options: Any
    ) -> None:
        """Write stored values ``raw`` ``(T, X, Y, Z)`` (already in the storage dtype of :func:`storage_of`)."""
        storage = storage_of(meta, raw.ndim - 1, path)
        img = cls._image(raw[0] if raw.shape[0] == 1 else np.moveaxis(raw, 0, 3), storage, affine, meta, **options)
        try:
            nib.save(img, str(path))
            cls._write_sidecar(meta, path)
        except OSError as exc:
            raise file_error(OutputError, path, f"could not write NIfTI ({exc})") from exc

    @classmethod
    def finish_streamed(
        cls, fd: int, shape: tuple[int, ...], affine: np.ndarray, meta: dict[str, Any], path: Path, **options: Any
    ) -> None:
        """Write ``path`` from a data block already on disk: ``fd`` positioned at its start, holding the stored
        values of a ``(T, X, Y, Z)`` output in file order (:class:`StreamedSink`).

        The header is what :meth:`write_stored` writes for the same values (nibabel's own ``update_header``
        and ``write_to``, on a zero-stride placeholder array); the block is copied behind it in chunks.
        """
        t, nx, ny, nz = shape
        file_shape = (nx, ny, nz) if t == 1 else (nx, ny, nz, t)
        storage = storage_of(meta, 3, path)
        placeholder = np.broadcast_to(np.zeros((), storage[0]), file_shape)
        img = cls._image(placeholder, storage, affine, meta, **options)
        img.update_header()  # as nibabel's to_file_map does before writing
        header = img.header
        try:
            with Opener(str(path), "wb") as handle:
                header.write_to(handle)
                seek_tell(handle, header.get_data_offset(), write0=True)
                while chunk := os.read(fd, COPY_CHUNK):
                    handle.write(chunk)
            cls._write_sidecar(meta, path)
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
