"""One provenance shape for upscale and sharpen; outputs written by earlier versions still recognised."""

from __future__ import annotations

import pytest
from geotiff_fixtures import make_geotiff
from s2_fixtures import s2_folder

from geo_med_sr import __version__, io, super_resolve
from geo_med_sr.provenance import COMMON_KEYS, build_provenance, read_fields
from geo_med_sr.sharpening.pipeline import sharpen
from geo_med_sr.spatial import SpatialArray
from geo_med_sr.upscale.batch import Job, up_to_date
from geo_med_sr.upscale.config import SRConfig
from geo_med_sr.upscale.request import request_for

CONFIG = SRConfig().updated(model={"method": "nearest"})

#: what ``upscale`` wrote before the shared shape: the version inside ``tool``, no command, no inputs.
OLD_UPSCALE = {"tool": "geo_med_sr 0.1.0", "method": "nearest", "scale": [2, 2], "normalization": {}}
#: what ``sharpen`` wrote before: ``tool`` and ``version`` apart, no request.
OLD_SHARPEN = {"tool": "geo_med_sr", "version": "0.1.0", "command": "sharpen", "method": "glp", "inputs": ["S2"]}


def test_the_builder_starts_every_record_with_the_common_keys():
    record = build_provenance("sharpen", "glp", inputs=["a.tif"], request={"k": 1}, groups=[])
    assert list(record)[: len(COMMON_KEYS)] == list(COMMON_KEYS)
    assert record["tool"] == f"geo_med_sr {__version__}" and record["version"] == __version__
    assert build_provenance("upscale", "model")["request"] is None
    with pytest.raises(ValueError, match="common keys"):
        build_provenance("upscale", "model", version="9")


def test_both_tools_write_the_same_common_fields(tmp_path):
    src, _ = make_geotiff(tmp_path / "in.tif")
    up = super_resolve(src, tmp_path / "up.tif", 2, CONFIG, progress=False)
    sharp = sharpen(s2_folder(tmp_path / "S2X", n=48, scl=False), tmp_path / "sh.tif", method="bicubic", progress=False)
    for result, command in ((up, "upscale"), (sharp, "sharpen")):
        stored = io.read_provenance(result.output)
        assert set(COMMON_KEYS) <= set(stored) and stored["command"] == command
        fields = read_fields(stored)
        assert (fields.tool, fields.version, fields.command) == ("geo_med_sr", __version__, command)
        assert fields.request == stored["request"] and fields.request is not None
    assert read_fields(io.read_provenance(up.output)).inputs == (str(src),)
    assert up.provenance["request"] == request_for(src, 2, CONFIG)


def test_records_of_the_previous_shapes_are_read():
    old = read_fields({**OLD_UPSCALE, "request": {"input_sha256": "ab"}})
    assert (old.tool, old.version, old.command, old.method) == ("geo_med_sr", "0.1.0", "upscale", "nearest")
    assert old.request == {"input_sha256": "ab"} and old.inputs == ()
    old = read_fields(OLD_SHARPEN)
    assert (old.tool, old.version, old.command, old.inputs, old.request) == (
        "geo_med_sr",
        "0.1.0",
        "sharpen",
        ("S2",),
        None,
    )
    for other in (None, [], {"tool": "gdal 3.8"}, {"method": "x"}, {"tool": 3}):
        assert read_fields(other) is None


def test_an_output_of_the_previous_version_is_still_up_to_date_and_ours(tmp_path):
    """batch skips an output whose old-shape provenance holds the same request, and may replace it."""
    src, _ = make_geotiff(tmp_path / "in.tif")
    new = super_resolve(src, tmp_path / "new.tif", 2, CONFIG, progress=False)
    image = io.read(src)  # the pixels do not matter here: the provenance does
    old = {**OLD_UPSCALE, "request": new.provenance["request"]}
    out = io.write(
        SpatialArray(image.array, image.affine, {**image.meta, "provenance": old}, image.valid), tmp_path / "old.tif"
    )
    assert io.read_provenance(out) == old and "version" not in old
    job = Job(src, out, True)
    assert up_to_date(job, request_for(src, 2, CONFIG)) is True
    assert up_to_date(job, request_for(src, 2, CONFIG.updated(model={"method": "bicubic"}))) is False
    super_resolve(src, out, 2, CONFIG, progress=False, overwrite=True)  # ours: replaced, not refused
    assert read_fields(io.read_provenance(out)).version == __version__
