"""Exceptions raised by geo_med_sr.

Every error derives from :class:`GeoMedSRError`; subclasses also inherit the matching
builtin so callers can catch ``ValueError`` / ``FileNotFoundError`` as usual. Messages say
what failed, what was expected and what to do, on one line, naming the file when there is one.
"""

from __future__ import annotations


class GeoMedSRError(Exception):
    """Root of all geo_med_sr errors."""


class InputError(GeoMedSRError, ValueError):
    """An input file or folder cannot be used (unreadable, corrupt, bad values or geometry)."""


class InputNotFoundError(InputError, FileNotFoundError):
    """An input path does not exist."""


class OutputError(GeoMedSRError, ValueError):
    """The output path cannot be written (exists, equals the input, unknown format)."""


class ConfigError(GeoMedSRError, ValueError):
    """A configuration value or command-line option is invalid."""


class GeometryError(InputError):
    """The geometry of an input cannot be represented exactly (e.g. uneven DICOM slices)."""


class ModelError(GeoMedSRError, ValueError):
    """A model name, checkpoint or network configuration is unusable."""


class ScaleError(ConfigError, ModelError):
    """A scale factor is invalid (not a number, not whole, not positive, wrong count of axes).

    Raised by :func:`geo_med_sr.scale.as_scale`, the one scale validator; it is a ConfigError
    (a bad ``--scale`` option) and a ModelError (a bad network ``scale`` argument) so that
    callers catching either, as they did before there was one validator, still catch it.
    """


class DependencyError(GeoMedSRError, ImportError):
    """An optional dependency that a feature needs is not installed (the message says what to install)."""


def file_error(cls: type[GeoMedSRError], path: object, problem: str) -> GeoMedSRError:
    """Build ``cls`` with the one-line message ``"<path>: <problem>"`` (a path holding a newline or another
    unprintable character is shown quoted, as Python writes it).

    Args:
        cls: the exception class to instantiate.
        path: the file or folder the problem is about.
        problem: what is wrong and, where possible, what to do about it.
    """
    shown = str(path)
    if not shown.isprintable():  # a newline or control character in a name: quoted, so the message stays one line
        shown = repr(shown)
    return cls(f"{shown}: {' '.join(str(problem).split())}")
