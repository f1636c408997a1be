"""One provenance shape for every output this project writes (``upscale`` and ``sharpen``).

:func:`build_provenance` makes the record an output carries in ``meta["provenance"]`` (GeoTIFF
``GEO_MED_SR_*`` tags, the NIfTI header extension and sidecar, the DICOM private block)::

    {"tool": "geo_med_sr 0.1.0",  # who wrote it, as people read it (NIfTI/DICOM descriptions show it)
     "version": "0.1.0",          # the release, for programs
     "command": "upscale",        # or "sharpen"
     "method": "model",           # the --method that ran
     "inputs": ["in.tif"],        # the paths given
     "request": {...},            # the fingerprint of what decides the values (None when not computed)
     ...}                         # what the command adds (scale, normalization, groups, grid, ...)

:func:`read_fields` reads those common fields back from a record of this shape or of the shapes
written before it (``upscale``: ``"tool": "geo_med_sr 0.1.0"`` and no ``version``/``command``;
``sharpen``: ``"tool": "geo_med_sr"`` beside ``"version"``), so outputs of earlier versions are
still recognised. Ground floor: no project import but the package's version.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from geo_med_sr import __version__

__all__ = ["COMMON_KEYS", "TOOL", "ProvenanceFields", "build_provenance", "read_fields"]

#: the tool's name in every provenance record.
TOOL = "geo_med_sr"
#: keys every record starts with, in this order.
COMMON_KEYS = ("tool", "version", "command", "method", "inputs", "request")


def build_provenance(
    command: str,
    method: str,
    *,
    inputs: Sequence[str | os.PathLike] = (),
    request: Mapping[str, Any] | None = None,
    **details: Any,
) -> dict[str, Any]:
    """The provenance record of one output.

    Args:
        command: the command that wrote it (``"upscale"``, ``"sharpen"``).
        method: the method that ran (its registered name).
        inputs: the input paths as given.
        request: the request fingerprint (``upscale.request.request_for``,
            ``sharpening.request.sharpen_request``); None when it was not computed (in-memory runs).
        details: what the command adds; a key of :data:`COMMON_KEYS` is refused.

    Returns:
        ``{"tool", "version", "command", "method", "inputs", "request", **details}``.

    Raises:
        ValueError: ``details`` repeats a common key (a programming error, never user input).
    """
    clash = sorted(set(details) & set(COMMON_KEYS))
    if clash:
        raise ValueError(f"provenance details may not set the common keys {clash}")
    record: dict[str, Any] = {
        "tool": f"{TOOL} {__version__}",
        "version": __version__,
        "command": command,
        "method": method,
        "inputs": [str(p) for p in inputs],
        "request": None if request is None else dict(request),
    }
    record.update(details)
    return record


@dataclass(frozen=True)
class ProvenanceFields:
    """The common fields of a provenance record, whichever version wrote it.

    Attributes:
        tool: the tool's name (``"geo_med_sr"``).
        version: the release that wrote it (None when the record does not say).
        command: ``"upscale"`` or ``"sharpen"`` (records without one were written by ``upscale``).
        method: the method that ran, or None.
        inputs: the input paths recorded (empty when none were).
        request: the request fingerprint, or None.
    """

    tool: str
    version: str | None
    command: str
    method: str | None
    inputs: tuple[str, ...]
    request: dict[str, Any] | None


def read_fields(record: Mapping[str, Any] | None) -> ProvenanceFields | None:
    """The common fields of ``record`` (what ``io.read_provenance`` returned), any shape this tool wrote.

    Returns None when ``record`` is not one of ours (not a mapping, or no ``tool`` naming this tool).
    """
    if not isinstance(record, Mapping):
        return None
    tool = record.get("tool")
    if not isinstance(tool, str) or not tool.split(" ", 1)[0] == TOOL:
        return None
    name, _, embedded = tool.partition(" ")
    version = record.get("version") or embedded or None
    request = record.get("request")
    inputs = record.get("inputs")
    return ProvenanceFields(
        tool=name,
        version=None if version is None else str(version),
        command=str(record.get("command") or "upscale"),
        method=None if record.get("method") is None else str(record["method"]),
        inputs=tuple(str(p) for p in inputs) if isinstance(inputs, (list, tuple)) else (),
        request=dict(request) if isinstance(request, Mapping) else None,
    )
