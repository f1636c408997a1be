"""The I/O layer: dispatch to the registered adapters, write atomically.

* :func:`read` / :func:`write`: a whole :class:`~geo_med_sr.spatial.SpatialArray`.
* :func:`open_source` / :func:`open_sink`: an input and an output for the engine, window by
  window or in memory as each adapter declares (``reads_windows``: GeoTIFF; ``writes_windows``:
  GeoTIFF, NIfTI): the one path the pipeline runs for every format.
* :func:`check_output`, :func:`check_output_size`, :func:`check_file_output`: the pre-flight of
  every output, before any pixel is read or any training starts (format, what may be replaced,
  a writable folder, the size against the free disk space and, for in-memory outputs, memory).
* :func:`atomic_path`: nothing is replaced by surprise and no partial output is ever left at
  the output's name.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import importlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geo_med_sr.adapters.base import ADAPTERS, Adapter
from geo_med_sr.errors import ConfigError, GeoMedSRError, InputError, InputNotFoundError, OutputError, file_error
from geo_med_sr.inference.memory import available_bytes
from geo_med_sr.inference.protocols import ImageSink, ImageSource
from geo_med_sr.spatial import SpatialArray

#: adapter modules imported on first use (each registers itself in ADAPTERS).
_ADAPTER_MODULES = ("nifti", "dicom", "geotiff")


def _load_adapters() -> None:
    for module in _ADAPTER_MODULES:
        importlib.import_module(f"geo_med_sr.adapters.{module}")


def adapter_for_input(path: str | os.PathLike) -> type[Adapter]:
    """The adapter that reads ``path``; raises InputError naming the path otherwise."""
    _load_adapters()
    path = Path(path)
    if not path.exists():
        raise file_error(InputNotFoundError, path, "no such file or folder")
    if path.is_file() and path.stat().st_size == 0:
        raise file_error(InputError, path, "the file is empty (0 bytes)")
    for name in ADAPTERS:
        adapter = ADAPTERS.get(name)
        if adapter.can_read(path):
            return adapter
    raise file_error(
        InputError,
        path,
        "unsupported input: expected a .nii/.nii.gz file, a folder holding a DICOM series, or a .tif/.tiff GeoTIFF",
    )


def adapter_for_output(path: str | os.PathLike) -> type[Adapter]:
    """The adapter that writes ``path`` (chosen by its name: ``.nii``/``.nii.gz`` or a folder)."""
    _load_adapters()
    path = Path(path)
    for name in ADAPTERS:
        adapter = ADAPTERS.get(name)
        if adapter.can_write(path):
            return adapter
    raise file_error(
        OutputError,
        path,
        "unsupported output: use a .nii/.nii.gz file name, a folder name (DICOM series) or a .tif file name (GeoTIFF)",
    )


@contextlib.contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Input errors raised inside the block name ``path`` (the one rule: a message says which file)."""
    try:
        yield
    except InputError as exc:
        if str(path) in str(exc):
            raise
        raise file_error(type(exc), path, str(exc)) from exc


def read(path: str | os.PathLike, **options: Any) -> SpatialArray:
    """Read an image with the adapter that recognises ``path``."""
    adapter = adapter_for_input(path)
    with naming(path):
        return adapter.read(Path(path), **options)


def read_for_training(path: str | os.PathLike) -> SpatialArray:
    """An image to train on: any readable format, or a PNG/JPEG/BMP photo (2D, unit pixels)."""
    from geo_med_sr.adapters.photo import is_photo, read_photo

    return read_photo(path) if is_photo(path) else read(path)


def domain_of(meta: dict[str, Any]) -> str:
    """``"geo"`` or ``"medical"``: the domain of the adapter an image's ``meta["format"]`` names
    (``"medical"`` for images of no registered format)."""
    _load_adapters()
    name = meta.get("format")
    return ADAPTERS.get(name).domain if isinstance(name, str) and name in ADAPTERS else "medical"


def parse_bands(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``"1,2,3"`` (or ``[1, 2, 3]``, or ``3``) -> ``(1, 2, 3)`` (1-based band indexes); None keeps every band.

    Raises:
        ConfigError: an item that is not a whole number >= 1, or no band at all.
    """
    if text is None:
        return None
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        text = [int(text)]
    if isinstance(text, str):
        items = [s.strip() for s in text.split(",")]
    elif isinstance(text, Sequence):
        items = [str(v) for v in text]
    else:
        raise ConfigError(f"--bands {text!r}: expected 1-based band numbers such as 1,2,3")
    try:
        bands = tuple(int(v) for v in items if v != "")
    except ValueError:
        raise ConfigError(f"--bands {text!r}: expected 1-based band numbers such as 1,2,3") from None
    if not bands or min(bands) < 1:
        raise ConfigError(f"--bands {text!r}: band numbers start at 1 (e.g. 1,2,3)")
    return bands


def discover_product(
    inputs: Sequence[str | os.PathLike],
    *,
    pan: str | os.PathLike | None = None,
    guide: str | os.PathLike | None = None,
    bands: str | Sequence[str] | None = None,
    offset: float | None = None,
    item: str | None = None,
) -> Any:
    """The band files of a multi-resolution product (:func:`geo_med_sr.adapters.products.discover`);
    ``bands`` as a list of names or ``"B05,B8A"``; ``item``: the id of the item of a STAC ItemCollection input."""
    from geo_med_sr.adapters.products import discover

    return discover([Path(p) for p in inputs], pan=pan, guide=guide, bands=bands, offset=offset, item=item)


def list_products(path: str | os.PathLike) -> list[tuple[str, str | None]]:
    """The products an input of ``batch --sharpen`` holds, ``(name, STAC item id or None)`` each
    (:func:`geo_med_sr.adapters.products.list_products`: paths and JSON only, no band is read)."""
    from geo_med_sr.adapters.products import list_products as _list_products

    return _list_products(Path(path))


def open_band(path: str | os.PathLike, index: int) -> tuple[ImageSource, Any]:
    """Band ``index`` (1-based) of a GeoTIFF/JPEG 2000 file as a windowed source, and its grid."""
    from geo_med_sr.adapters.bands import open_band as _open_band

    return _open_band(Path(path), index)


def open_source(
    path: str | os.PathLike, *, series: str | None = None, bands: Sequence[int] | None = None
) -> ImageSource:
    """The input at ``path`` opened for the engine (use it in ``with``).

    ``series`` reaches folder adapters (DICOM) and ``bands`` adapters with band selection
    (GeoTIFF); an adapter that ``reads_windows`` reads windows of the file, the others the whole image.
    """
    adapter = adapter_for_input(path)
    options: dict[str, Any] = {}
    if adapter.is_folder and series is not None:
        options["series"] = series
    if adapter.band_selection:
        options["bands"] = bands
    with naming(path):
        return adapter.open_source(Path(path), **options)


@contextlib.contextmanager
def open_sink(
    path: str | os.PathLike,
    shape: Sequence[int],
    affine: np.ndarray,
    meta: dict[str, Any],
    dtype: np.dtype | str,
    *,
    overwrite: bool = False,
    **options: Any,
) -> Iterator[ImageSink]:
    """An output of ``shape`` ``(C, *S)`` on the grid ``affine`` at ``path``, written atomically.

    The adapter chosen by the name of ``path`` opens its sink on a temporary path beside it
    (:func:`atomic_path`, with its companion files); the output appears at ``path`` only when
    the block ends without an error and the sink has finished the file.

    Args:
        path: the output (file, or folder for a DICOM series).
        shape, affine: the output grid.
        meta: the output's metadata (``meta["dtype"]`` = ``dtype``, ``meta["provenance"]``).
        dtype: storage dtype of the output.
        overwrite: replace an existing output (and its companions).
        **options: for the adapter's sink (``cog=`` for GeoTIFF).
    """
    path = Path(path)
    adapter = adapter_for_output(path)
    companions = adapter.companions(path)
    folder = adapter.is_folder
    with atomic_path(path, folder=folder, overwrite=overwrite, companions=companions, adapter=adapter) as tmp:
        with adapter.open_sink(tmp, tuple(shape), affine, meta, np.dtype(dtype), name=path, **options) as sink:
            yield sink


def _check_not_existing(path: Path, overwrite: bool, what: str = "the output", owned: bool = True) -> None:
    """Refuse an existing ``path`` unless ``overwrite`` and ``owned`` (written by this tool)."""
    if not path.exists() and not path.is_symlink():
        return
    if not overwrite:
        raise file_error(OutputError, path, f"{what} already exists; pass --overwrite to replace it")
    if not owned:
        raise file_error(
            OutputError,
            path,
            f"{what} exists and was not written by geo_med_sr, so --overwrite does not replace it; "
            "move it away or choose another output name",
        )


def owns_output(adapter: type[Adapter], path: Path) -> bool:
    """Whether ``path`` is an output this tool wrote with ``adapter``, so ``--overwrite`` may replace it.

    The one ownership rule: a file is ours when the adapter reads our provenance from it; a folder
    (DICOM series) when it holds only plain files of one kind and our provenance (an empty folder
    holds nothing to replace: see :func:`_occupied`). Symbolic links, and anything the adapter
    cannot read as ours, belong to the user.
    """
    if path.is_symlink():
        return False
    if adapter.is_folder:
        if not path.is_dir():
            return False
        entries = list(path.iterdir())
        if any(e.is_symlink() or not e.is_file() for e in entries) or len({e.suffix.lower() for e in entries}) > 1:
            return False
    elif not path.is_file():
        return False
    return adapter.read_provenance(path) is not None


def _occupied(adapter: type[Adapter], path: Path) -> bool:
    """Whether something is at ``path`` that writing there would replace (an existing empty folder
    for a folder output holds nothing, so it is written into without ``--overwrite``)."""
    if not path.exists() and not path.is_symlink():
        return False
    return not (adapter.is_folder and path.is_dir() and not path.is_symlink() and not any(path.iterdir()))


def _check_companions(adapter: type[Adapter] | None, companions: list[Path], overwrite: bool) -> None:
    """Refuse existing companion files without ``overwrite``, companions that are not ours even with
    it (a user's own sidecar, the input's sidecar), and companion names taken by folders."""
    for companion in companions:
        if companion.is_dir():
            raise file_error(
                OutputError,
                companion,
                "the output's sidecar file name is taken by a folder; move the folder or choose another output name",
            )
        owned = adapter is None or adapter.owns_companion(companion)
        _check_not_existing(companion, overwrite, "the output's sidecar file", owned=owned)


def _check_replaceable(path: Path, adapter: type[Adapter] | None, companions: list[Path], overwrite: bool) -> None:
    """The one check of what writing ``path`` (and its ``companions``) would replace: nothing, or,
    with ``overwrite``, only what this tool wrote (``adapter`` None: anything, with ``overwrite``)."""
    if adapter is None or _occupied(adapter, path):
        _check_not_existing(path, overwrite, owned=adapter is None or owns_output(adapter, path))
    _check_companions(adapter, companions, overwrite)


def _inside(child: Path, parent: Path) -> bool:
    """Whether resolved ``child`` is ``parent`` or lies inside it."""
    return child == parent or parent in child.parents


def _check_not_an_input(path: Path, inputs: Sequence[str | os.PathLike]) -> None:
    """Refuse an output that is an input, holds an input, or lies inside an input folder."""
    target = path.resolve()
    for src in inputs:
        src_path = Path(src)
        if not src_path.exists():
            continue
        source = src_path.resolve()
        if (path.exists() and os.path.samefile(src_path, path)) or source == target:
            raise file_error(OutputError, path, "the output is the same as the input; choose another output path")
        if _inside(source, target):
            raise file_error(
                OutputError,
                path,
                f"the output would replace the folder that holds the input {src_path}; choose another output path",
            )
        if src_path.is_dir() and _inside(target, source):
            raise file_error(
                OutputError, path, f"the output lies inside the input folder {src_path}; choose another output path"
            )


#: what each output format's name looks like, for the message refusing another format.
_FORMAT_NAMES = {
    "geotiff": "a .tif/.tiff file name (GeoTIFF)",
    "nifti": "a .nii/.nii.gz file name (NIfTI)",
    "dicom": "a folder name (DICOM series)",
}


def _check_name(path: Path, what: str = "the output") -> None:
    """Refuse an output named ``""``, ``.``, ``..`` or the root folder."""
    if path.name in ("", ".", "..") or path.resolve() == Path(path.resolve().anchor):
        raise file_error(OutputError, path, f"{what} needs a file or folder name, not the current or root folder")


def _check_folder(path: Path) -> None:
    """Refuse an output whose folder is missing or cannot be written (checked before any work)."""
    parent = path.resolve().parent
    if not parent.is_dir():
        raise file_error(OutputError, path, f"the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise file_error(OutputError, path, f"cannot write in the folder {parent} (permission denied)")


def _output_adapter(path: Path, formats: Sequence[str] | None) -> type[Adapter]:
    """The adapter that writes ``path``, refusing a name that selects no format or (``formats``: the
    adapter names the command writes) a format the command does not write."""
    try:
        adapter = adapter_for_output(path)
    except OutputError:
        if formats is None:
            raise
    else:
        if formats is None or adapter.name in formats:
            return adapter
    wanted = " or ".join(_FORMAT_NAMES.get(f, f) for f in formats)
    raise file_error(OutputError, path, f"this command writes {wanted}; rename the output")


def check_output(
    path: str | os.PathLike,
    *,
    inputs: Sequence[str | os.PathLike] = (),
    overwrite: bool = False,
    formats: Sequence[str] | None = None,
) -> type[Adapter]:
    """The pre-flight of an image output, before any input is opened; returns its adapter.

    The size of the output is checked once the input headers give it (:func:`check_output_size`).

    Args:
        path: the output (a file, or a folder for a DICOM series).
        inputs: the command's inputs (the output may not be, hold or lie inside one).
        overwrite: an existing earlier output of this tool may be replaced.
        formats: the adapter names the command writes (``("geotiff",)`` for ``sharpen``); None: any.

    Raises:
        OutputError: the output is, holds or lies inside an input; its format is unknown or not
            one of ``formats``; it exists without ``overwrite``, or exists and is not ours
            (:func:`owns_output`) even with it; its parent folder is missing or not writable; or
            a companion file the adapter writes beside it (the ``.json`` sidecar of a NIfTI
            output) exists without ``overwrite`` or is not ours.
    """
    path = Path(path)
    _check_name(path)
    _check_not_an_input(path, inputs)
    adapter = _output_adapter(path, formats)
    _check_replaceable(path, adapter, adapter.companions(path), overwrite)
    _check_folder(path)
    return adapter


#: bytes on disk per uncompressed byte of samples, by output format: a COG adds its overviews (a third
#: more for 2D). Compression is not assumed (it can be nil on noisy floats); it roughly pays for the
#: temporary tiled copy a COG is converted from. Other formats: the uncompressed samples.
DISK_FACTOR = {"geotiff": 4 / 3}


def _size(nbytes: float) -> str:
    """``nbytes`` for a message, in the largest binary unit it reaches (``120.0 GiB``, ``256.0 KiB``)."""
    for unit, power in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 2**power:
            return f"{nbytes / 2**power:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def _mount_point(path: Path) -> Path:
    """The mount point of the file system holding the existing folder ``path``."""
    path = path.resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def output_bytes(shape: Sequence[int], dtype: np.dtype | str) -> int:
    """Uncompressed size in bytes of samples of ``shape`` ``(C, *S)`` (bands x pixels) in ``dtype``."""
    return int(np.prod([int(n) for n in shape], dtype=np.float64)) * np.dtype(dtype).itemsize


def check_output_size(
    path: str | os.PathLike,
    adapter: type[Adapter],
    shape: Sequence[int],
    dtype: np.dtype | str,
    *,
    compute_dtype: np.dtype | str | None = None,
    memory: int | None = None,
) -> None:
    """The size part of the output pre-flight, from headers only, before any pixel is computed.

    The output needs about ``output_bytes(shape, dtype) * DISK_FACTOR[format]`` bytes on the file
    system of its folder (``shutil.disk_usage``); an output held whole in memory until it is
    written (an adapter without ``writes_windows``: DICOM) also needs twice its values in
    ``compute_dtype`` of the memory available now.

    Args:
        path: the output, named in the message (its folder exists: :func:`check_output`).
        adapter: the output's adapter (:func:`check_output` returns it).
        shape: ``(C, *S)`` of the output (bands, then pixels per axis).
        dtype: the storage dtype written.
        compute_dtype: the dtype values are collected in for an in-memory output (default ``dtype``).
        memory: bytes of memory available (default: what the system can give now, ``available_bytes``).

    Raises:
        OutputError: ``OUTPUT: about 120.0 GiB to write and 56.0 GiB free on /data`` (or the memory).
    """
    path = Path(path)
    needed = output_bytes(shape, dtype) * DISK_FACTOR.get(adapter.name, 1.0)
    folder = path.resolve().parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None  # the writer reports a full disk in one line if it comes to that
    if free is not None and needed > free:
        raise file_error(
            OutputError,
            path,
            f"about {_size(needed)} to write and {_size(free)} free on {_mount_point(folder)}; "
            "free some space, write elsewhere or choose fewer bands or a smaller scale",
        )
    if not adapter.writes_windows:
        _check_memory(path, shape, np.dtype(compute_dtype or dtype), available_bytes() if memory is None else memory)


def _check_memory(path: Path, shape: Sequence[int], dtype: np.dtype, free: int | None) -> None:
    """Refuse an in-memory output of ``shape`` needing (twice its values in ``dtype``) more than ``free`` bytes."""
    needed = 2 * output_bytes(shape, dtype)
    if free is not None and needed > free:
        raise file_error(
            OutputError,
            path,
            f"an output of {'x'.join(str(int(n)) for n in shape[1:])} voxels needs about {needed / 2**30:.1f} GiB of "
            f"memory and {free / 2**30:.1f} GiB is available; use a smaller --scale or crop the input",
        )


def check_file_output(
    path: str | os.PathLike,
    *,
    suffixes: Sequence[str],
    what: str = "the output",
    inputs: Sequence[str | os.PathLike] = (),
    owned: Any = None,
    overwrite: bool = False,
    ignore_case: bool = False,
) -> Path:
    """The pre-flight of an output that is one file this tool writes itself (a checkpoint, a report, a VRT).

    Args:
        path: the file.
        suffixes: the name endings the writer accepts, case included (``(".safetensors",)``,
            ``(".png", ".PNG")``); the first one is named in the message.
        what: the output's role in messages (``"the checkpoint"``, ``"the --plot report"``).
        inputs: the command's inputs (the output may not be one).
        owned: ``owned(path) -> bool``, whether an existing file is an earlier output of this tool;
            None: an existing file is left to the caller (``train --resume`` continues one).
        overwrite: an existing file that ``owned`` accepts may be replaced.
        ignore_case: the writer takes the suffixes in any case (``.VRT``).

    Raises:
        OutputError: a wrong suffix, a folder at the name, an input, a missing or read-only
            folder, or an existing file that is not ours or is ours without ``overwrite``.
    """
    path = Path(path)
    _check_name(path, what)
    name, ends = path.name, tuple(suffixes)
    if ignore_case:
        name, ends = name.lower(), tuple(e.lower() for e in ends)
    if not name.endswith(ends) or name in ends:
        raise file_error(OutputError, path, f"{what} must be a file name ending with {suffixes[0]}; rename it")
    _check_not_an_input(path, inputs)
    if path.is_dir():
        raise file_error(OutputError, path, f"{what} name is a folder; give a file name")
    if owned is not None and (path.exists() or path.is_symlink()):
        _check_not_existing(path, overwrite, what, owned=not path.is_symlink() and bool(owned(path)))
    _check_folder(path)
    return path


def _replace(src: Path, dst: Path, parent: Path) -> None:
    """Move ``src`` to ``dst`` in one rename; an existing folder ``dst`` is moved aside first, then deleted."""
    if not dst.is_dir() or dst.is_symlink():
        os.replace(src, dst)  # replaces an existing file atomically
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-{_owner_tag()}-", dir=parent))
    os.replace(dst, old / dst.name)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


#: what a temporary sibling's name says about the process that made it: ``.<name>.partial-<host>-<pid>-<random>``.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?:partial|old)-(?P<host>[^-]+)-(?P<pid>\d+)-[^-]+$")
#: errors inside the block that are about the output's storage (not the input), reported as OutputError.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def _owner_tag() -> str:
    """``<host>-<pid>`` of this process, as temporary siblings record it."""
    host = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of ``path`` left by killed runs of this tool on this host.

    Only folders named ``.<name>.partial-<host>-<pid>-*`` / ``.<name>.old-<host>-<pid>-*`` whose
    host is this one and whose process no longer runs are removed (a run still going, here or
    on another host sharing the folder, keeps its own). Returns the paths removed.
    """
    path = Path(path)
    parent = path.resolve().parent
    host = _owner_tag().rsplit("-", 1)[0]
    removed = []
    for entry in parent.glob(f".{glob.escape(path.name)}.*-*"):
        match = _TEMPORARY.match(entry.name)
        if not match or match["name"] != path.name or match["host"] != host or not entry.is_dir():
            continue
        if entry.is_symlink() or _alive(int(match["pid"])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _make_temporary(path: Path, parent: Path, folder: bool) -> Path:
    """The hidden temporary folder beside ``path`` (readable like a normal folder when it becomes the output)."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-{_owner_tag()}-", dir=parent))
    except OSError as exc:
        raise file_error(OutputError, path, f"cannot write in the folder {parent} ({exc.strerror or exc})") from exc
    if folder:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; an output folder is shared like any other
    return tmp


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike,
    *,
    folder: bool = False,
    overwrite: bool = False,
    companions: Sequence[str | os.PathLike] = (),
    adapter: type[Adapter] | None = None,
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it to ``path`` only if the block succeeds.

    A crash or kill inside the block never leaves a partial file at ``path``: the work goes to
    a hidden ``.<name>.partial-<host>-<pid>-*`` sibling folder and is renamed in one step at the
    end (an existing output is replaced only then, and only when ``overwrite`` and it is ours).
    Temporaries left by killed runs are removed first (:func:`remove_stale_temporaries`).

    Args:
        path: the final output (a file, or a folder when ``folder``).
        folder: the output is a folder (the yielded path is an empty folder, mode 0777 & ~umask).
        overwrite: replace an existing output (and existing companions) written by this tool.
        companions: files beside ``path`` that the block may write too (e.g. ``out.json`` for
            ``out.nii.gz``; file outputs only). The block writes each one under its own name
            in the yielded path's folder; those it wrote are moved into place right after
            ``path`` (each rename atomic on its own). A companion the block did not write is
            left as it is.
        adapter: the output's adapter, which tells whether an existing output or companion is
            ours (:func:`owns_output`); None: anything existing may be replaced with ``overwrite``.

    Raises:
        OutputError: ``path`` or a companion exists without ``overwrite`` or is not ours; the
            folder cannot be written; the disk filled up while writing.
    """
    path = Path(path)
    companions = [Path(c) for c in companions]
    if folder and companions:
        raise ValueError("companion files are supported for single-file outputs only")
    parent = path.resolve().parent
    for companion in companions:
        if companion.resolve().parent != parent:
            raise ValueError(f"companion {companion} is not in the folder of {path}")
    _check_replaceable(path, adapter, companions, overwrite)
    if parent.is_dir():
        remove_stale_temporaries(path)
    tmp = _make_temporary(path, parent, folder)
    target = tmp if folder else tmp / path.name
    try:
        try:
            yield target
        except OSError as exc:
            if isinstance(exc, GeoMedSRError) or exc.errno not in _STORAGE_ERRNOS:
                raise
            raise file_error(OutputError, path, f"could not be written ({exc.strerror})") from exc
        try:
            _replace(target, path, parent)
            for companion in companions:
                written = tmp / companion.name
                if written.exists():
                    _replace(written, companion, parent)
        except OSError as exc:
            raise file_error(OutputError, path, f"could not be moved into place ({exc.strerror or exc})") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write(image: SpatialArray, path: str | os.PathLike, *, overwrite: bool = False, **options: Any) -> Path:
    """Write ``image`` to ``path`` atomically with the adapter chosen by the path's name.

    Companion files of the adapter (the JSON sidecar of a NIfTI output) are written in the same
    temporary folder and moved into place right after the image.
    """
    adapter = adapter_for_output(path)
    companions = adapter.companions(Path(path))
    folder = adapter.is_folder
    with atomic_path(path, folder=folder, overwrite=overwrite, companions=companions, adapter=adapter) as tmp:
        adapter.write(image, tmp, **options)
    return Path(path)


def read_provenance(path: str | os.PathLike) -> dict[str, Any] | None:
    """The provenance dict stored in an output of this tool (``meta["provenance"]`` when written).

    Dispatches on the output adapter chosen by the path's name and reads headers/tags only:
    the NIfTI header extension (not the sidecar), the GeoTIFF ``GEO_MED_SR_*`` tags, or the
    private block of one slice of a DICOM series folder.

    Returns:
        The provenance, equal to what was written after a JSON round trip (tuples become
        lists), or None when ``path`` does not exist, is not an output format, is unreadable
        (corrupt or partial) or carries no provenance. Never raises for those cases.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        adapter = adapter_for_output(path)
    except OutputError:
        return None  # not a format this tool writes, so it cannot carry our provenance
    return adapter.read_provenance(path)


def owns_vrt(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a VRT mosaic this tool wrote (so ``--overwrite`` may replace it); never raises."""
    from geo_med_sr.adapters.vrt import _is_our_vrt

    return _is_our_vrt(Path(path))


def build_vrt(paths: Sequence[str | os.PathLike], vrt_path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """A GDAL VRT mosaic of GeoTIFF tiles on one pixel grid (:func:`geo_med_sr.adapters.vrt.build_vrt`)."""
    from geo_med_sr.adapters.vrt import build_vrt as build

    return build(paths, vrt_path, overwrite=overwrite)
