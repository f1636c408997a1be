"""The adapter interface and the registry the I/O layer dispatches on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..registry import Registry
from ..spatial import SpatialArray


def provenance_from_text(content: bytes | str) -> dict[str, Any] | None:
    """The provenance JSON object stored as text in a file header (trailing NUL/space padding
    removed), or None when it is not UTF-8, not JSON or not an object (e.g. another tool's comment)."""
    try:
        text = content.decode("utf-8") if isinstance(content, bytes) else str(content)
        value = json.loads(text.rstrip("\x00 "))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


#: name -> Adapter subclass; filled by the adapter modules when imported.
ADAPTERS: Registry[type[Adapter]] = Registry("adapter", InputError)


class Adapter:
    """Reads and writes one file format.

    Subclasses set ``name`` and implement the class methods below. ``write`` receives a
    temporary path chosen by :func:`geo_med_sr.io.write` and must write exactly there; the I/O
    layer renames it into place only when ``write`` returns. An adapter that writes files beside
    its output (a JSON sidecar) names them in :meth:`companions`; ``write`` puts them beside the
    temporary path and the I/O layer moves them into place right after the main output.
    """

    name: str = ""
    #: True when the format is a folder (DICOM series), False for single files.
    is_folder: bool = False

    @classmethod
    def can_read(cls, path: Path) -> bool:
        """Whether ``path`` looks like this format (by name or content; cheap, never raises)."""
        raise NotImplementedError

    @classmethod
    def can_write(cls, path: Path) -> bool:
        """Whether ``path`` names an output of this format."""
        raise NotImplementedError

    @classmethod
    def read(cls, path: Path, **options: Any) -> SpatialArray:
        """Read ``path`` into a SpatialArray; raise :class:`InputError` naming the file on failure."""
        raise NotImplementedError

    @classmethod
    def write(cls, image: SpatialArray, path: Path, **options: Any) -> None:
        """Write ``image`` to ``path`` (a file, or a new folder when ``is_folder``)."""
        raise NotImplementedError

    @classmethod
    def companions(cls, path: Path) -> list[Path]:
        """Files ``write`` may create beside ``path`` (same folder), e.g. a JSON sidecar.

        :func:`geo_med_sr.io.check_output` refuses to replace them without ``overwrite``, as it
        does for the output itself. Default: none.
        """
        return []

    @classmethod
    def read_provenance(cls, path: Path) -> dict[str, Any] | None:
        """The ``meta["provenance"]`` dict stored in an output written by this adapter.

        Reads only headers/tags, never the pixels. Returns None when ``path`` is missing,
        unreadable (corrupt, partial) or carries no provenance; never raises. Default: None.
        """
        return None

    @classmethod
    def describe(cls, image: SpatialArray) -> dict[str, Any]:
        """Format-specific lines for ``geo-med-sr info`` (series UID, CRS, ...)."""
        return {}
