"""The one validation of numeric options and API arguments, shared by every command and the Python API.

Each numeric option has one :class:`Rule` here (:data:`BUDGET`, :data:`STEPS`, :data:`SEED`,
:data:`OFFSET`, ...): whether it is whole, its inclusive range, and what it takes in words. The
command line uses a rule through an argparse ``type=`` (:meth:`Rule.parse`, wrapped by
:func:`geo_med_sr.cli.options.typed`); the Python entry points (``super_resolve``, ``sharpen``,
``batch``) call :meth:`Rule.check` (and :func:`path`, :func:`paths`, :func:`names`, :func:`flag`,
:func:`text` for their other arguments) before any work. Every refusal is a
:class:`~geo_med_sr.errors.ConfigError` with one line that names the option and says what it takes:
``--budget inf: expected a finite number of seconds > 0 and at most 604800 (a week)``.

Refused everywhere: NaN and infinities, booleans and strings where a number is meant, fractions
where a whole number is meant, and values outside the range (a seed numpy or torch cannot take,
an offset that overflows the reflectance, a budget that never ends). Ground layer: no project
imports but :mod:`geo_med_sr.errors`.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass

from geo_med_sr.errors import ConfigError

__all__ = [
    "BATCH_SIZE",
    "BUDGET",
    "DAY_S",
    "FILL_RADIUS",
    "INT32_MAX",
    "MM",
    "NODE_SECONDS",
    "OFFSET",
    "OFFSET_MAX",
    "PATCH_SIZE",
    "PORT",
    "RATIO",
    "SEED",
    "STEPS",
    "STEPS_OR_ZERO",
    "WEEK_S",
    "WORKERS",
    "Rule",
    "flag",
    "names",
    "number_rules",
    "path",
    "paths",
    "text",
]

#: the longest value a message repeats (a pasted file would make an unreadable line).
_SHOWN = 40


def _shown(value: object, *, typed: bool = False) -> str:
    """``value`` as a message shows it: one line, at most :data:`_SHOWN` characters (``typed``: a
    Python value, always as its ``repr``, so that ``'60'`` is seen to be a string; else command-line text
    as typed, unless it holds spaces or unprintable characters)."""
    plain = isinstance(value, str) and not typed and value.isprintable() and value.strip() == value
    shown = value if plain else repr(value)
    return shown if len(shown) <= _SHOWN else shown[: _SHOWN - 3] + "..."


def _label(name: str | None, shown: str) -> str:
    """``--budget inf`` (an option), ``budget=inf`` (a keyword, ``name`` ending in ``=``) or ``inf``."""
    if not name:
        return shown
    return f"{name}{shown}" if name.endswith("=") else f"{name} {shown}"


@dataclass(frozen=True)
class Rule:
    """What one numeric option accepts.

    Attributes:
        whole: whole numbers only (else any finite real number).
        low, high: the inclusive bounds (None: no bound on that side).
        expected: what the option takes, in words, for the message (``"a finite number of seconds > 0"``).
        above: ``low`` itself is refused (``> low`` instead of ``>= low``).
    """

    whole: bool
    low: float | None
    high: float | None
    expected: str
    above: bool = False

    def _in_range(self, value: int | float) -> bool:
        """``value`` (an int of any size, or a float) is finite and within the bounds."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high

    def _refuse(self, name: str | None, shown: str) -> ConfigError:
        return ConfigError(f"{_label(name, shown)}: expected {self.expected}")

    def check(self, value: object, name: str) -> int | float:
        """A Python value for the option ``name`` (``"budget="`` or ``"--budget"``) -> an int or float.

        Accepts Python and numpy numbers (never a bool or a string); a whole rule also accepts a
        float with no fractional part (``5.0``).

        Raises:
            ConfigError: not a number of the right kind, or out of range (one line naming ``name``).
        """
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise self._refuse(name, _shown(value, typed=True))
        if isinstance(value, numbers.Integral):
            number: int | float = int(value)
        else:
            try:
                number = float(value)
            except (OverflowError, ValueError):  # a Fraction beyond float's range
                raise self._refuse(name, _shown(value, typed=True)) from None
            if self.whole and math.isfinite(number) and number.is_integer():
                number = int(number)
        if (self.whole and not isinstance(number, int)) or not self._in_range(number):
            raise self._refuse(name, _shown(value, typed=True))
        return number if self.whole else float(number)

    def check_optional(self, value: object, name: str) -> int | float | None:
        """:meth:`check`, with None passed through (None: the method's or the command's default)."""
        return None if value is None else self.check(value, name)

    def parse(self, text: str, name: str | None = None) -> int | float:
        """Command-line ``text`` -> the value (``name``: the option for the message; None leaves it out,
        as argparse adds ``argument --budget:`` itself).

        Raises:
            ConfigError: not a number of the right kind, or out of range.
        """
        stripped = text.strip()
        try:
            value: int | float = int(stripped) if self.whole else float(stripped)
        except (ValueError, OverflowError):
            raise self._refuse(name, _shown(text)) from None
        try:
            return self.check(value, name or "")
        except ConfigError:
            raise self._refuse(name, _shown(text)) from None


#: a week: a training budget beyond it is a runaway, not a choice.
WEEK_S = 7 * 24 * 3600
#: a day: the longest wait of the DICOM node.
DAY_S = 24 * 3600
#: the largest count a 32-bit signed integer holds (what training counters and schedulers are sized for).
INT32_MAX = 2**31 - 1
#: float32 holds every whole number up to 2**24: a larger DN offset loses whole DN and overflows downstream.
OFFSET_MAX = 2**24

BUDGET = Rule(False, 0, WEEK_S, f"a finite number of seconds > 0 and at most {WEEK_S} (a week)", above=True)
STEPS = Rule(True, 1, INT32_MAX, f"a positive integer (training steps) up to {INT32_MAX}")
STEPS_OR_ZERO = Rule(
    True,
    0,
    INT32_MAX,
    f"a positive integer (training steps) up to {INT32_MAX}, or 0 with --model (the model unchanged)",
)
SEED = Rule(True, 0, 2**32 - 1, f"a whole number from 0 to {2**32 - 1} (the seeds numpy and torch both take)")
OFFSET = Rule(
    False,
    -OFFSET_MAX,
    OFFSET_MAX,
    f"a finite DN offset from -{OFFSET_MAX} to {OFFSET_MAX} (beyond, float32 loses whole DN and reflectance overflows)",
)
PATCH_SIZE = Rule(True, 1, 65536, "a whole tile edge in pixels from 1 to 65536")
BATCH_SIZE = Rule(True, 1, 4096, "a whole number of tiles per forward pass from 1 to 4096")
FILL_RADIUS = Rule(True, 0, 65536, "a whole number of pixels from 0 to 65536")
WORKERS = Rule(True, 1, 1024, "a whole number from 1 to 1024")
RATIO = Rule(True, 2, 1024, "a whole ratio of pixel sizes from 2 to 1024 (e.g. 2 for S2 20 m bands, 6 for 60 m)")
MM = Rule(False, 0, 1000, "a finite length in mm > 0 and at most 1000", above=True)
NODE_SECONDS = Rule(False, 0, DAY_S, f"a finite number of seconds > 0 and at most {DAY_S} (a day)", above=True)
PORT = Rule(True, 1, 65535, "a TCP port from 1 to 65535")


def path(value: object, name: str) -> str | os.PathLike:
    """A file or folder argument: a non-empty ``str`` or ``os.PathLike`` (returned as given).

    Raises:
        ConfigError: any other type (a number, bytes, a list...), or an empty string.
    """
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value.strip() and "\0" not in value):
        return value
    raise ConfigError(f"{_label(name, _shown(value, typed=True))}: expected a path (a non-empty str or os.PathLike)")


def paths(value: object, name: str) -> list[str | os.PathLike]:
    """One path or a non-empty list/tuple of paths (:func:`path` each) -> a list.

    Raises:
        ConfigError: an empty sequence, or an item that is not a path.
    """
    if isinstance(value, (str, os.PathLike)):
        return [path(value, name)]
    if isinstance(value, (list, tuple)) and value:
        return [path(item, name) for item in value]
    raise ConfigError(f"{_label(name, _shown(value, typed=True))}: expected a path or a non-empty list of paths")


def names(value: object, name: str) -> str | list[str] | None:
    """Names given as ``"B05,B8A"`` or a non-empty list/tuple of strings; None stays None.

    Raises:
        ConfigError: another type (a dict, a number...), an empty list or a non-string item.
    """
    if value is None:
        return None
    if isinstance(value, str) and value.strip(" ,"):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v.strip() for v in value):
        return list(value)
    raise ConfigError(f"{_label(name, _shown(value, typed=True))}: expected names such as 'B05,B8A' or ['B05', 'B8A']")


def flag(value: object, name: str, *, optional: bool = False) -> bool | None:
    """A True/False argument (``optional``: None too, e.g. ``progress=None`` for "on a terminal only").

    Raises:
        ConfigError: anything else (``"yes"``, 1...).
    """
    if isinstance(value, bool) or (optional and value is None):
        return value
    raise ConfigError(
        f"{_label(name, _shown(value, typed=True))}: expected True or False" + (" or None" if optional else "")
    )


def text(value: object, name: str, *, optional: bool = False) -> str | None:
    """A word argument (a method, a device, a model name): a non-empty ``str`` (``optional``: None too).

    Raises:
        ConfigError: another type or an empty string.
    """
    if (isinstance(value, str) and value.strip()) or (optional and value is None):
        return value
    raise ConfigError(
        f"{_label(name, _shown(value, typed=True))}: expected a non-empty string" + (" or None" if optional else "")
    )


def number_rules() -> dict[str, Rule]:
    """Every rule by name (what the tests walk)."""
    return {k: v for k, v in globals().items() if isinstance(v, Rule)}
