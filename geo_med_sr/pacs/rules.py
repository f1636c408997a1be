"""Rules of the DICOM node (:mod:`geo_med_sr.pacs.node`): which series to super-resolve, how, and where to.

A rules file is YAML (``configs/dicom_node/rules.example.yaml`` documents every key)::

    rules:
      - name: thick MR slices
        match: {modality: MR, slice_thickness: [3, 10]}   # every condition given must hold
        scale: auto                                        # 1,1,round(SliceThickness / pixel spacing)
        method: bspline-ibp
        forward: sender                                    # or AE@HOST:PORT; omitted: --forward
      - name: thick T2 with the T1w as guide
        match: {modality: MR, series_description: 'T2|FLAIR', slice_thickness: [3, 10]}
        method: self
        guide: {series_description: 'T1|MPRAGE', wait: 300, fallback: self}   # guided MRI
    default: null   # a rule for the series no rule matches; without one they are skipped

:func:`load_rules` validates it (pydantic: unknown keys are errors) and names the rule and field of
a bad value; :meth:`Rules.select` returns the first rule whose ``match`` fits a series.

``series_description`` patterns run on RE2 (``google-re2``), a linear-time engine: a sender controls
the SeriesDescription it is matched against, and a backtracking engine (Python's ``re``) can take
exponential time on a pattern like ``(a+)+$`` while holding the GIL, which freezes every thread of the
node. RE2 has no backreferences or lookaround; such a pattern is refused when the rules are loaded.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from geo_med_sr.errors import ConfigError, file_error
from geo_med_sr.scale import MAX_FACTOR, parse_scale
from geo_med_sr.schema import Frozen, parse_yaml, validate
from geo_med_sr.upscale.config import MethodName, SRConfig, load_config

#: the longest ``series_description`` pattern accepted (characters); RE2 also bounds its compiled size.
MAX_PATTERN_CHARS = 1000
#: the longest ``guide.wait`` accepted (seconds): one day.
MAX_GUIDE_WAIT_S = 86400.0


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (linear-time matching), case-insensitive; cached.

    Raises:
        ValueError: RE2 cannot compile it (bad syntax, a backreference, lookaround, a repetition
            above 1000, a program too large), with RE2's reason, on one line.
    """
    import re2

    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"a pattern of at most {MAX_PATTERN_CHARS} characters, got {len(pattern)}")
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # RE2 would also print the error on stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        raise ValueError(
            f"not a valid regular expression for RE2 ({reason}); backreferences and lookaround are not supported"
        ) from None


def search_pattern(pattern: str, text: str) -> bool:
    """Whether ``pattern`` (see :func:`compile_pattern`) is found in ``text``, in time linear in ``len(text)``."""
    return compile_pattern(pattern).search(text.encode("utf-8", "replace")) is not None


class Match(Frozen):
    """What a series must be for a rule to apply (every given condition; an empty match fits all).

    ``modality``: one value or a list (``MR``, ``[MR, CT]``); ``series_description``: a regular
    expression (RE2 syntax: no backreferences or lookaround) searched in SeriesDescription,
    case-insensitive, in linear time; ``slice_thickness``: ``[min, max]``
    mm, inclusive (a series without SliceThickness does not fit).
    """

    modality: str | list[str] | None = None
    series_description: str | None = None
    slice_thickness: tuple[float, float] | None = None

    @field_validator("series_description")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            compile_pattern(value)  # a ValueError naming what RE2 cannot run
        return value

    @field_validator("slice_thickness")
    @classmethod
    def _range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 <= value[0] <= value[1]:
            raise ValueError(f"expected [min, max] mm with 0 <= min <= max, got {list(value)}")
        return value

    def fits(self, series: dict[str, Any]) -> bool:
        """Whether the series' header values (:meth:`Instance.summary`) meet every condition."""
        if self.modality is not None:
            wanted = [self.modality] if isinstance(self.modality, str) else self.modality
            if str(series.get("modality", "")).upper() not in {m.upper() for m in wanted}:
                return False
        if self.series_description is not None:
            if not search_pattern(self.series_description, str(series.get("series_description") or "")):
                return False
        if self.slice_thickness is not None:
            thickness = _finite(series.get("slice_thickness"))
            if thickness is None or not self.slice_thickness[0] <= thickness <= self.slice_thickness[1]:
                return False
        return True


class Guide(Frozen):
    """The guide series of a rule (guided MRI, :mod:`geo_med_sr.upscale.guided`): a finer series of the
    same study that restores the target's thick axis.

    ``series_description``: a regular expression (RE2, as in :class:`Match`) searched in the guide's
    SeriesDescription, case-insensitive; ``max_slice_thickness``: the thickest guide accepted in mm
    (SliceThickness, else SpacingBetweenSlices; a series without either is no guide), so a thick
    series is never a guide; ``wait``: seconds the target waits, once complete, for a guide series to
    be complete; ``fallback``: the method run without a guide when none came within ``wait`` (None:
    the rule's ``method``); ``registered``: the guide already shares the target's world space (same
    FrameOfReference, no patient motion): no registration (``--guide-registered``).
    """

    series_description: str
    max_slice_thickness: float = Field(default=1.5, gt=0)
    wait: float = Field(default=300.0, ge=0, le=MAX_GUIDE_WAIT_S)
    fallback: MethodName | None = None
    registered: bool = False

    @field_validator("series_description")
    @classmethod
    def _regex(cls, value: str) -> str:
        compile_pattern(value)  # a ValueError naming what RE2 cannot run
        return value

    @field_validator("max_slice_thickness", "wait")
    @classmethod
    def _finite_number(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value}")
        return value

    def fits(self, series: dict[str, Any]) -> bool:
        """Whether ``series`` (header values, :meth:`Instance.summary`) can be this guide: its SeriesDescription
        matches and its slices are at most ``max_slice_thickness`` mm (the study is the caller's check)."""
        if not search_pattern(self.series_description, str(series.get("series_description") or "")):
            return False
        thickness = slice_thickness(series)
        return thickness is not None and 0 < thickness <= self.max_slice_thickness


class Rule(Frozen):
    """What to do with a series: ``scale`` (``"1,1,4"``, or ``auto``: 1,1,round(thickness / in-plane
    spacing)), ``method`` (any upscale method; None: the default network), ``config`` (a YAML
    config or bundled name such as ``medical/mri``), ``forward`` (``AE@HOST:PORT``, or ``sender``:
    back to the AE that sent the series, at its host and ``return_port``), ``expected`` (the
    series' instance count: complete as soon as it is reached), ``guide`` (a :class:`Guide`: a finer
    series of the same study to restore the thick axis with, waited for; None: single-contrast)."""

    name: str | None = None
    match: Match = Field(default_factory=Match)
    scale: str = "auto"
    method: MethodName | None = None
    config: str | None = None
    forward: str | None = None
    return_port: int | None = Field(default=None, ge=1, le=65535)
    expected: int | None = Field(default=None, ge=1)
    guide: Guide | None = None

    @field_validator("scale", mode="before")
    @classmethod
    def _scale(cls, value: Any) -> str:
        text = str(value).strip().lower()
        if text != "auto":
            try:
                factors = parse_scale(text)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
            if len(factors) not in (1, 3):
                raise ValueError(f"{text!r}: one factor or three (column,row,slice), e.g. 1,1,4 or auto")
        return text

    @field_validator("forward")
    @classmethod
    def _forward(cls, value: str | None) -> str | None:
        if value is not None and value != "sender":
            from geo_med_sr.pacs.net import parse_peer

            try:
                parse_peer(value, "forward")
            except ConfigError as exc:
                raise ValueError(f"{exc} or 'sender'") from None
        return value

    @model_validator(mode="after")
    def _config(self) -> Rule:
        if self.config is not None:
            load_config(self.config)  # a ConfigError naming the file, re-raised by load_rules
        if self.guide is not None and self.scale != "auto":
            factors = parse_scale(self.scale)
            if len(factors) != 3 or sum(int(f) > 1 for f in factors) != 1:
                raise ValueError(f"scale {self.scale!r}: a guide restores one thick axis, give auto or e.g. 1,1,4")
        return self

    def label(self, index: int | None = None) -> str:
        """``rule 2 (thick MR)`` for messages."""
        where = "default rule" if index is None else f"rule {index + 1}"
        return f"{where} ({self.name})" if self.name else where

    def sr_config(self, method: str | None = None) -> SRConfig:
        """The SRConfig the rule runs: its ``config`` (or the defaults), then ``method`` (None: its ``method``)."""
        config = load_config(self.config) if self.config else SRConfig()
        return config.updated(model={"method": method or self.method})

    def scale_for(self, series: dict[str, Any]) -> tuple[int, int, int] | str:
        """The (column, row, slice) factors for ``series``, or why the rule cannot scale it (a str).

        ``auto``: in-plane 1, through-plane ``round(SliceThickness / in-plane spacing)`` (the mean
        of the two PixelSpacing values; SpacingBetweenSlices when SliceThickness is missing),
        capped at :data:`geo_med_sr.scale.MAX_FACTOR`.
        """
        if self.scale != "auto":
            factors = tuple(parse_scale(self.scale))
            return (factors[0],) * 3 if len(factors) == 1 else factors
        thickness = _finite(series.get("slice_thickness")) or _finite(series.get("spacing_between_slices"))
        spacing = series.get("pixel_spacing")
        values = [_finite(s) for s in spacing] if isinstance(spacing, (list, tuple)) and len(spacing) == 2 else []
        if not thickness or not values or None in values or min(values) <= 0:
            return "scale auto needs SliceThickness (or SpacingBetweenSlices) and PixelSpacing in the header"
        ratio = thickness / (sum(values) / 2)
        if not (math.isfinite(ratio) and ratio > 0):
            return f"scale auto: SliceThickness {thickness} mm over PixelSpacing {values} mm is not a positive number"
        return (1, 1, int(min(MAX_FACTOR, max(1, round(ratio)))))


def slice_thickness(series: dict[str, Any]) -> float | None:
    """The series' SliceThickness in mm, else its SpacingBetweenSlices; None when neither is a finite number."""
    return _finite(series.get("slice_thickness")) or _finite(series.get("spacing_between_slices"))


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (missing, not a number, NaN or infinite: a header a sender wrote)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class RulesFile(Frozen):
    """A rules file: ``rules`` (first match wins) and an optional ``default`` (used when none matches)."""

    rules: list[Rule] = Field(default_factory=list)
    default: Rule | None = None


class Rules:
    """The validated rules of a node."""

    def __init__(self, rules: Sequence[Rule] = (), default: Rule | None = None) -> None:
        self.rules, self.default = list(rules), default

    def select(self, series: dict[str, Any]) -> tuple[Rule, str] | None:
        """The first rule that fits ``series`` and its label, the default rule, or None (skip)."""
        for index, rule in enumerate(self.rules):
            if rule.match.fits(series):
                return rule, rule.label(index)
        return (self.default, self.default.label()) if self.default is not None else None

    def all(self) -> list[tuple[Rule, str]]:
        """Every rule with its label (the default last)."""
        out = [(rule, rule.label(i)) for i, rule in enumerate(self.rules)]
        return out + ([(self.default, self.default.label())] if self.default is not None else [])


def _problem(error: dict[str, Any], data: dict[str, Any]) -> str:
    """``rule 2 (name), field scale: ...`` for one pydantic error of a rules file."""
    loc = list(error["loc"])
    where = ""
    if loc[:1] == ["rules"] and len(loc) > 1 and isinstance(loc[1], int):
        index = loc[1]
        items = data.get("rules") or []
        name = items[index].get("name") if index < len(items) and isinstance(items[index], dict) else None
        where, loc = (f"rule {index + 1} ({name})" if name else f"rule {index + 1}"), loc[2:]
    elif loc[:1] == ["default"]:
        where, loc = "default rule", loc[1:]
    field = ".".join(str(p) for p in loc if not str(p).startswith("function-"))
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}{', ' if where and field else ''}{'field ' + field if field else ''}: {message}"


def load_rules(path: str | os.PathLike) -> Rules:
    """Read and validate a rules YAML file.

    Raises:
        ConfigError: naming the file, and for a bad value which rule (number and name) and which field.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise file_error(ConfigError, path, "no such rules file") from None
    data = parse_yaml(text, path)
    if isinstance(data, list):
        data = {"rules": data}
    if not isinstance(data, dict):
        raise file_error(ConfigError, path, "a rules file is a mapping with 'rules:' (a list) and optional 'default:'")
    # a rule's bad config file is one of the problems too (a ConfigError is a ValueError)
    parsed = validate(RulesFile, data, path, "invalid rules", describe=lambda error: _problem(error, data))
    return Rules(parsed.rules, parsed.default)
