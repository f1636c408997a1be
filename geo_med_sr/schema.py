"""Declarative configuration, the ground floor: strict pydantic bases, one-line errors, a strict YAML reader.

Every configuration of the project (the upscale :class:`~geo_med_sr.upscale.config.SRConfig`, the
training configs, the DICOM node rules) is YAML validated into a typed object built on
:class:`Strict` (unknown keys are errors) or :class:`Frozen` (also immutable). :func:`validate`
turns a pydantic failure into one :class:`~geo_med_sr.errors.ConfigError` line naming the source
and every bad field; :func:`parse_yaml` reads YAML and refuses a key given twice in one mapping
(PyYAML alone keeps the last one silently).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from geo_med_sr.errors import ConfigError, file_error

__all__ = ["Frozen", "Strict", "describe_errors", "parse_yaml", "validate"]

T = TypeVar("T")


class Strict(BaseModel):
    """A configuration section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class Frozen(Strict):
    """A strict configuration section that cannot be changed once validated (copy it with new values)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _field_problem(error: dict[str, Any]) -> str:
    """``section.field: message`` for one pydantic error."""
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"


def describe_errors(exc: ValidationError, describe: Callable[[dict[str, Any]], str] | None = None) -> str:
    """Every error of ``exc`` on one line, ``"; "``-separated (``describe`` formats one; default ``loc: msg``)."""
    return "; ".join((describe or _field_problem)(e) for e in exc.errors())


def validate(
    schema: type[T] | Any,
    data: Any,
    source: str | os.PathLike,
    what: str = "invalid configuration",
    describe: Callable[[dict[str, Any]], str] | None = None,
) -> T:
    """Validate ``data`` into ``schema`` (a model class or any type pydantic accepts, such as a union).

    Args:
        schema: the pydantic model (or annotated type) to build.
        data: the plain data (a dict from YAML or options).
        source: the file (or ``"options"``) the data came from; it starts the message.
        what: the words before the problems, e.g. ``"invalid training configuration"``.
        describe: formats one pydantic error (default ``"loc: msg"``).

    Raises:
        ConfigError: ``"<source>: <what>: <field>: <problem>; ..."`` on one line.
    """
    try:
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return schema.model_validate(data)
        return TypeAdapter(schema).validate_python(data)
    except ValidationError as exc:
        raise file_error(ConfigError, source, f"{what}: {describe_errors(exc, describe)}") from exc


class _RepeatedKey(yaml.YAMLError):
    """A mapping gives the same key twice (YAML requires unique keys; PyYAML would keep the last)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a mapping giving the same key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *base`` merges; its keys may be overridden on purpose
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
                seen.setdefault(key, line)
            except TypeError:  # an unhashable key: the base loader reports it
                continue
            if first is not None:
                where = f"lines {first} and {line}" if first != line else f"line {line}"
                raise _RepeatedKey(f"key {key!r} is given twice ({where}); keep one")
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str | os.PathLike) -> Any:
    """The data of the YAML ``text`` read from ``source`` (None for an empty document).

    Raises:
        ConfigError: ``"<source>: not valid YAML (...)"`` on one line, also for a key given twice
            in one mapping.
    """
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _RepeatedKey as exc:
        raise file_error(ConfigError, source, f"not valid YAML: {exc}") from exc
    except yaml.YAMLError as exc:
        raise file_error(ConfigError, source, f"not valid YAML ({exc})") from exc
