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
from .io import ArraySink, ArraySource, Sink, Source, read_reflected

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

    def run(self, source: Source, sink: Sink) -> None:
        """Super-resolve ``source`` (``(C, *S)``) into ``sink`` (``(C_out, *S*scale)``)."""
        spatial = tuple(source.shape[1:])
        scale = self._scale(len(spatial))
        grid = PatchGrid.create(spatial, self.patch_size, self.halo)
        bar = tqdm(total=len(grid), desc="super-resolving", unit="patch", disable=None if self.progress is None else not self.progress, leave=False)
        try:
            for batch in _batches(grid, self.batch_size):
                x = np.stack([read_reflected(source, p.read) for p in batch]).astype(np.float32, copy=False)
                y = self._forward(torch.from_numpy(x)).cpu().numpy()
                for patch, out in zip(batch, y):
                    crop = tuple(
                        slice((o0 - r0) * s, (o1 - r0) * s) for (o0, o1), (r0, _), s in zip(patch.owned, patch.read, scale)
                    )
                    box = tuple((o0 * s, o1 * s) for (o0, o1), s in zip(patch.owned, scale))
                    sink.write(box, out[(slice(None),) + crop])
                bar.update(len(batch))
        finally:
            bar.close()

    def __call__(self, array: np.ndarray) -> np.ndarray:
        """Super-resolve an in-memory ``(C, *S)`` array into a float32 ``(C_out, *S*scale)`` array."""
        source = ArraySource(array)
        out_channels = getattr(self.model, "out_channels", None)
        c_in = array.shape[0]
        if out_channels is None or getattr(self.model, "in_channels", None) == 1:
            c_out = c_in * (out_channels or 1)
        else:
            c_out = out_channels
        sink = ArraySink((c_out, *self.output_shape(array.shape[1:])))
        self.run(source, sink)
        return sink.array
