"""geo_med_sr: super-resolution for medical volumes and satellite imagery with exact geometry.

Public entry points: :func:`geo_med_sr.pipeline.super_resolve`, :mod:`geo_med_sr.io`
(``read``/``write``), :class:`geo_med_sr.spatial.SpatialArray`.
"""

from __future__ import annotations

__version__ = "0.1.0"
