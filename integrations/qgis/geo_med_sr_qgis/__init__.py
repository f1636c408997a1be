"""geo_med_sr for QGIS: a Processing provider that runs the ``geo-med-sr`` command line.

QGIS calls :func:`classFactory` when it loads the plugin. Nothing here imports torch or
geo_med_sr: the algorithms run the CLI as a subprocess (:mod:`.runner`), so the plugin works with
any QGIS Python as long as geo-med-sr is installed somewhere (its own virtual environment).
"""


def classFactory(iface):
    """The plugin instance QGIS keeps (``iface`` is None in qgis_process)."""
    from .plugin import GeoMedSRPlugin

    return GeoMedSRPlugin(iface)
