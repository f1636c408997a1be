"""The ``batch`` algorithm: many rasters upscaled by the CLI's batch, outputs loaded into the project."""

from __future__ import annotations

import json
import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .base import (
    GeoMedSRAlgorithm,
    _advanced,
    _given,
)
from .upscale import upscale_options, upscale_parameters


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
        upscale_parameters(self)
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
        arguments = ["batch", *inputs, "--out-dir", folder, *upscale_options(self, parameters, context)]
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
