"""The geo_med_sr Processing algorithms: one module per raster job of the CLI (upscale, sharpen, batch, info).

Each algorithm turns its QGIS parameters into a ``geo-med-sr`` command line and runs it with
:func:`.runner.run_cli` (progress, cancel, cleanup). Inputs must be raster files on disk (GDAL
layers); the outputs are GeoTIFFs written by the CLI, loaded into the project by QGIS (raster
destinations) or by the algorithm (batch).
"""

from .base import EXECUTABLE_SETTING, GeoMedSRAlgorithm
from .batch import BatchAlgorithm
from .info import InfoAlgorithm
from .sharpen import SharpenAlgorithm
from .upscale import UpscaleAlgorithm

__all__ = [
    "ALGORITHMS",
    "EXECUTABLE_SETTING",
    "BatchAlgorithm",
    "GeoMedSRAlgorithm",
    "InfoAlgorithm",
    "SharpenAlgorithm",
    "UpscaleAlgorithm",
]

ALGORITHMS = (UpscaleAlgorithm, SharpenAlgorithm, BatchAlgorithm, InfoAlgorithm)
