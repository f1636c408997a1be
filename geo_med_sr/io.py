"""read(path) / write(image, path): dispatch to the registered adapters, write atomically."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .adapters.base import ADAPTERS, Adapter
from .errors import InputError, InputNotFoundError, OutputError, file_error
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
