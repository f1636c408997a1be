"""The request: everything that decides what :func:`~geo_med_sr.upscale.pipeline.super_resolve` writes,
as JSON, recorded in every output's provenance.

``geo-med-sr batch`` compares it with an existing output's provenance to skip up-to-date
outputs, so it is computed without torch (the :class:`~geo_med_sr.upscale.methods.Method` it is made of
reads checkpoint configurations from their headers): a Dask worker that only skips stays light.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geo_med_sr import io
from geo_med_sr.digest import hash_input
from geo_med_sr.errors import ConfigError, file_error
from geo_med_sr.scale import for_input as scale_for_input
from geo_med_sr.upscale.config import SRConfig
from geo_med_sr.upscale.methods import Method, resolve_method


def request_for(
    src: str | os.PathLike,
    scale: str | int | Sequence[int],
    config: SRConfig | None = None,
    *,
    series: str | None = None,
    bands: str | Sequence[int] | None = None,
    cog: bool = True,
    method: Method | None = None,
) -> dict[str, Any]:
    """Everything that decides what :func:`~geo_med_sr.upscale.pipeline.super_resolve` writes for these arguments.

    An output whose recorded request equals this one is up to date (``geo-med-sr batch`` skips
    it). Holds the input's content hash, the method, the SHA-256 of the network weights
    (``None`` for classical methods and ``self``), the scale and the settings that change values
    or layout (model, normalisation, output dtype, nodata fill, mixed precision, series, bands,
    COG). Tile size, batch size and device are left out: the engine's output does not depend on
    them.

    Args:
        src, scale, config, series, bands, cog: as for ``super_resolve``.
        method: :func:`~geo_med_sr.upscale.methods.resolve_method` for this input when the caller has
            it (its scale and bands are then the ones recorded; resolved here otherwise).

    Raises:
        InputError/ConfigError/ModelError: as ``super_resolve`` would, before any hashing.
    """
    config = config or SRConfig()
    src = Path(src)
    adapter = io.adapter_for_input(src)
    if method is None:
        try:
            band_list = io.parse_bands(bands)
        except ConfigError as exc:
            raise file_error(ConfigError, src, str(exc)) from exc
        factors = scale_for_input(scale, adapter.spatial_dims, src)
        method = resolve_method(config, domain=adapter.domain, scale=factors, bands=band_list)
    factors, band_list = method.scale, method.bands
    settings = {
        "model": config.model.model_dump(exclude={"name"}),
        "normalize": config.normalize.model_dump(),
        "output": config.output.model_dump(),
        "fill_radius": config.inference.fill_radius,
        "amp": config.inference.amp,
        "series": series,
        "bands": band_list,
        "cog": cog if adapter.domain == "geo" else None,
    }
    request = {
        "input_sha256": hash_input(src),
        "method": config.model.method,
        "model_sha256": method.weights_sha256,
        "scale": factors,
        "settings": settings,
    }
    return json.loads(json.dumps(request, sort_keys=True))
