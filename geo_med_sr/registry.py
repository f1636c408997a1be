"""Explicit name -> object registries that reject duplicates and suggest the closest name."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from geo_med_sr.errors import GeoMedSRError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of objects (network classes, adapters, normalisers, ...).

    Args:
        kind: what is registered, used in messages ("network", "adapter", ...).
        error: exception class raised for unknown names.
    """

    def __init__(self, kind: str, error: type[GeoMedSRError] = GeoMedSRError) -> None:
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering an object under ``name``; a second use of a name is an error."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` as ``name``."""
        key = name.lower()
        if key in self._items:
            raise self.error(f"{self.kind} {name!r} is already registered")
        self._items[key] = obj

    def get(self, name: str) -> T:
        """The object registered as ``name`` (case-insensitive)."""
        key = name.lower()
        if key not in self._items:
            close = difflib.get_close_matches(key, list(self._items), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise self.error(f"unknown {self.kind} {name!r}{hint} (available: {', '.join(sorted(self._items))})")
        return self._items[key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)
