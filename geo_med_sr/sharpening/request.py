"""The request of a ``sharpen`` job: everything that decides what it writes, as JSON.

Like :func:`geo_med_sr.upscale.request.request_for`, it is recorded in the output's provenance
(``"request"``), so that a later run (``geo-med-sr batch``) can tell an up-to-date output by
comparing requests. It is made of the content hash of every band file read, the method, the
SHA-256 of the guided weights of each group and the settings that change values (the plan's
decisions, the bands' radiometry, COG or not), from file headers and the
:class:`~geo_med_sr.sharpening.plan.SharpenPlan` only: no pixel is read and torch is not imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geo_med_sr.digest import hash_input
from geo_med_sr.errors import InputError
from geo_med_sr.sharpening.plan import SharpenPlan
from geo_med_sr.sharpening.scene import Scene

__all__ = ["FILES_KEY", "sharpen_request"]

#: key of ``Scene.meta`` listing each band's file and index: ``[[name, path, index], ...]`` in band order.
FILES_KEY = "files"


def sharpen_request(scene: Scene, plan: SharpenPlan, *, cog: bool = True) -> dict[str, Any]:
    """The request fingerprint of sharpening ``scene`` as ``plan`` says.

    Two jobs with the same band files (content, not names), method, weights and value-changing
    settings get equal requests; changing any of them changes it. Left out: the paths, the
    device, the tile size and the progress bar (the output does not depend on them).

    Args:
        scene: the opened bands (``scene.meta["files"]``, see :func:`~geo_med_sr.sharpening.pipeline.open_scene`).
        plan: :func:`~geo_med_sr.sharpening.plan.plan_sharpening` of the scene.
        cog: the output is a Cloud-Optimized GeoTIFF.

    Returns:
        ``{"command": "sharpen", "input_sha256": [per band], "method", "model_sha256": [per group],
        "settings": {...}}`` (a JSON round trip: lists, sorted keys).

    Raises:
        InputError: the scene does not list its band files.
    """
    files = scene.meta.get(FILES_KEY)
    if not isinstance(files, list) or len(files) != len(scene.bands):
        raise InputError("the scene does not list the file of each band; open it with sharpening.pipeline.open_scene")
    hashes: dict[str, str] = {}
    for _, path, _ in files:
        key = str(Path(path))
        if key not in hashes:
            hashes[key] = hash_input(key)
    record = plan.record()
    bands = [
        {
            "name": band.name,
            "role": band.role,
            "index": int(index),
            "gain": band.gain,
            "offset": band.offset,
            "nodata": band.nodata,
            "dtype": band.dtype,
        }
        for band, (_, _, index) in zip(scene.bands, files)
    ]
    settings = {"product": scene.meta.get("kind"), "bands": bands, "cog": bool(cog)}
    settings.update({k: v for k, v in record.items() if k != "method"})
    request = {
        "command": "sharpen",
        "input_sha256": [hashes[str(Path(path))] for _, path, _ in files],
        "method": record["method"],
        "model_sha256": [g.weights_sha256 for g in plan.groups],
        "settings": settings,
    }
    return json.loads(json.dumps(request, sort_keys=True))
