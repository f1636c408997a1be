"""The ``sharpen`` algorithm: guided sharpening of a multi-resolution product."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..cli_spec import SHARPEN_DEFAULT, SHARPEN_METHODS
from .base import (
    GeoMedSRAlgorithm,
    _advanced,
    _given,
)


class SharpenAlgorithm(GeoMedSRAlgorithm):
    """``geo-med-sr sharpen INPUT... OUTPUT``: coarse bands restored with finer ones (S2 20/60 m, pan)."""

    NAME = "sharpen"
    DISPLAY = "Sharpen bands (multi-resolution / pan-sharpening)"
    HELP = (
        "Restores the coarse bands with the finer bands of the same sensor with geo-med-sr sharpen and writes "
        "one multiband GeoTIFF on the finest grid. Inputs: band files of several resolutions (e.g. Sentinel-2 "
        "10 m and 20 m bands), a Sentinel-2 product folder (COG layout or .SAFE) or a STAC item; or a "
        "multispectral raster with a panchromatic (Pan) or any finer (Guide) raster. Grids must share the CRS "
        "and axis-aligned pixels with an integer ratio of pixel sizes. Method 'self' (default) trains a guided "
        "network on the scene's own reduced copy for a fixed number of steps; glp and brovey are classical baselines."
    )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "INPUT", "Input bands (raster files of several resolutions)", QgsProcessing.TypeRaster, None, True
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "PRODUCT",
                "Sentinel-2 product folder (COG layout or .SAFE)",
                QgsProcessingParameterFile.Folder,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile("STAC", "STAC item (JSON)", optional=True, fileFilter="STAC item (*.json)")
        )
        self.addParameter(QgsProcessingParameterRasterLayer("PAN", "Panchromatic raster", None, True))
        self.addParameter(QgsProcessingParameterRasterLayer("GUIDE", "Guide raster (any finer raster)", None, True))
        self.addParameter(
            QgsProcessingParameterEnum(
                "METHOD", "Method", SHARPEN_METHODS, defaultValue=SHARPEN_METHODS.index(SHARPEN_DEFAULT)
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "BUDGET",
                "Self-training budget in seconds instead of steps (method 'self'; default: a fixed number of steps)",
                QgsProcessingParameterNumber.Double,
                None,
                True,
                1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterString("BANDS", "Band names to keep, e.g. B05,B06,B8A", None, False, True)
        )
        self.addParameter(
            QgsProcessingParameterString(
                "MODEL", "Guided checkpoint or bundled name (method 'model')", None, False, True
            )
        )
        self.addParameter(
            _advanced(
                QgsProcessingParameterNumber(
                    "STEPS",
                    "Training steps instead of a time budget",
                    QgsProcessingParameterNumber.Integer,
                    None,
                    True,
                    1,
                )
            )
        )
        self.addParameter(
            _advanced(
                QgsProcessingParameterNumber(
                    "OFFSET",
                    "DN offset of the bands (S2 L2A >= 04.00: -1000) if not in metadata",
                    QgsProcessingParameterNumber.Double,
                    None,
                    True,
                )
            )
        )
        self.addParameter(
            _advanced(QgsProcessingParameterNumber("SEED", "Training seed", QgsProcessingParameterNumber.Integer, 0))
        )
        self.addParameter(
            _advanced(QgsProcessingParameterString("DEVICE", "Device (auto, cpu, cuda, cuda:N)", "auto", False, True))
        )
        self.addParameter(
            _advanced(
                QgsProcessingParameterBoolean("NO_COG", "Tiled GeoTIFF instead of a Cloud-Optimized GeoTIFF", False)
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Sharpened raster"))

    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        if not any(_given(parameters, name) for name in ("INPUT", "PRODUCT", "STAC")):
            return False, "Give the input bands, a Sentinel-2 product folder or a STAC item"
        if _given(parameters, "PAN") and _given(parameters, "GUIDE"):
            return False, "Give either a panchromatic raster or a guide raster, not both"
        if _given(parameters, "BUDGET") and _given(parameters, "STEPS"):
            return False, "Give either a training budget or a number of steps, not both"
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):
        inputs = self.raster_files(parameters, "INPUT", context) if _given(parameters, "INPUT") else []
        inputs += [p for p in (self.parameterAsFile(parameters, n, context) for n in ("PRODUCT", "STAC")) if p]
        if not inputs:
            raise QgsProcessingException("Give the input bands, a Sentinel-2 product folder or a STAC item")
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        method = SHARPEN_METHODS[self.parameterAsEnum(parameters, "METHOD", context)]
        arguments = ["sharpen", *inputs, output, "--method", method, "--progress"]
        for option, name in (("--pan", "PAN"), ("--guide", "GUIDE")):
            path = self.raster_file(parameters, name, context, required=False)
            if path:
                arguments += [option, path]
        if _given(parameters, "BUDGET"):
            arguments += ["--budget", repr(self.parameterAsDouble(parameters, "BUDGET", context))]
        if _given(parameters, "STEPS"):
            arguments += ["--steps", str(self.parameterAsInt(parameters, "STEPS", context))]
        if _given(parameters, "OFFSET"):
            arguments += ["--offset", repr(self.parameterAsDouble(parameters, "OFFSET", context))]
        for option, name in (("--bands", "BANDS"), ("--model", "MODEL"), ("--device", "DEVICE")):
            value = self.parameterAsString(parameters, name, context).strip()
            if value:
                arguments += [option, value]
        arguments += ["--seed", str(self.parameterAsInt(parameters, "SEED", context))]
        if self.parameterAsBool(parameters, "NO_COG", context):
            arguments.append("--no-cog")
        return self.run_to_file(arguments, output, feedback)
