"""Landsat 8/9 OLI and Landsat 7 ETM+: product ids in file names, band codes and central wavelengths."""

from __future__ import annotations

import re

from geo_med_sr.adapters.products.names import band_key

__all__ = ["ETM_WAVELENGTH_NM", "OLI_WAVELENGTH_NM", "landsat_band", "landsat_sensor", "landsat_wavelength"]

#: Landsat 8/9 OLI central wavelengths (nm).
OLI_WAVELENGTH_NM = {
    "B1": 443,
    "B2": 482,
    "B3": 561,
    "B4": 655,
    "B5": 865,
    "B6": 1609,
    "B7": 2201,
    "B8": 590,
    "B9": 1373,
}
#: Landsat 7 ETM+ central wavelengths (nm).
ETM_WAVELENGTH_NM = {"B1": 485, "B2": 560, "B3": 660, "B4": 835, "B5": 1650, "B7": 2220, "B8": 710}

_LANDSAT = re.compile(r"(?:^|[^A-Za-z0-9])(LC0[89]|LC[89]|LE0?7)(?=[_\d])", re.IGNORECASE)
_LANDSAT_BAND = re.compile(r"_B(\d{1,2})$", re.IGNORECASE)


def landsat_sensor(name: str) -> str | None:
    """``"Landsat-8"``, ``"Landsat-9"``, ``"Landsat-7"`` from a Landsat product id in a file name, else None."""
    match = _LANDSAT.search(name)
    if match is None:
        return None
    return f"Landsat-{match[1][-1]}"


def landsat_band(stem: str) -> int | None:
    """The band number of a Landsat band file stem (``LC08_.._B10`` -> 10), else None."""
    match = _LANDSAT_BAND.search(stem)
    return int(match[1]) if match else None


def landsat_wavelength(sensor: str | None, name: str) -> float | None:
    """Central wavelength (nm) of Landsat band ``name`` (``"B3"``, ``"B03"``) for ``sensor``, else None."""
    if sensor is None:
        return None
    table = ETM_WAVELENGTH_NM if sensor == "Landsat-7" else OLI_WAVELENGTH_NM
    value = table.get(band_key(name).upper())
    return None if value is None else float(value)
