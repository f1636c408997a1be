"""Background reading and writing so I/O overlaps compute, with bounded queues.

Exceptions raised in a background thread are re-raised in the caller; queues hold at most
``depth`` items, so memory stays bounded however large the image is. ``depth=0`` runs
everything inline (no thread), which is handy for debugging.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class prefetch(Generic[T]):
    """Iterate ``items`` produced ahead by a background thread (at most ``depth`` waiting)."""

    def __init__(self, items: Iterable[T], depth: int = 2) -> None:
        self._items = iter(items)
        self._depth = depth
        self._stop = threading.Event()
        self._error: BaseException | None = None
        if depth > 0:
            self._queue: queue.Queue = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(target=self._produce, name="geo_med_sr-reader", daemon=True)
            self._thread.start()

    def _produce(self) -> None:
        try:
            for item in self._items:
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:  # re-raised in the consumer
            self._error = exc
        finally:
            self._put_done()

    def _put_done(self) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(_DONE, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[T]:
        if self._depth <= 0:
            yield from self._items
            return
        while True:
            item = self._queue.get()
            if item is _DONE:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def close(self) -> None:
        """Stop the producer (used when the consumer ends early)."""
        if self._depth > 0:
            self._stop.set()
            self._thread.join()


class BackgroundWorker(Generic[T]):
    """Apply ``func`` to submitted items in one background thread, in submission order.

    Use as a context manager: leaving the block waits for all submitted work and re-raises
    the first error; an error in the worker also surfaces at the next ``submit``.
    """

    def __init__(self, func: Callable[[T], None], depth: int = 2) -> None:
        self._func = func
        self._depth = depth
        self._error: BaseException | None = None
        if depth > 0:
            self._queue: queue.Queue = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(target=self._work, name="geo_med_sr-writer", daemon=True)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._func(item)
                except BaseException as exc:  # re-raised in the submitting thread
                    self._error = exc

    def submit(self, item: T) -> None:
        """Queue ``item`` (blocks while ``depth`` items are waiting)."""
        if self._error is not None:
            raise self._error
        if self._depth <= 0:
            self._func(item)
        else:
            self._queue.put(item)

    def __enter__(self) -> BackgroundWorker[T]:
        if self._depth > 0:
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._depth > 0:
            self._queue.put(_DONE)
            self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error
