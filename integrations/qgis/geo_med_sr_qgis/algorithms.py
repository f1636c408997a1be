"""The geo_med_sr Processing algorithms: one per raster job of the CLI (upscale, sharpen, batch, info).

Each algorithm turns its QGIS parameters into a ``geo-med-sr`` command line and runs it with
:func:`.runner.run_cli` (progress, cancel, cleanup). Inputs must be raster files on disk (GDAL
layers); the outputs are GeoTIFFs written by the CLI, loaded into the project by QGIS (raster
destinations) or by the algorithm (batch).
"""

from __future__ import annotations

import html
import json
import os

from processing.core.ProcessingConfig import ProcessingConfig
from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)
from qgis.PyQt.QtGui import QIcon

from .cli_spec import DEGRADATIONS, MAX_SCALE, SHARPEN_DEFAULT, SHARPEN_METHODS, UPSCALE_METHODS
from .runner import Canceled, CliError, find_executable, run_cli

#: the Processing setting that holds the CLI's path (Settings > Options > Processing > Providers).
EXECUTABLE_SETTING = "GEO_MED_SR_EXECUTABLE"
#: the first entry of the upscale/batch method list: no ``--method``, the CLI decides (bundled network).
DEFAULT_METHOD = "default (bundled network)"
ICON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "icon.svg")


def configured_executable() -> str | None:
    """The "geo-med-sr executable" setting, or None when it is empty."""
    value = ProcessingConfig.getSetting(EXECUTABLE_SETTING)
    text = str(value).strip() if value else ""
    return text or None


def layer_file(layer, what: str) -> str:
    """The file on disk behind a raster layer (GDAL provider), for the CLI.

    Raises:
        QgsProcessingException: no layer, or a layer that is not a file (a web service, a database raster).
    """
    if layer is None:
        raise QgsProcessingException(f"{what}: no raster layer or file given")
    path = layer.source().split("|")[0]
    if layer.providerType() != "gdal" or not os.path.isfile(path):
        raise QgsProcessingException(
            f"{layer.name()}: not a raster file on disk ({layer.source()}); save it as a GeoTIFF first "
            "(Raster > Conversion > Translate) and use that file"
        )
    return path


#: parameter types whose values may be files that QGIS cannot load but the CLI can judge.
_LAYER_TYPES = (QgsProcessingParameterRasterLayer.typeName(), QgsProcessingParameterMultipleLayers.typeName())


def _is_file(value) -> bool:
    return isinstance(value, str) and os.path.isfile(value)


def _advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


def _given(parameters: dict, name: str) -> bool:
    """An optional parameter was set (absent, None and "" are not set)."""
    return parameters.get(name) not in (None, "")


class GeoMedSRAlgorithm(QgsProcessingAlgorithm):
    """What every geo_med_sr algorithm shares: names, help, and running the CLI."""

    NAME = ""
    DISPLAY = ""
    HELP = ""

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return self.DISPLAY

    def group(self) -> str:
        return "Super-resolution"

    def groupId(self) -> str:
        return "superresolution"

    def shortHelpString(self) -> str:
        return self.HELP

    def shortDescription(self) -> str:
        return self.HELP.split(". ")[0] + "."

    def icon(self) -> QIcon:
        return QIcon(ICON)

    def createInstance(self):
        return type(self)()

    def checkParameterValues(self, parameters, context):
        """QGIS's checks, except that a raster input given as an existing file is left to the CLI.

        QGIS refuses a file GDAL cannot open with "Could not load source layer"; the CLI says why
        (truncated, not a TIFF, no georeferencing, ...) in its one-line error, so it gets the file.
        """
        for definition in self.parameterDefinitions():
            value = parameters.get(definition.name())
            if definition.type() in _LAYER_TYPES:
                items = value if isinstance(value, (list, tuple)) else [value]
                if items and all(_is_file(item) for item in items):
                    continue
            if not definition.checkValueIsAcceptable(value, context):
                return False, f"Incorrect parameter value for {definition.description()} ({definition.name()})"
        return True, ""

    def raster_file(self, parameters, name, context, required=True) -> str | None:
        """The file of raster parameter ``name``: its layer's file, or a path that QGIS could not load
        (the CLI judges it); None if it is optional and not given."""
        if not _given(parameters, name) and not required:
            return None
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None and _is_file(parameters.get(name)):
            return parameters[name]
        return layer_file(layer, name)

    def raster_files(self, parameters, name, context) -> list[str]:
        """The files of multiple-layer parameter ``name``, in order (as :meth:`raster_file`)."""
        value = parameters.get(name)
        items = value if isinstance(value, (list, tuple)) else [value]
        if value in (None, "") or not all(isinstance(item, str) for item in items):
            return [layer_file(layer, name) for layer in self.parameterAsLayerList(parameters, name, context) or []]
        files = []
        for item in items:
            layer = QgsProcessingUtils.mapLayerFromString(item, context)
            files.append(item if layer is None and _is_file(item) else layer_file(layer, name))
        return files

    def run_cli(self, arguments: list[str], feedback, *, outputs=(), ok_codes=(0,)):
        """Run ``geo-med-sr arguments...``; the CLI's one-line error becomes a QgsProcessingException."""
        try:
            executable = find_executable(configured_executable())
            if feedback is not None:
                feedback.pushCommandInfo(" ".join([executable, *arguments]))
            result = run_cli(arguments, feedback, executable=executable, outputs=outputs, ok_codes=ok_codes)
        except (CliError, Canceled) as exc:
            raise QgsProcessingException(str(exc)) from None
        for line in result.stdout.splitlines():
            if line.strip() and feedback is not None:
                feedback.pushInfo(line)
        return result

    def run_to_file(self, arguments: list[str], output: str, feedback) -> dict:
        """Run a command that writes the one raster ``output``; returns the algorithm's results.

        QGIS has already asked before replacing an existing ``output``, so ``--overwrite`` is passed
        then; the CLI still replaces only a file it wrote itself.
        """
        if os.path.exists(output):
            arguments = [*arguments, "--overwrite"]
        self.run_cli(arguments, feedback, outputs=[output])
        return {"OUTPUT": output}


def _upscale_parameters(algorithm: QgsProcessingAlgorithm) -> None:
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


def _upscale_options(algorithm: QgsProcessingAlgorithm, parameters: dict, context) -> list[str]:
    """The CLI options of :func:`_upscale_parameters` (``--scale`` first; ``--progress`` included)."""
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
        "within the budget), or a classical interpolator (bicubic, bspline, ...). Bands: all when none are "
        "selected. The output is a Cloud-Optimized GeoTIFF. Progress and Cancel work; a canceled run leaves "
        "no file behind."
    )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster (GeoTIFF)"))
        _upscale_parameters(self)
        self.addParameter(
            QgsProcessingParameterBand("BANDS", "Bands to keep (default: all)", None, "INPUT", True, True)
        )
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Super-resolved raster"))

    def processAlgorithm(self, parameters, context, feedback):
        source = self.raster_file(parameters, "INPUT", context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        arguments = ["upscale", source, output, *_upscale_options(self, parameters, context)]
        bands = self.parameterAsInts(parameters, "BANDS", context)
        if bands:
            arguments += ["--bands", ",".join(str(b) for b in bands)]
        return self.run_to_file(arguments, output, feedback)


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
        "network on the scene's own reduced copy within the budget; glp and brovey are classical baselines."
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
                "Self-training budget in seconds (method 'self'; default 240 on a CPU, 60 on a GPU)",
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


class BatchAlgorithm(GeoMedSRAlgorithm):
    """``geo-med-sr batch INPUT... --out-dir FOLDER``: many rasters upscaled the same way, resumably."""

    NAME = "batch"
    DISPLAY = "Upscale many rasters (batch)"
    HELP = (
        "Upscales every input raster into the output folder with geo-med-sr batch (one Dask task per input; "
        "outputs keep the inputs' names). Re-running skips outputs already made from the same input with the "
        "same settings and finishes what an interrupted run left. The outputs are added to the project. "
        "A summary is written to geo-med-sr-batch.json and .csv in the folder."
    )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterMultipleLayers("INPUT", "Input rasters (GeoTIFF)", QgsProcessing.TypeRaster)
        )
        _upscale_parameters(self)
        self.addParameter(
            QgsProcessingParameterString(
                "BANDS", "Bands to keep, 1-based, e.g. 1,2,3 (default: all)", None, False, True
            )
        )
        self.addParameter(
            _advanced(
                QgsProcessingParameterNumber(
                    "WORKERS",
                    "Worker processes (default: one per 4 cores)",
                    QgsProcessingParameterNumber.Integer,
                    None,
                    True,
                    1,
                )
            )
        )
        self.addParameter(
            _advanced(
                QgsProcessingParameterBoolean("OVERWRITE", "Replace outputs made from other inputs or settings", False)
            )
        )
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Output folder"))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_LAYERS", "Super-resolved rasters"))

    def processAlgorithm(self, parameters, context, feedback):
        inputs = self.raster_files(parameters, "INPUT", context)
        if not inputs:
            raise QgsProcessingException("INPUT: give at least one raster")
        folder = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        arguments = ["batch", *inputs, "--out-dir", folder, *_upscale_options(self, parameters, context)]
        bands = self.parameterAsString(parameters, "BANDS", context).strip()
        if bands:
            arguments += ["--bands", bands]
        if _given(parameters, "WORKERS"):
            arguments += ["--workers", str(self.parameterAsInt(parameters, "WORKERS", context))]
        if self.parameterAsBool(parameters, "OVERWRITE", context):
            arguments.append("--overwrite")
        self.run_cli(arguments, feedback, outputs=[folder], ok_codes=(0, 1))
        outcomes = _batch_outcomes(folder)
        failed = [o for o in outcomes if o.get("status") == "failed"]
        if failed:
            raise QgsProcessingException(
                f"geo-med-sr: failed: {' '.join(str(failed[0].get('error', '')).split())} ({len(failed)} of "
                f"{len(outcomes)} inputs failed; the others are in {folder}, and a rerun finishes the rest)"
            )
        layers = [o["output"] for o in outcomes if o.get("output") and os.path.isfile(o["output"])]
        if context.project() is not None:
            for path in layers:
                details = QgsProcessingContext.LayerDetails(
                    os.path.splitext(os.path.basename(path))[0], context.project(), "OUTPUT_LAYERS"
                )
                context.addLayerToLoadOnCompletion(path, details)
        return {"OUTPUT": folder, "OUTPUT_LAYERS": layers}


def _batch_outcomes(folder: str) -> list[dict]:
    """The per-input outcomes of the batch report ``FOLDER/geo-med-sr-batch.json``."""
    report = os.path.join(folder, "geo-med-sr-batch.json")
    try:
        with open(report, encoding="utf-8") as handle:
            return list(json.load(handle).get("outcomes", []))
    except (OSError, ValueError) as exc:
        raise QgsProcessingException(f"{report}: no readable batch report ({exc})") from None


class InfoAlgorithm(GeoMedSRAlgorithm):
    """``geo-med-sr info INPUT``: the raster's geometry as the tool reads it (text, optionally HTML)."""

    NAME = "info"
    DISPLAY = "Raster geometry (info)"
    HELP = (
        "Prints the shape, pixel size, orientation, origin, dtype, CRS, transform, bounds, bands and nodata of "
        "a raster as geo-med-sr reads it (geo-med-sr info). The text is the TEXT output; an HTML report is "
        "written too when a file is given."
    )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster"))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT", "Report (HTML)", "HTML files (*.html)", None, True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputString("TEXT", "Geometry (text)"))

    def processAlgorithm(self, parameters, context, feedback):
        source = self.raster_file(parameters, "INPUT", context)
        result = self.run_cli(["info", source], feedback)
        results = {"TEXT": result.stdout}
        report = self.parameterAsFileOutput(parameters, "OUTPUT", context) if _given(parameters, "OUTPUT") else ""
        if report:
            with open(report, "w", encoding="utf-8") as handle:
                handle.write(
                    f"<html><head><meta charset='utf-8'><title>{html.escape(os.path.basename(source))}</title>"
                    f"</head><body><h3>geo-med-sr info</h3><pre>{html.escape(result.stdout)}</pre></body></html>\n"
                )
            results["OUTPUT"] = report
        return results


#: the algorithms the provider offers, in toolbox order.
ALGORITHMS = (UpscaleAlgorithm, SharpenAlgorithm, BatchAlgorithm, InfoAlgorithm)
