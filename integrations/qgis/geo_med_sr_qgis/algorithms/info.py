"""The ``info`` algorithm: what the CLI reads from a raster (grid, CRS, bands)."""

from __future__ import annotations

import html
import os

from qgis.core import (
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import (
    GeoMedSRAlgorithm,
    _given,
)


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
