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
the run ends, so the output never sits in memory whole; the file is byte for byte what
:meth:`NiftiAdapter.write` writes for the same values.

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
import tempfile
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.openers import Opener
from nibabel.volumeutils import seek_tell

from geo_med_sr.adapters.base import ADAPTERS, Adapter, AdapterSink, provenance_from_text
from geo_med_sr.dtypes import cast_to_dtype
from geo_med_sr.errors import InputError, OutputError, file_error
from geo_med_sr.inference.protocols import Window
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
#: header fields copied verbatim (name -> JSON type).
_CARRIED = {
    "intent_code": int,
    "toffset": float,
    "cal_min": float,
    "cal_max": float,
}
_SLICE_TIMING = {"slice_code": int, "slice_start": int, "slice_end": int, "slice_duration": float}
_TEXT = {"descrip": 80, "aux_file": 24, "intent_name": 16}


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


# ------------------------------------------------------------------ header fields


def _text(value: Any) -> str:
    value = value.item() if hasattr(value, "item") else value
    return value.decode("latin-1").rstrip("\x00") if isinstance(value, bytes) else str(value)


def _float_or_none(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _header_meta(img: nib.Nifti1Image) -> dict[str, Any]:
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


def _index_map(info: dict[str, Any], affine: np.ndarray) -> np.ndarray | None:
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


def _set_header(header: nib.Nifti1Header, info: dict[str, Any], affine: np.ndarray, description: str) -> None:
    """Fill ``header`` (shape and dtype already set) from the source's ``info`` for the grid ``affine``."""
    index_map = _index_map(info, affine)
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


def _storage_scaling(meta: dict[str, Any], info: dict[str, Any], dtype: np.dtype) -> tuple[float, float]:
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


def _storage(meta: dict[str, Any], spatial_dims: int, path: Path) -> tuple[np.dtype, float, float]:
    """``(dtype, scl_slope, scl_inter)`` an output with ``meta`` is stored with (refusals name ``path``)."""
    if spatial_dims != 3:
        raise file_error(OutputError, path, f"NIfTI output needs 3 spatial axes, got {spatial_dims}")
    dtype = np.dtype(meta.get("dtype", "float32"))
    if dtype.kind not in "iuf":
        raise file_error(OutputError, path, f"NIfTI output of dtype {dtype} is not supported")
    return (dtype, *_storage_scaling(meta, meta.get("nifti") or {}, dtype))


#: bytes per read when :class:`_StreamedSink` copies its finished data block into the file.
COPY_CHUNK = 1 << 24


def _pwrite_all(fd: int, data: np.ndarray, offset: int) -> None:
    """Write the bytes of the C-contiguous ``data`` at byte ``offset`` of ``fd`` (short writes continued)."""
    view = memoryview(data).cast("B")
    while len(view):
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


class _StreamedSink(AdapterSink):
    """An :class:`~geo_med_sr.inference.protocols.ImageSink` that never holds the whole output.

    Each window is cast to the storage dtype (:func:`_storage`) as it arrives and written with
    ``os.pwrite`` into a scratch file beside ``path`` laid out as the NIfTI data block (``X``
    fastest, then ``Y``, ``Z``, ``T``); :meth:`close` writes the header (built as
    :meth:`NiftiAdapter.write_stored` builds it, with the metadata as it is then) and copies the block
    behind it, ``.nii.gz`` compressed on the way, :data:`COPY_CHUNK` bytes at a time. Memory: one
    window and one chunk. Voxels no window covers are 0, as in a fresh array. The scratch file is
    removed on :meth:`close` and :meth:`abort` (and lies in the I/O layer's temporary folder).

    Arguments as for :class:`~geo_med_sr.adapters.base.AdapterSink` (``adapter`` is :class:`NiftiAdapter`,
    whose ``finish_streamed`` writes the file; ``shape`` is ``(T, X, Y, Z)``).
    """

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)  # dtype None: windows arrive as float32 and are cast here
        #: ``(dtype, slope, inter)`` the file stores; the dtype in native byte order, as nibabel writes it
        dtype, slope, inter = _storage(self.meta, len(self.shape) - 1, self.path)
        self.storage = (dtype.newbyteorder("="), slope, inter)
        self._fd: int | None = None
        self._scratch: Path | None = None
        try:
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".data")
            self._fd, self._scratch = fd, Path(name)
            os.ftruncate(fd, math.prod(self.shape) * self.storage[0].itemsize)  # sparse: unwritten voxels are 0
        except OSError as exc:
            self.abort()
            raise file_error(OutputError, self.path, f"could not make the scratch file ({exc})") from exc

    def write(self, window: Window, data: np.ndarray) -> None:
        """Cast ``data`` ``(T, *window.shape)`` and write it at ``window`` of the data block."""
        if self._fd is None:
            raise file_error(OutputError, self.path, "the sink is already closed; open a new sink")
        (x0, x1), (y0, y1), (z0, z1) = Window(window)
        _, nx, ny, nz = self.shape
        stored = cast_to_dtype(data, *self.storage)
        item = self.storage[0].itemsize
        for t, volume in enumerate(stored):
            rows = np.ascontiguousarray(volume.transpose(2, 1, 0))  # (z, y, x): x runs are contiguous
            base = t * nz + z0
            if x1 - x0 == nx and y1 - y0 == ny:  # whole slices: one run
                _pwrite_all(self._fd, rows, base * ny * nx * item)
            elif x1 - x0 == nx:  # whole rows: one run per slice
                for k, plane in enumerate(rows):
                    _pwrite_all(self._fd, plane, ((base + k) * ny + y0) * nx * item)
            else:
                for k, plane in enumerate(rows):
                    for j, row in enumerate(plane):
                        _pwrite_all(self._fd, row, (((base + k) * ny + y0 + j) * nx + x0) * item)

    def close(self) -> None:
        """Write the file from the data block (once; later calls do nothing)."""
        if self._fd is None:
            return
        try:
            os.lseek(self._fd, 0, os.SEEK_SET)
            self.adapter.finish_streamed(self._fd, self.shape, self.affine, self.meta, self.path, **self.options)
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the output: the scratch file is removed, nothing is written."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        if self._scratch is not None:
            self._scratch.unlink(missing_ok=True)


class NiftiAdapter(Adapter):
    """``.nii`` / ``.nii.gz`` files, 2D to 4D."""

    name = "nifti"
    domain = "medical"
    spatial_dims = 3  # 2D files are read as one-slice volumes
    is_folder = False
    #: the input is read whole (nibabel); the output is streamed to disk window by window (:class:`_StreamedSink`).
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
        info = {**_header_meta(img), "scaled": bool(scaled)}
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
        dtype, slope, inter = _storage(image.meta, image.spatial_dims, path)
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
    ) -> _StreamedSink:
        """A sink that writes each window to disk as it arrives, cast to the storage dtype (the storage
        scaling depends on the metadata only); the header is written when it closes (:class:`_StreamedSink`)."""
        return _StreamedSink(cls, Path(path), tuple(shape), affine, meta, **options)

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
        inter)`` (:func:`_storage`), header and provenance extension set."""
        dtype, slope, inter = storage
        info = meta.get("nifti") or {}
        nifti2 = info.get("version") == 2 or max(data.shape) > 32767
        image_class = nib.Nifti2Image if nifti2 else nib.Nifti1Image
        header = image_class.header_class()
        header.set_data_dtype(dtype)
        header.set_data_shape(data.shape)
        description = options.get("description") or info.get("descrip") or meta.get("description", "")
        _set_header(header, info, affine, description)
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
        """Write stored values ``raw`` ``(T, X, Y, Z)`` (already in the storage dtype of :func:`_storage`)."""
        storage = _storage(meta, raw.ndim - 1, path)
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
        values of a ``(T, X, Y, Z)`` output in file order (:class:`_StreamedSink`).

        The header is what :meth:`write_stored` writes for the same values (nibabel's own ``update_header``
        and ``write_to``, on a zero-stride placeholder array); the block is copied behind it in chunks.
        """
        t, nx, ny, nz = shape
        file_shape = (nx, ny, nz) if t == 1 else (nx, ny, nz, t)
        storage = _storage(meta, 3, path)
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
