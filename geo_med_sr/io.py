"""The I/O layer: dispatch to the registered adapters, write atomically.

* :func:`read` / :func:`write`: a whole :class:`~geo_med_sr.spatial.SpatialArray`.
* :func:`open_source` / :func:`open_sink`: an input and an output for the engine, window by
  window (GeoTIFF) or in memory (NIfTI, DICOM): the one path the pipeline runs for every format.
* :func:`check_output`, :func:`atomic_path`: nothing is replaced by surprise and no partial
  output is ever left at the output's name.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .adapters.base import ADAPTERS, Adapter
from .errors import ConfigError, InputError, InputNotFoundError, OutputError, file_error
from .inference.protocols import ImageSink, ImageSource
from .spatial import SpatialArray

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


def read(path: str | os.PathLike, **options: Any) -> SpatialArray:
    """Read an image with the adapter that recognises ``path``."""
    return adapter_for_input(path).read(Path(path), **options)


def read_for_training(path: str | os.PathLike) -> SpatialArray:
    """An image to train on: any readable format, or a PNG/JPEG/BMP photo (2D, unit pixels)."""
    from .adapters.photo import is_photo, read_photo

    return read_photo(path) if is_photo(path) else read(path)


def domain_of(meta: dict[str, Any]) -> str:
    """``"geo"`` or ``"medical"``: the domain of the adapter an image's ``meta["format"]`` names
    (``"medical"`` for images of no registered format)."""
    _load_adapters()
    name = meta.get("format")
    return ADAPTERS.get(name).domain if isinstance(name, str) and name in ADAPTERS else "medical"


def parse_bands(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``"1,2,3"`` -> ``(1, 2, 3)`` (1-based band indexes); None keeps every band.

    Raises:
        ConfigError: an item that is not a whole number.
    """
    if text is None:
        return None
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(v) for v in text]
    try:
        return tuple(int(v) for v in items if v != "")
    except ValueError:
        raise ConfigError(f"--bands {text!r}: expected 1-based band numbers such as 1,2,3") from None


def open_source(
    path: str | os.PathLike, *, series: str | None = None, bands: Sequence[int] | None = None
) -> ImageSource:
    """The input at ``path`` opened for the engine (use it in ``with``).

    ``series`` reaches folder adapters (DICOM) and ``bands`` adapters with band selection
    (GeoTIFF); a windowed adapter reads windows of the file, the others the whole image.
    """
    adapter = adapter_for_input(path)
    options: dict[str, Any] = {}
    if adapter.is_folder and series is not None:
        options["series"] = series
    if adapter.band_selection:
        options["bands"] = bands
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
    with atomic_path(path, folder=adapter.is_folder, overwrite=overwrite, companions=adapter.companions(path)) as tmp:
        with adapter.open_sink(tmp, tuple(shape), affine, meta, np.dtype(dtype), name=path, **options) as sink:
            yield sink


def _check_not_existing(path: Path, overwrite: bool, what: str = "the output") -> None:
    """Refuse an existing ``path`` unless ``overwrite``; ``what`` names it in the message."""
    if path.exists() and not overwrite:
        raise file_error(OutputError, path, f"{what} already exists; pass --overwrite to replace it")


def _check_companions(companions: list[Path], overwrite: bool) -> None:
    """Refuse existing companion files without ``overwrite``, and companion names taken by folders."""
    for companion in companions:
        if companion.is_dir():
            raise file_error(
                OutputError,
                companion,
                "the output's sidecar file name is taken by a folder; move the folder or choose another output name",
            )
        _check_not_existing(companion, overwrite, "the output's sidecar file")


def check_output(
    path: str | os.PathLike, *, inputs: tuple[str | os.PathLike, ...] = (), overwrite: bool = False
) -> type[Adapter]:
    """Validate an output path before any work is done; returns its adapter.

    Raises:
        OutputError: the output equals an input, exists without ``overwrite``, its parent
            folder is missing, its format is unknown, or a companion file the adapter writes
            beside it (the ``.json`` sidecar of a NIfTI output) exists without ``overwrite``.
    """
    path = Path(path)
    for src in inputs:
        same_file = Path(src).exists() and path.exists() and os.path.samefile(src, path)
        if same_file or Path(src).resolve() == path.resolve():
            raise file_error(OutputError, path, "the output is the same as the input; choose another output path")
    _check_not_existing(path, overwrite)
    if not path.resolve().parent.is_dir():
        raise file_error(OutputError, path, f"the folder {path.resolve().parent} does not exist")
    adapter = adapter_for_output(path)
    _check_companions(adapter.companions(path), overwrite)
    return adapter


def _replace(src: Path, dst: Path, parent: Path) -> None:
    """Move ``src`` to ``dst`` in one rename; an existing folder ``dst`` is moved aside first, then deleted."""
    if not dst.is_dir():
        os.replace(src, dst)  # replaces an existing file atomically
        return
    old = parent / f".{dst.name}.old-{os.getpid()}"
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old) if old.is_dir() else old.unlink()


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike,
    *,
    folder: bool = False,
    overwrite: bool = False,
    companions: Sequence[str | os.PathLike] = (),
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it to ``path`` only if the block succeeds.

    A crash or kill inside the block never leaves a partial file at ``path``: the work goes to
    a hidden ``.<name>.partial-*`` sibling folder and is renamed in one step at the end (an
    existing output is replaced only then, and only when ``overwrite``).

    Args:
        path: the final output (a file, or a folder when ``folder``).
        folder: the output is a folder (the yielded path is an empty folder).
        overwrite: replace an existing output (and existing companions).
        companions: files beside ``path`` that the block may write too (e.g. ``out.json`` for
            ``out.nii.gz``; file outputs only). The block writes each one under its own name
            in the yielded path's folder; those it wrote are moved into place right after
            ``path`` (each rename atomic on its own). A companion the block did not write is
            left as it is.

    Raises:
        OutputError: ``path`` or a companion exists without ``overwrite``.
    """
    path = Path(path)
    companions = [Path(c) for c in companions]
    if folder and companions:
        raise ValueError("companion files are supported for single-file outputs only")
    parent = path.resolve().parent
    for companion in companions:
        if companion.resolve().parent != parent:
            raise ValueError(f"companion {companion} is not in the folder of {path}")
    _check_not_existing(path, overwrite)
    _check_companions(companions, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=parent))
    target = tmp if folder else tmp / path.name
    try:
        yield target
        _replace(target, path, parent)
        for companion in companions:
            written = tmp / companion.name
            if written.exists():
                _replace(written, companion, parent)
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
    with atomic_path(path, folder=adapter.is_folder, overwrite=overwrite, companions=companions) as tmp:
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


def build_vrt(paths: Sequence[str | os.PathLike], vrt_path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """A GDAL VRT mosaic of GeoTIFF tiles on one pixel grid (:func:`geo_med_sr.adapters.vrt.build_vrt`)."""
    from .adapters.vrt import build_vrt as build

    return build(paths, vrt_path, overwrite=overwrite)
