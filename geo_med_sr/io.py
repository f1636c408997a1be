"""read(path) / write(image, path): dispatch to the registered adapters, write atomically."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator
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
    raise file_error(InputError, path, "unsupported input: expected a .nii/.nii.gz file, a folder holding a DICOM series, or a .tif/.tiff GeoTIFF")


def adapter_for_output(path: str | os.PathLike) -> type[Adapter]:
    """The adapter that writes ``path`` (chosen by its name: ``.nii``/``.nii.gz`` or a folder)."""
    _load_adapters()
    path = Path(path)
    for name in ADAPTERS:
        adapter = ADAPTERS.get(name)
        if adapter.can_write(path):
            return adapter
    raise file_error(OutputError, path, "unsupported output: use a .nii/.nii.gz file name, a folder name (DICOM series) or a .tif file name (GeoTIFF)")


def read(path: str | os.PathLike, **options: Any) -> SpatialArray:
    """Read an image with the adapter that recognises ``path``."""
    return adapter_for_input(path).read(Path(path), **options)


def check_output(path: str | os.PathLike, *, inputs: tuple[str | os.PathLike, ...] = (), overwrite: bool = False) -> type[Adapter]:
    """Validate an output path before any work is done; returns its adapter.

    Raises:
        OutputError: the output equals an input, exists without ``overwrite``, or its parent
            folder is missing.
    """
    path = Path(path)
    for src in inputs:
        same_file = Path(src).exists() and path.exists() and os.path.samefile(src, path)
        if same_file or Path(src).resolve() == path.resolve():
            raise file_error(OutputError, path, "the output is the same as the input; choose another output path")
    if path.exists() and not overwrite:
        raise file_error(OutputError, path, "the output already exists; pass --overwrite to replace it")
    if not path.resolve().parent.is_dir():
        raise file_error(OutputError, path, f"the folder {path.resolve().parent} does not exist")
    return adapter_for_output(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, folder: bool = False, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it to ``path`` only if the block succeeds.

    A crash or kill inside the block never leaves a partial file at ``path``: the work goes to
    a hidden ``.<name>.partial-*`` sibling that is renamed in one step at the end (an existing
    output is replaced only then, and only when ``overwrite``).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise file_error(OutputError, path, "the output already exists; pass --overwrite to replace it")
    parent = path.resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=parent))
    target = tmp if folder else tmp / path.name
    try:
        yield target
        if path.exists():
            old = parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
            os.replace(target, path)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            os.replace(target, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write(image: SpatialArray, path: str | os.PathLike, *, overwrite: bool = False, **options: Any) -> Path:
    """Write ``image`` to ``path`` atomically with the adapter chosen by the path's name."""
    adapter = adapter_for_output(path)
    with atomic_path(path, folder=adapter.is_folder, overwrite=overwrite) as tmp:
        adapter.write(image, tmp, **options)
    return Path(path)
