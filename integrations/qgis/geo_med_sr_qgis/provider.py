"""The ``geo_med_sr`` Processing provider: its algorithms and its one setting (the CLI's path)."""

from __future__ import annotations

import configparser
import os
import shutil

from processing.core.ProcessingConfig import ProcessingConfig, Setting
from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS, EXECUTABLE_SETTING
from .cli_spec import EXECUTABLE

HERE = os.path.dirname(os.path.abspath(__file__))


def plugin_version() -> str:
    """The plugin's version, as metadata.txt states it."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(os.path.join(HERE, "metadata.txt"), encoding="utf-8")
    return parser.get("general", "version", fallback="unknown")


class GeoMedSRProvider(QgsProcessingProvider):
    """Provider id and name ``geo_med_sr``: upscale, sharpen, batch and info, each running the CLI.

    Its setting "geo-med-sr executable" (Settings > Options > Processing > Providers >
    geo_med_sr) defaults to the ``geo-med-sr`` that ``shutil.which`` finds on QGIS's PATH when
    the provider loads; empty means "look on the PATH when an algorithm runs".
    """

    def id(self) -> str:
        return "geo_med_sr"

    def name(self) -> str:
        return "geo_med_sr"

    def longName(self) -> str:
        return f"geo_med_sr super-resolution {self.versionInfo()}"

    def versionInfo(self) -> str:
        return plugin_version()

    def icon(self) -> QIcon:
        return QIcon(os.path.join(HERE, "icon.svg"))

    def svgIconPath(self) -> str:
        return os.path.join(HERE, "icon.svg")

    def load(self) -> bool:
        ProcessingConfig.settingIcons[self.name()] = self.icon()
        ProcessingConfig.addSetting(
            Setting(
                self.name(),
                EXECUTABLE_SETTING,
                "geo-med-sr executable",
                shutil.which(EXECUTABLE) or "",
                valuetype=Setting.FILE,
            )
        )
        ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        if EXECUTABLE_SETTING in ProcessingConfig.settings:
            ProcessingConfig.removeSetting(EXECUTABLE_SETTING)

    def loadAlgorithms(self) -> None:
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        return ["tif"]  # the CLI writes (Cloud-Optimized) GeoTIFF for raster inputs

    def defaultRasterFileExtension(self) -> str:
        return "tif"
