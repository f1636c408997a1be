"""What every geo_med_sr Processing algorithm shares: the CLI's configured path, layers as files, the
base class that runs the command line (progress, cancel, one-line errors) and loads its outputs."""

from __future__ import annotations

import os

from processing.core.ProcessingConfig import ProcessingConfig
from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
)
from qgis.PyQt.QtGui import QIcon

from ..runner import Canceled, CliError, find_executable, run_cli

#: the Processing setting that holds the CLI's path (Settings > Options > Processing > Providers).
EXECUTABLE_SETTING = "GEO_MED_SR_EXECUTABLE"
#: the first entry of the upscale/batch method list: no ``--method``, the CLI decides (bundled network).
DEFAULT_METHOD = "default (bundled network)"
ICON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "icon.svg")


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
