"""SuperResolver: run an upsampling model patch by patch from a Source into a Sink."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..geometry import as_scale, scaled_shape
from .grid import Patch, PatchGrid
from ..spatial import upsample_mask
from .io import ArraySink, ArraySource, Sink, Source, read_reflected, read_reflected_mask
from .radiometry import Radiometry
from .threads import BackgroundWorker, prefetch

Model = Callable[[torch.Tensor], torch.Tensor]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    return dev


def _batches(items: Iterable[Patch], size: int) -> Iterator[list[Patch]]:
    batch: list[Patch] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class SuperResolver:
    """Tiled, batched, tile-invariant application of an upsampling model.

    Args:
        model: maps ``(B, C_in, *P)`` float32 to ``(B, C_out, *P*scale)``; usually an
            ``nn.Module`` exposing ``receptive_radius`` and ``in_channels``.
        scale: integer factor per spatial axis.
        patch_size: tile size in LR pixels (int or per axis).
        halo: LR pixels of context around each tile; defaults to ``model.receptive_radius``.
            With ``halo >= receptive radius`` the result equals whole-image inference.
        batch_size: tiles per forward pass.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        amp: mixed precision (float16 autocast) on CUDA; ignored on CPU.
        progress: show a progress bar (``None`` = only when attached to a terminal).
    """

    def __init__(
        self,
        model: Model,
        scale: int | Sequence[int],
        patch_size: int | Sequence[int] = 64,
        halo: int | Sequence[int] | None = None,
        batch_size: int = 4,
        device: str | torch.device = "auto",
        amp: bool = False,
        progress: bool | None = None,
    ) -> None:
        self.model = model
        self.scale_arg = scale
        self.patch_size = patch_size
        if halo is None:
            halo = getattr(model, "receptive_radius", None)
            if halo is None:
                raise ConfigError("the model has no receptive_radius; pass halo= explicitly")
        self.halo = halo
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.progress = progress
        if isinstance(model, torch.nn.Module):
            model.to(self.device).eval()

    def _scale(self, ndim: int) -> tuple[int, ...]:
        s = as_scale(self.scale_arg, ndim)
        if any(v != int(v) for v in s):
            raise ConfigError(f"scale must be whole numbers per axis, got {s}")
        return tuple(int(v) for v in s)

    def output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Output spatial shape for an LR spatial ``shape``."""
        return scaled_shape(shape, self._scale(len(shape)))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model on ``(B, C, *P)``; channels go through the batch for 1-channel models."""
        b, c = x.shape[:2]
        per_channel = getattr(self.model, "in_channels", None) == 1 and c > 1
        if per_channel:
            x = x.reshape(b * c, 1, *x.shape[2:])
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            y = self.model(x.to(self.device, non_blocking=True))
        y = y.float()
        if per_channel:
            y = y.reshape(b, c * y.shape[1], *y.shape[2:])
        return y

    def run(self, source: Source, sink: Sink, radiometry: Radiometry | None = None, *, threads: bool = True) -> None:
        """Super-resolve ``source`` (``(C, *S)``) into ``sink`` (``(C_out, *S*scale)``).

        Tiles are read (with their halo, mirror-reflected at the borders) by a background
        reader, run in batches, and each tile's owned output goes to ``sink`` from a
        background writer as soon as it is computed; at most a few batches are in flight, so
        memory depends on ``patch_size`` and ``batch_size``, not on the image size.

        Args:
            source: LR image; ``source.read_valid(box)`` (optional) gives the valid mask.
            sink: HR output.
            radiometry: value transforms before/after the network (normalise, fill nodata,
                inverse, re-mask, cast); its ``fill_radius`` is added to the halo.
            threads: overlap reading and writing with compute (False runs everything inline).
        """
        spatial = tuple(source.shape[1:])
        scale = self._scale(len(spatial))
        extra = radiometry.fill_radius if radiometry is not None else 0
        halo = tuple(h + extra for h in (self.halo,) * len(spatial)) if np.isscalar(self.halo) else tuple(h + extra for h in self.halo)
        grid = PatchGrid.create(spatial, self.patch_size, halo)
        read_valid = getattr(source, "read_valid", None)

        def load(batch: list[Patch]) -> tuple[list[Patch], np.ndarray, list[np.ndarray | None]]:
            inputs, masks = [], []
            for p in batch:
                raw = read_reflected(source, p.read)
                valid = read_reflected_mask(read_valid, p.read, spatial) if read_valid is not None else None
                inputs.append(radiometry.before(raw, valid) if radiometry else raw.astype(np.float32, copy=False))
                masks.append(None if valid is None else valid[tuple(slice(o0 - r0, o1 - r0) for (o0, o1), (r0, _) in zip(p.owned, p.read))])
            return batch, np.stack(inputs), masks

        def store(item: tuple[list[Patch], np.ndarray, list[np.ndarray | None]]) -> None:
            batch, y, masks = item
            for patch, out, owned_valid in zip(batch, y, masks):
                crop = tuple(slice((o0 - r0) * s, (o1 - r0) * s) for (o0, o1), (r0, _), s in zip(patch.owned, patch.read, scale))
                window = out[(slice(None),) + crop]
                if radiometry is not None:
                    window = radiometry.after(window, None if owned_valid is None else upsample_mask(owned_valid, scale))
                sink.write(tuple((o0 * s, o1 * s) for (o0, o1), s in zip(patch.owned, scale)), window)

        bar = tqdm(total=len(grid), desc="super-resolving", unit="patch", disable=None if self.progress is None else not self.progress, leave=False)
        loaded = prefetch(map(load, _batches(grid, self.batch_size)), depth=2 if threads else 0)
        try:
            with BackgroundWorker(store, depth=2 if threads else 0) as writer:
                for batch, x, masks in loaded:
                    y = self._forward(torch.from_numpy(x)).cpu().numpy()
                    writer.submit((batch, y, masks))
                    bar.update(len(batch))
        finally:
            loaded.close()
            bar.close()

    def output_channels(self, in_channels: int) -> int:
        """Channels of the output for ``in_channels`` input channels."""
        out_channels = getattr(self.model, "out_channels", None)
        if out_channels is None or getattr(self.model, "in_channels", None) == 1:
            return in_channels * (out_channels or 1)
        return int(out_channels)

    def __call__(self, array: np.ndarray, valid: np.ndarray | None = None, radiometry: Radiometry | None = None) -> np.ndarray:
        """Super-resolve an in-memory ``(C, *S)`` array (optional ``S`` valid mask).

        Returns:
            ``(C_out, *S*scale)`` array: float32, or ``radiometry.out_dtype`` when set.
        """
        dtype = np.float32 if radiometry is None or radiometry.out_dtype is None else radiometry.out_dtype
        sink = ArraySink((self.output_channels(array.shape[0]), *self.output_shape(array.shape[1:])), dtype=dtype)
        self.run(ArraySource(array, valid), sink, radiometry)
        return sink.array
