"""The QGIS plugin object: registers the geo_med_sr Processing provider, nothing else."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import GeoMedSRProvider


class GeoMedSRPlugin:
    """Adds :class:`GeoMedSRProvider` to the Processing registry (QGIS desktop and qgis_process)."""

    def __init__(self, iface=None) -> None:
        self.iface = iface
        self.provider: GeoMedSRProvider | None = None

    def initProcessing(self) -> None:
        """Called by QGIS (and qgis_process, for plugins with hasProcessingProvider=yes)."""
        if self.provider is None:
            self.provider = GeoMedSRProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        """Desktop start: the provider's algorithms appear in the Processing toolbox."""
        self.initProcessing()

    def unload(self) -> None:
        """Plugin disabled or QGIS closing: remove the provider (and with it, its setting)."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
