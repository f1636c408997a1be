"""SuperResolver: an :class:`~.protocols.Upsampler` run by the window driver from a Source into a Sink.

EDSR networks stream column by column (:mod:`.columns`, no halo recomputed); every other
upsampler runs tile by tile (:class:`~.driver.WindowDriver`). Both equal whole-image inference
on the image mirror-padded by the halo, and both keep memory independent of the image size.
Here is only what is specific to an upsampler: its input (normalised, nodata filled), its
forward pass (channels through the batch for one-channel models, on its device) and the
normaliser's inverse.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from geo_med_sr.dtypes import compute_dtype
from geo_med_sr.errors import ConfigError
from geo_med_sr.geometry import scaled_shape
from geo_med_sr.inference.arrays import ArraySink, ArraySource
from geo_med_sr.inference.columns import run_columns
from geo_med_sr.inference.device import resolve_device
from geo_med_sr.inference.driver import WindowDriver, WindowInputs
from geo_med_sr.inference.memory import reuse_freed_memory
from geo_med_sr.inference.protocols import OutputSpec, Sink, Source, Upsampler
from geo_med_sr.inference.radiometry import Radiometry
from geo_med_sr.networks.streaming import StreamedEDSR
from geo_med_sr.scale import as_scale


def _parameter_dtype(model: object) -> torch.dtype | None:
    """The dtype of a module's parameters (a network), or None for parameter-free upsamplers."""
    if isinstance(model, torch.nn.Module):
        for param in model.parameters():
            return param.dtype
    return None


def _model_halo(model: object) -> int | tuple[int, ...]:
    """The halo a model needs: its ``receptive_radii`` per axis when it has them (a plane ensemble
    reaches further along its thick axis than across it), else its ``receptive_radius``."""
    radii = getattr(model, "receptive_radii", None)
    if radii is not None:
        return tuple(int(r) for r in radii)
    return int(model.receptive_radius)  # type: ignore[attr-defined]


def _as_compute(raw: np.ndarray) -> np.ndarray:
    """Raw values in their compute dtype (float64 for wide storage types, else float32)."""
    return raw.astype(compute_dtype(raw.dtype), copy=False)


def _identity(values: np.ndarray) -> np.ndarray:
    return values


class _Upsampling:
    """The window driver's compute for an upsampler: normalise and fill a batch of tiles (reader
    thread), run the model on it (main thread), invert the normalisation (writer thread)."""

    def __init__(self, resolver: SuperResolver, radiometry: Radiometry | None, guided: bool = False) -> None:
        self.resolver, self.radiometry, self.guided = resolver, radiometry, guided

    def prepare(self, windows: list[WindowInputs]) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The normalised batch ``(B, C, *P)``; with guides, the pair of it and the guide batch
        ``(B, G, *P*scale)`` float32 (every guide's channels in order, already normalised by the caller)."""
        rad = self.radiometry
        x = np.stack([rad.before(w.values, w.valid) if rad else _as_compute(w.values) for w in windows])
        if not self.guided:
            return x
        g = np.stack([np.concatenate(w.guides, axis=0).astype(np.float32, copy=False) for w in windows])
        return x, g

    def __call__(self, prepared: np.ndarray | tuple[np.ndarray, np.ndarray]) -> list[tuple[np.ndarray, None]]:
        resolver = self.resolver
        if isinstance(prepared, tuple):
            x, g = prepared
            y = resolver._forward(resolver._to_device(x), resolver._to_device(g)).cpu().numpy()
        else:
            y = resolver._forward(resolver._to_device(prepared)).cpu().numpy()
        return [(out, None) for out in y]

    def finish(self, values: np.ndarray) -> np.ndarray:
        return values if self.radiometry is None else self.radiometry.inverse(values)


class SuperResolver:
    """Tiled, batched, tile-invariant application of an upsampling model.

    Args:
        model: an :class:`~.protocols.Upsampler`: ``(B, C_in, *P)`` float32 to
            ``(B, C_out, *P*scale)``, with ``receptive_radius``, ``in_channels`` and
            ``out_channels``.
        scale: integer factor per spatial axis.
        patch_size: tile size in LR pixels (int or per axis).
        halo: LR pixels of context around each tile; defaults to the model's ``receptive_radii`` per
            axis when it has them, else its ``receptive_radius``.
            With ``halo >= receptive radius`` the result equals whole-image inference.
        batch_size: tiles per forward pass.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        amp: mixed precision (float16 autocast) on CUDA; ignored on CPU.
        progress: show a progress bar (``None`` = only when attached to a terminal).
        stream: run EDSR networks column by column with no halo recomputation
            (:class:`~geo_med_sr.networks.streaming.StreamedEDSR`); other models use tiles.
        column_size: largest in-plane size (LR pixels) of a streamed column (axes are cut into
            near-equal columns); a column runs the whole image along the last axis in chunks
            of about ``chunk_mb`` of features.
        chunk_mb: size target of the largest feature buffer of a streamed chunk.
    """

    def __init__(
        self,
        model: Upsampler,
        scale: int | Sequence[int],
        patch_size: int | Sequence[int] = 64,
        halo: int | Sequence[int] | None = None,
        batch_size: int = 4,
        device: str | torch.device = "auto",
        amp: bool = False,
        progress: bool | None = None,
        stream: bool = True,
        column_size: int = 256,
        chunk_mb: float = 32.0,
    ) -> None:
        self.model = model
        self.scale_arg = scale
        self.patch_size = patch_size
        self.halo = _model_halo(model) if halo is None else halo
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.progress = progress
        if column_size < 1 or chunk_mb <= 0:
            raise ConfigError(f"column_size must be >= 1 and chunk_mb > 0, got {column_size} and {chunk_mb}")
        self.column_size, self.chunk_mb = int(column_size), float(chunk_mb)
        if isinstance(model, torch.nn.Module):
            model.to(self.device).eval()
        #: networks (modules with parameters) run in their parameters' dtype; classical upsamplers in the data's
        self.model_dtype = _parameter_dtype(model)
        self.streamed = StreamedEDSR(model) if stream and StreamedEDSR.supports(model) else None

    def _scale(self, ndim: int) -> tuple[int, ...]:
        return as_scale(self.scale_arg, ndim)

    def output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Output spatial shape for an LR spatial ``shape``."""
        return scaled_shape(shape, self._scale(len(shape)))

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """A NumPy batch on the engine's device (through pinned memory, without blocking, on CUDA)."""
        x = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True)

    def _per_channel(self, channels: int) -> bool:
        """True when a one-channel model runs a multi-channel image channel by channel (through the batch)."""
        return self.model.in_channels == 1 and channels > 1

    def _forward(self, x: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        """Run the model on ``(B, C, *P)`` (with a guided model, ``model(x, guide)``, the guide
        ``(B, G, *P*scale)``); channels go through the batch for 1-channel models (called by the
        driver, inside its ``inference_mode`` and autocast)."""
        b, c = x.shape[:2]
        dtype = x.dtype
        per_channel = self._per_channel(c)
        if per_channel:
            x = x.reshape(b * c, 1, *x.shape[2:])
        if self.model_dtype is not None:
            x = x.to(self.model_dtype)
            guide = None if guide is None else guide.to(self.model_dtype)
        # under the driver's inference mode and autocast
        y = self.model(x) if guide is None else self.model(x, guide)
        y = y.to(dtype)
        if per_channel:
            y = y.reshape(b, c * y.shape[1], *y.shape[2:])
        return y

    def driver(self, halo: Sequence[int], threads: bool = True) -> WindowDriver:
        """The window driver of this resolver for a ``halo`` (LR pixels per axis, nodata fill included)."""
        return WindowDriver(
            self._scale(len(halo)),
            self.patch_size,
            halo,
            batch_size=self.batch_size,
            threads=threads,
            progress=self.progress,
            desc="super-resolving",
            unit="patch",
            device=self.device,
            amp=self.amp,
        )

    def run(
        self,
        source: Source,
        sink: Sink,
        radiometry: Radiometry | None = None,
        *,
        threads: bool = True,
        guides: Sequence[Source] = (),
    ) -> None:
        """Super-resolve ``source`` (``(C, *S)``) into ``sink`` (``(C_out, *S*scale)``).

        Streamable networks (EDSR, 2D/3D) run column by column
        (:func:`~geo_med_sr.inference.columns.run_columns`); other models tile by tile
        (:meth:`~geo_med_sr.inference.driver.WindowDriver.run`). Both equal whole-image
        inference on the image mirror-padded by the halo, and both keep memory independent of
        the image size.

        Args:
            source: LR image; ``source.read_valid(window)`` gives the valid mask (or None).
            sink: HR output.
            radiometry: value transforms before/after the network (normalise, fill nodata,
                inverse, re-mask, cast); its ``fill_radius`` is added to the halo.
            threads: overlap reading and writing with compute (False runs everything inline).
            guides: Sources on the output grid ``(C_g, *S*scale)``, already normalised, for a
                guided model (``model.guided``, ``model(x, guide)`` with the guides' channels
                concatenated in order); they run tile by tile, and the target must have one channel.

        Raises:
            ConfigError: guides for a model that takes none, a guided model without guides, or
                guides with a multi-channel target.
        """
        self._check_guides(source, guides)
        spatial = tuple(source.shape[1:])
        extra = radiometry.fill_radius if radiometry is not None else 0
        halo = (self.halo,) * len(spatial) if np.isscalar(self.halo) else tuple(self.halo)
        halo = tuple(int(h) + extra for h in halo)
        driver = self.driver(halo, threads)
        spec = radiometry.spec if radiometry is not None else OutputSpec(None)
        with reuse_freed_memory(self.device.type == "cpu"):
            if guides:
                driver.run(_Upsampling(self, radiometry, guided=True), sink, spec, source=source, guides=guides)
            elif (
                self.streamed is not None and len(spatial) >= 2 and min(halo) - extra >= self.streamed.receptive_radius
            ):
                run_columns(
                    driver,
                    self.streamed,
                    source,
                    sink,
                    spec,
                    before=radiometry.before if radiometry is not None else None,
                    finish=radiometry.inverse if radiometry is not None else _identity,
                    extra=extra,
                    column_size=self.column_size,
                    chunk_mb=self.chunk_mb,
                    per_channel=self._per_channel(source.shape[0]),
                    to_device=self._to_device,
                )
            else:
                driver.run(_Upsampling(self, radiometry), sink, spec, source=source)

    def _check_guides(self, source: Source, guides: Sequence[Source]) -> None:
        """Guides go with a guided model (``model.guided``) and a one-channel target, and only then."""
        guided = bool(getattr(self.model, "guided", False))
        if guides and not guided:
            raise ConfigError(
                f"{type(self.model).__name__} takes no guide, but {len(guides)} guide image(s) were given"
            )
        if guided and not guides:
            raise ConfigError(f"{type(self.model).__name__} is a guided model: give it its guide image(s)")
        if guides and source.shape[0] != 1:
            raise ConfigError(f"a guided model restores one channel at a time, got a {source.shape[0]}-channel target")

    def output_channels(self, in_channels: int) -> int:
        """Channels of the output for ``in_channels`` input channels."""
        out_channels = self.model.out_channels
        if out_channels is None or self.model.in_channels == 1:
            return in_channels * (out_channels or 1)
        return int(out_channels)

    def __call__(
        self,
        array: np.ndarray,
        valid: np.ndarray | None = None,
        radiometry: Radiometry | None = None,
        guides: Sequence[np.ndarray] = (),
    ) -> np.ndarray:
        """Super-resolve an in-memory ``(C, *S)`` array (optional ``S`` valid mask).

        Args:
            guides: for a guided model, in-memory ``(G, *S*scale)`` guide arrays on the output
                grid (normalised), as :meth:`run`'s guide Sources.

        Returns:
            ``(C_out, *S*scale)`` array: float32, or ``radiometry.out_dtype`` when set.
        """
        dtype = np.float32 if radiometry is None or radiometry.out_dtype is None else radiometry.out_dtype
        sink = ArraySink((self.output_channels(array.shape[0]), *self.output_shape(array.shape[1:])), dtype=dtype)
        self.run(ArraySource(array, valid), sink, radiometry, guides=[ArraySource(g) for g in guides])
        return sink.array
