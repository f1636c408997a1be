"""What each adapter declares about windows: the I/O layer, ``info`` and the size guard decide on it."""

from __future__ import annotations

import pytest

from geo_med_sr import io
from geo_med_sr.adapters.base import ADAPTERS, Adapter, MemorySink
from geo_med_sr.adapters.nifti import NiftiAdapter


@pytest.mark.parametrize(
    "name,reads,writes",
    [("nifti", False, True), ("geotiff", True, True), ("dicom", False, False)],
)
def test_each_adapter_declares_how_it_reads_and_writes(name, reads, writes):
    io.adapter_for_output("x.nii")  # imports and registers every adapter
    adapter = ADAPTERS.get(name)
    assert (adapter.reads_windows, adapter.writes_windows) == (reads, writes)
    assert not hasattr(adapter, "windowed")  # the one flag that covered both is gone


def test_an_adapter_that_does_not_write_windows_holds_the_output_in_memory(tmp_path):
    import numpy as np

    assert (Adapter.reads_windows, Adapter.writes_windows) == (False, False)
    sink = Adapter.open_sink(tmp_path / "x", (1, 2, 2, 2), np.eye(4), {}, "float32")
    assert isinstance(sink, MemorySink)
    sink.abort()
    streamed = NiftiAdapter.open_sink(tmp_path / "x.nii", (1, 2, 2, 2), np.eye(4), {}, "float32")
    assert not isinstance(streamed, MemorySink)
    streamed.abort()
