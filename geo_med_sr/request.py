"""What decides an output, computed without torch: scale parsing, the model's weights file,
content hashes and the request recorded in every output's provenance.

:func:`request_for` is what ``geo-med-sr batch`` compares with an existing output's provenance
to skip it, so it must stay cheap to import on a Dask worker: no torch, no MONAI here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import io
from .config import SRConfig
from .errors import ConfigError, file_error


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (read in 1 MB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_scale(text: str | int | Sequence[int]) -> tuple[int, ...]:
    """``"2"`` -> ``(2,)``; ``"1,1,4"`` -> ``(1, 1, 4)``. Factors must be whole numbers >= 1."""
    items = [str(v).strip() for v in (text.split(",") if isinstance(text, str) else np.atleast_1d(text))]
    out = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"--scale {text!r}: {item!r} is not a number; use e.g. 2 or 1,1,4") from None
        if not np.isfinite(value) or value != int(value) or value < 1:
            raise ConfigError(f"--scale {text!r}: factors must be whole numbers >= 1 (got {item}); use e.g. 2 or 1,1,4")
        out.append(int(value))
    if not out:
        raise ConfigError("--scale is empty; use e.g. 2 or 1,1,4")
    return tuple(out)


def parse_bands(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``"1,2,3"`` -> ``(1, 2, 3)`` (1-based band indexes); None keeps every band."""
    if text is None:
        return None
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(v) for v in text]
    try:
        return tuple(int(v) for v in items if v != "")
    except ValueError:
        raise ConfigError(f"--bands {text!r}: expected 1-based band numbers such as 1,2,3") from None


def broadcast_scale(scale: Sequence[int], spatial_dims: int, path: object) -> tuple[int, ...]:
    """One factor per spatial axis (a single factor applies to every axis)."""
    if len(scale) == 1:
        return tuple(scale) * spatial_dims
    if len(scale) != spatial_dims:
        raise file_error(
            ConfigError,
            path,
            f"--scale has {len(scale)} factors but the image has {spatial_dims} spatial axes (index order, fastest first)",
        )
    return tuple(scale)


def model_choice(config: SRConfig, domain: str, scale: tuple[int, ...]) -> tuple[str, str, Path]:
    """``--method model``'s checkpoint: (name, how it was chosen, weights file)."""
    from .bundled import default_for

    name, source_note = config.model.name, "given"
    if not name:
        name, source_note = (
            default_for(domain, scale, fast=config.model.fast).name,
            "bundled fast default" if config.model.fast else "bundled default",
        )
    return name, source_note, bundled_path(name) or Path(name)


def bundled_path(name: str) -> Path | None:
    """The installed weights file of the bundled model called ``name``, or None."""
    from .bundled import find

    bundled = find(name)
    return None if bundled is None else bundled.path


def hash_input(path: str | os.PathLike) -> str:
    """Hex SHA-256 of an input's content: the file, or for a folder (DICOM series) every regular
    file directly inside it, by name and content (so renaming, adding or editing a slice counts)."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(f"{item.name}\0{sha256_file(item)}\n".encode())
    return digest.hexdigest()


def request_for(
    src: str | os.PathLike,
    scale: str | int | Sequence[int],
    config: SRConfig | None = None,
    *,
    series: str | None = None,
    bands: str | Sequence[int] | None = None,
    cog: bool = True,
) -> dict[str, Any]:
    """Everything that decides what :func:`super_resolve` writes for these arguments, as JSON.

    Recorded in the output's provenance under ``"request"``; an output whose recorded request
    equals this one is up to date (``geo-med-sr batch`` skips it). Holds the input's content
    hash, the method, the SHA-256 of the network weights (``None`` for classical methods and
    ``self``), the scale and the settings that change values or layout (model, normalisation,
    output dtype, nodata fill, mixed precision, series, bands, COG). Tile size, batch size and
    device are left out: the engine's output does not depend on them.

    Raises:
        InputError/ConfigError/ModelError: as :func:`super_resolve` would, before any hashing.
    """
    config = config or SRConfig()
    src = Path(src)
    adapter = io.adapter_for_input(src)
    try:
        factors = parse_scale(scale)
        band_list = parse_bands(bands)
    except ConfigError as exc:
        raise file_error(ConfigError, src, str(exc)) from exc
    # GeoTIFF scenes are 2D; NIfTI and DICOM outputs are 3D volumes.
    domain, dims = ("geo", 2) if getattr(adapter, "streaming", False) else ("medical", 3)
    factors = broadcast_scale(factors, dims, src)
    weights = None
    if config.model.method == "model":
        path = model_choice(config, domain, factors)[2]
        weights = sha256_file(path) if path.is_file() else None  # a missing checkpoint is reported when it is loaded
    settings = {
        "model": config.model.model_dump(exclude={"name"}),
        "normalize": config.normalize.model_dump(),
        "output": config.output.model_dump(),
        "fill_radius": config.inference.fill_radius,
        "amp": config.inference.amp,
        "series": series,
        "bands": band_list,
        "cog": cog if getattr(adapter, "streaming", False) else None,
    }
    request = {
        "input_sha256": hash_input(src),
        "method": config.model.method,
        "model_sha256": weights,
        "scale": factors,
        "settings": settings,
    }
    return json.loads(json.dumps(request, sort_keys=True))
