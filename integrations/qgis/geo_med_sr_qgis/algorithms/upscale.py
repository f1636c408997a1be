"""The ``upscale`` algorithm (and the upscale parameters the batch algorithm shares)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..cli_spec import DEGRADATIONS, MAX_SCALE, UPSCALE_METHODS
from .base import (
    DEFAULT_METHOD,
    GeoMedSRAlgorithm,
    _advanced,
    _given,
)


def upscale_parameters(algorithm: QgsProcessingAlgorithm) -> None:
    """The parameters upscale and batch share (after INPUT): scale, method, model and options."""
    algorithm.addParameter(
        QgsProcessingParameterNumber(
            "SCALE", "Scale factor", QgsProcessingParameterNumber.Integer, 2, False, 1, MAX_SCALE
        )
    )
    algorithm.addParameter(
        QgsProcessingParameterEnum("METHOD", "Method", [DEFAULT_METHOD, *UPSCALE_METHODS], defaultValue=0)
    )
    algorithm.addParameter(
        QgsProcessingParameterFile(
            "MODEL",
            "Checkpoint for method 'model' (.safetensors with its .json)",
            optional=True,
            fileFilter="Checkpoints (*.safetensors)",
        )
    )
    algorithm.addParameter(
        QgsProcessingParameterBoolean("FAST", "Fast bundled network (large scenes, about 0.2 dB lower)", False)
    )
    algorithm.addParameter(
        _advanced(
            QgsProcessingParameterNumber(
                "BUDGET",
                "Self-training budget in seconds (method 'self')",
                QgsProcessingParameterNumber.Double,
                None,
                True,
                1.0,
            )
        )
    )
    algorithm.addParameter(
        _advanced(QgsProcessingParameterBoolean("ENSEMBLE", "Geometric self-ensemble (8x the compute)", False))
    )
    algorithm.addParameter(
        _advanced(QgsProcessingParameterBoolean("CONSISTENCY", "Back-project onto the input (consistency)", False))
    )
    algorithm.addParameter(
        _advanced(QgsProcessingParameterEnum("DEGRADE", "Degradation model for consistency", DEGRADATIONS, False, 0))
    )
    algorithm.addParameter(
        _advanced(QgsProcessingParameterString("DEVICE", "Device (auto, cpu, cuda, cuda:N)", "auto", False, True))
    )
    algorithm.addParameter(_advanced(QgsProcessingParameterBoolean("FLOAT32", "Write float32 values", False)))
    algorithm.addParameter(
        _advanced(QgsProcessingParameterBoolean("NO_COG", "Tiled GeoTIFF instead of a Cloud-Optimized GeoTIFF", False))
    )


def upscale_options(algorithm: QgsProcessingAlgorithm, parameters: dict, context) -> list[str]:
    """The CLI options of :func:`upscale_parameters` (``--scale`` first; ``--progress`` included)."""
    options = ["--scale", str(algorithm.parameterAsInt(parameters, "SCALE", context)), "--progress"]
    method = algorithm.parameterAsEnum(parameters, "METHOD", context)
    if method > 0:
        options += ["--method", UPSCALE_METHODS[method - 1]]
    model = algorithm.parameterAsFile(parameters, "MODEL", context)
    if model:
        options += ["--model", model]
    if _given(parameters, "BUDGET"):
        options += ["--budget", repr(algorithm.parameterAsDouble(parameters, "BUDGET", context))]
    for flag, name in (
        ("--fast", "FAST"),
        ("--ensemble", "ENSEMBLE"),
        ("--float32", "FLOAT32"),
        ("--no-cog", "NO_COG"),
    ):
        if algorithm.parameterAsBool(parameters, name, context):
            options.append(flag)
    if algorithm.parameterAsBool(parameters, "CONSISTENCY", context):
        options += [
            "--consistency",
            "--degrade",
            DEGRADATIONS[algorithm.parameterAsEnum(parameters, "DEGRADE", context)],
        ]
    device = algorithm.parameterAsString(parameters, "DEVICE", context).strip()
    if device:
        options += ["--device", device]
    return options


class UpscaleAlgorithm(GeoMedSRAlgorithm):
    """``geo-med-sr upscale INPUT OUTPUT --scale S``: a GeoTIFF super-resolved on the same footprint."""

    NAME = "upscale"
    DISPLAY = "Upscale raster (super-resolution)"
    HELP = (
        "Super-resolves a GeoTIFF by a whole factor with geo-med-sr upscale, keeping the exact footprint: "
        "the output covers the same extent in the same CRS with pixels SCALE times smaller. "
        "Method: the bundled network by default, 'self' trains a network on the input itself (no download, "
        "a fixed number of steps), or a classical interpolator (bicubic, bspline, ...). Bands: all when none are "
        "selected. The output is a Cloud-Optimized GeoTIFF. Progress and Cancel work; a canceled run leaves "
        "no file behind."
    )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster (GeoTIFF)"))
        upscale_parameters(self)
        self.addParameter(
            QgsProcessingParameterBand("BANDS", "Bands to keep (default: all)", None, "INPUT", True, True)
        )
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Super-resolved raster"))

    def processAlgorithm(self, parameters, context, feedback):
        source = self.raster_file(parameters, "INPUT", context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        arguments = ["upscale", source, output, *upscale_options(self, parameters, context)]
        bands = self.parameterAsInts(parameters, "BANDS", context)
        if bands:
            arguments += ["--bands", ",".join(str(b) for b in bands)]
        return self.run_to_file(arguments, output, feedback)
