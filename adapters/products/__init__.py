"""Multi-resolution products for guided sharpening (``geo-med-sr sharpen``): which bands a path holds.

Modules, one job each (one file per sensor):

* :mod:`.names`: the one parser of band lists (``"B05,B8A"``) and the key two spellings of a band
  share (``"B5"`` == ``"B05"``); file stems. Pure Python.
* :mod:`.records`: :class:`BandSpec`, :class:`Product`, band candidates, raster headers, and the
  checks every product shares (metadata files validated into typed records, one band per band file).
* :mod:`.sentinel2`: band names and wavelengths, band file names, COG folders, ``.SAFE`` products,
  MTD metadata and the L1C/L2A offsets.
* :mod:`.landsat`: Landsat product ids, band codes, OLI / ETM+ wavelengths.
* :mod:`.stac`: local STAC items (validated; asset files confined to the item's folder).
* :mod:`.discovery`: :func:`discover`: which kind each input path is, band selection, the product;
  :func:`list_products`: the products an input of ``batch --sharpen`` holds (an ItemCollection: one per item).

Radiometry: ``physical = (DN + offset) * gain`` (``offset`` in DN units).
"""

from __future__ import annotations

from geo_med_sr.adapters.products.discovery import discover, list_products
from geo_med_sr.adapters.products.names import band_key, parse_band_names
from geo_med_sr.adapters.products.records import BandSpec, Product
from geo_med_sr.adapters.products.sentinel2 import S2_BANDS, S2_WAVELENGTH_NM

__all__ = [
    "S2_BANDS",
    "S2_WAVELENGTH_NM",
    "BandSpec",
    "Product",
    "band_key",
    "discover",
    "list_products",
    "parse_band_names",
]
