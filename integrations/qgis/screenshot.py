"""Save a screenshot of the geo_med_sr upscale algorithm's Processing dialog (docs/figures/qgis_dialog.png).

Usage (QGIS's Python, a display; from the repository root)::

    xvfb-run -a /usr/bin/python3 integrations/qgis/screenshot.py docs/figures/qgis_dialog.png

Starts a QgsApplication with its GUI, loads the provider from this source tree (no install
needed), adds a sample Sentinel-2 band of the package as a layer (so that the input box shows a
real layer), opens the algorithm dialog and saves ``dialog.grab()`` as PNG.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SAMPLE = os.path.join(REPO, "geo_med_sr", "samples", "s2_T49JGM_crop", "B04.tif")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: screenshot.py OUT.png", file=sys.stderr)
        return 2
    out = os.path.abspath(argv[0])
    os.environ["GDAL_PAM_ENABLED"] = "NO"  # no .aux.xml beside the package's sample band
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], True)
    app.initQgis()
    sys.path.insert(0, os.path.join(QgsApplication.pkgDataPath(), "python", "plugins"))
    from processing.core.Processing import Processing
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    Processing.initialize()
    sys.path.insert(0, HERE)
    import geo_med_sr_qgis

    plugin = geo_med_sr_qgis.classFactory(None)
    plugin.initProcessing()
    if os.path.isfile(SAMPLE):
        QgsProject.instance().addMapLayer(QgsRasterLayer(SAMPLE, "S2 B04 (sample)"))
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("geo_med_sr:upscale")
    if algorithm is None:
        print("screenshot.py: error: the provider did not load geo_med_sr:upscale", file=sys.stderr)
        return 2
    dialog = AlgorithmDialog(algorithm)
    dialog.show()
    app.processEvents()
    dialog.resize(960, 600)  # after show(): the dialog restores the size saved in the profile
    for _ in range(20):  # let the widgets lay out and paint
        app.processEvents()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if not dialog.grab().save(out, "PNG"):
        print(f"screenshot.py: error: {out}: could not be written", file=sys.stderr)
        return 2
    print(out)
    dialog.close()
    plugin.unload()
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
