"""What the plugin knows of the ``geo-med-sr`` command line, without importing it.

QGIS runs its own Python, which has neither torch nor geo_med_sr: the plugin only runs the CLI
as a subprocess. The choices below mirror the CLI's argparse choices; a test of the project
(tests/integrations/test_qgis_plugin.py) compares them with ``geo_med_sr.cli.main.build_parser()``,
so a method added to the CLI fails that test until it is listed here too.
"""

from __future__ import annotations

#: ``geo-med-sr upscale/batch --method`` choices (``geo_med_sr.upscale.methods.METHODS``).
UPSCALE_METHODS = ("bicubic", "bspline", "bspline-ibp", "linear", "model", "nearest", "self")
#: ``geo-med-sr sharpen --method`` choices (``geo_med_sr.sharpening.registry.SHARPEN_METHODS``, a test
#: compares them); the CLI's default is ``self`` (``DEFAULT_METHOD``).
SHARPEN_METHODS = ("bicubic", "brovey", "glp", "model", "self")
SHARPEN_DEFAULT = "self"
#: ``--degrade`` choices (the degradation model of ``--consistency``).
DEGRADATIONS = ("blockavg", "gaussian", "slice")
#: the largest factor per axis that ``--scale`` accepts (``geo_med_sr.scale.MAX_FACTOR``).
MAX_SCALE = 16
#: the name of the console script that pip installs with geo-med-sr.
EXECUTABLE = "geo-med-sr"
