"""The adapter interface every format implements, and the registry the I/O layer dispatches on.

An adapter converts between one file format and the package's data model: a
:class:`~geo_med_sr.spatial.SpatialArray` (``read``/``write``, the whole image) and the
engine's protocols (``open_source``/``open_sink``, window by window). Every adapter offers all
of them. A format read by windows of the file (GeoTIFF) sets ``reads_windows`` and implements
``open_source`` on the file; a format written window by window (GeoTIFF, the streamed NIfTI
output) sets ``writes_windows`` and implements ``open_sink``. The others inherit in-memory
versions that read the whole image into an :class:`~geo_med_sr.inference.arrays.ArraySource`
and collect the output in a :class:`MemorySink` written by ``write`` when it is closed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from geo_med_sr.dtypes import compute_dtype
from geo_med_sr.errors import InputError, OutputError, file_error
from geo_med_sr.inference.arrays import ArraySource
from geo_med_sr.inference.protocols import ImageSink, ImageSource, Window
from geo_med_sr.registry import Registry
from geo_med_sr.spatial import SpatialArray

if TYPE_CHECKING:  # typing.Self is Python 3.11+
    from typing_extensions import Self


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

    Subclasses set the class attributes and implement ``can_read``, ``can_write``, ``read`` and
    ``write``; the rest has working defaults. ``write`` (and a sink's ``close``) receives a
    temporary path chosen by :mod:`geo_med_sr.io` and must write exactly there; the I/O layer
    renames it into place only when it succeeds. An adapter that writes files beside its output
    (a JSON sidecar) names them in :meth:`companions`; ``write`` puts them beside the temporary
    path and the I/O layer moves them into place right after the main output.

    Attributes:
        name: registry name (``"nifti"``, ``"dicom"``, ``"geotiff"``).
        domain: ``"medical"`` (RAS mm volumes) or ``"geo"`` (rasters in CRS units): decides the
            bundled models, and which outputs an input may be written to.
        spatial_dims: spatial axes of the images ``read`` returns (known before reading).
        is_folder: the format is a folder (DICOM series), not a single file; such inputs take
            ``series=`` (a SeriesInstanceUID) when read.
        reads_windows: ``open_source`` reads windows of the file, so memory does not grow with
            the input; False: it holds the whole image in memory.
        writes_windows: the sink of ``open_sink`` puts each window on disk as it arrives, so
            memory does not grow with the output; False: it holds the whole output in memory
            (a :class:`MemorySink`) until it is closed.
        band_selection: ``read``/``open_source`` take ``bands=`` (1-based band numbers).
    """

    name: ClassVar[str] = ""
    domain: ClassVar[str] = ""
    spatial_dims: ClassVar[int] = 3
    is_folder: ClassVar[bool] = False
    reads_windows: ClassVar[bool] = False
    writes_windows: ClassVar[bool] = False
    band_selection: ClassVar[bool] = False

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
    def open_source(cls, path: Path, **options: Any) -> ImageSource:
        """The image at ``path`` as a source for the engine (close it, or use it in ``with``).

        Default: the whole image read by :meth:`read` (with ``options``), held in memory.
        """
        return ArraySource.from_image(cls.read(Path(path), **options))

    @classmethod
    def open_sink(
        cls,
        path: Path,
        shape: tuple[int, ...],
        affine: np.ndarray,
        meta: dict[str, Any],
        dtype: np.dtype | str,
        *,
        name: str | Path | None = None,
        **options: Any,
    ) -> ImageSink:
        """A sink for an output of ``shape`` ``(C, *S)`` on the grid ``affine`` at ``path``.

        Default: a :class:`MemorySink` that collects float32 values and, when closed, writes
        them with :meth:`write` (``options`` are passed on; ``meta["dtype"]`` is the dtype it
        stores). ``name`` is the path messages name (the user's output while ``path`` is the
        I/O layer's temporary target).
        """
        return MemorySink(cls, Path(path), shape, affine, meta, **options)

    @classmethod
    def companions(cls, path: Path) -> list[Path]:
        """Files ``write`` may create beside ``path`` (same folder), e.g. a JSON sidecar.

        :func:`geo_med_sr.io.check_output` refuses to replace them without ``overwrite``, as it
        does for the output itself. Default: none.
        """
        return []

    @classmethod
    def owns_companion(cls, path: Path) -> bool:
        """Whether the file ``path`` (one of :meth:`companions`) was written by this tool, so that
        it may be replaced or removed; a user's file of that name is never touched. Default: False."""
        return False

    @classmethod
    def output_name(cls, path: Path) -> str:
        """The file or folder name an output made from input ``path`` gets (``geo-med-sr batch``).

        Default: the input's own name.
        """
        return Path(path).name

    @classmethod
    def read_provenance(cls, path: Path) -> dict[str, Any] | None:
        """The ``meta["provenance"]`` dict stored in an output written by this adapter.

        Reads only headers/tags, never the pixels. Returns None when ``path`` is missing,
        unreadable (corrupt, partial) or carries no provenance; never raises. Default: None.
        """
        return None

    @classmethod
    def describe(cls, image: SpatialArray | ImageSource) -> dict[str, Any]:
        """Format-specific lines for ``geo-med-sr info`` from an image or an opened source
        (anything with ``shape``, ``affine`` and ``meta``): series UID, CRS, ..."""
        return {}


class SinkContext:
    """What every image sink does as a context manager: :meth:`close` when the block succeeds,
    :meth:`abort` when it raises (a failed run never finishes a file)."""

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class AdapterSink(SinkContext):
    """The common state of a sink an adapter finishes: ``adapter``, ``path``, ``shape`` ``(C, *S)``,
    ``affine``, ``meta``, ``options`` and ``block`` (1 per axis: windows of any size).

    Args:
        adapter: the adapter class that finishes the output.
        path: where it writes (the I/O layer's temporary target).
        shape: ``(C, *S)`` of the output.
        affine: ``(n+1, n+1)`` centre-anchored affine of the output grid.
        meta: the output's metadata.
        **options: passed to the adapter's writer.
    """

    dtype: np.dtype | None = None
    nodata: float | None = None

    def __init__(
        self,
        adapter: type[Adapter],
        path: Path,
        shape: tuple[int, ...],
        affine: np.ndarray,
        meta: dict[str, Any],
        **options: Any,
    ) -> None:
        self.adapter, self.path, self.affine, self.meta, self.options = adapter, Path(path), affine, meta, options
        self.shape = tuple(int(v) for v in shape)
        self.block = (1,) * (len(self.shape) - 1)


class MemorySink(AdapterSink):
    """An :class:`~geo_med_sr.inference.protocols.ImageSink` holding the whole output in memory.

    Windows are collected in a float32 (float64 for wide storage dtypes) ``(C, *S)`` array;
    :meth:`close` writes it with the adapter's ``write`` as a SpatialArray on the grid ``affine``
    with ``meta`` (whose ``"dtype"`` the writer casts to: the engine leaves the values as float32,
    ``dtype`` None). Arguments as for :class:`AdapterSink`.
    """

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        #: float values, in float64 when the stored dtype is wide (geo_med_sr.dtypes.compute_dtype)
        self.array: np.ndarray | None = np.zeros(self.shape, compute_dtype(self.meta.get("dtype")))

    def write(self, window: Window, data: np.ndarray) -> None:
        if self.array is None:
            raise file_error(OutputError, self.path, "the sink is already closed; open a new sink")
        self.array[Window(window).channel_slices()] = data

    def close(self) -> None:
        """Write the collected image with the adapter (once; later calls do nothing)."""
        if self.array is None:
            return
        array, self.array = self.array, None
        self.adapter.write(SpatialArray(array, self.affine, self.meta), self.path, **self.options)

    def abort(self) -> None:
        """Drop the collected image without writing anything."""
        self.array = None
