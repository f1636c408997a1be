"""The DICOM node and the PACS options of upscale against a REAL Orthanc (skipped when it is not installed).

One Orthanc serves the module (``orthanc_server.py``); the real 35-slice MR series of the shared data
is stored in it once. Every test finds its own result as the new series of that study (the series
there before the test are known), super-resolved by ``1,1,2`` with ``nearest`` so that each stays fast,
and checks its geometry against the input's headers: same orientation and pixel spacing, half the
slice thickness and spacing, slice centres at ``p0 + ((j + 0.5) / 2 - 0.5) * step`` (centre-anchored).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from cli_fixtures import run_cli
from conftest import REPO, shared_path
from dicom_fixtures import wait_for_echo
from orthanc_server import free_port, orthanc_binary, start_orthanc

from geo_med_sr.pacs import dimse, net
from geo_med_sr.pacs.node import DicomNode
from geo_med_sr.pacs.rules import Rule, Rules

NODE_AE, KILLED_AE, OUR_AE = "SRNODE", "SRNODE2", "GEO_MED_SR"
SCALE = 2  # through-plane factor of every test here


@pytest.fixture(scope="module")
def node_ports() -> dict[str, int]:
    return {NODE_AE: free_port(), KILLED_AE: free_port()}


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory, node_ports):
    orthanc_binary()  # skip with the reason when Orthanc is absent
    modalities = {
        "node": (NODE_AE, "127.0.0.1", node_ports[NODE_AE]),
        "killed": (KILLED_AE, "127.0.0.1", node_ports[KILLED_AE]),
        "cli": (OUR_AE, "127.0.0.1", free_port()),  # C-FIND/C-GET from upscale --from
    }
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"), modalities)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stored(orthanc) -> SimpleNamespace:
    """The real MR series, stored in Orthanc: its folder, Orthanc ID, series and study UIDs."""
    folder = shared_path("dicom", "mr_t1_fl2d_sag_HFS")
    answers = orthanc.upload_folder(folder)
    series = orthanc.request(f"/series/{answers[0]['ParentSeries']}")
    study = orthanc.request(f"/studies/{series['ParentStudy']}")
    return SimpleNamespace(
        folder=folder,
        files=sorted(folder.glob("*.dcm")),
        orthanc_id=series["ID"],
        series_uid=series["MainDicomTags"]["SeriesInstanceUID"],
        study_uid=study["MainDicomTags"]["StudyInstanceUID"],
    )


def _values(text: str) -> np.ndarray:
    return np.array([float(v) for v in str(text).split("\\")])


def assert_sr_geometry(tags: list[dict], folder: Path, scale: int = SCALE) -> None:
    """The simplified tags of a result series are the ``1,1,scale`` upscale of the series in ``folder``."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]
    iop = np.array(headers[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    positions = sorted((np.array(h.ImagePositionPatient, dtype=float) for h in headers), key=lambda p: p @ normal)
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    expected = np.array([positions[0] + ((j + 0.5) / scale - 0.5) * step for j in range(scale * len(positions))])

    assert len(tags) == scale * len(headers)
    assert len({t["SeriesInstanceUID"] for t in tags}) == 1
    assert tags[0]["SeriesInstanceUID"] != headers[0].SeriesInstanceUID
    assert {t["StudyInstanceUID"] for t in tags} == {headers[0].StudyInstanceUID}
    for t in tags:
        np.testing.assert_allclose(_values(t["ImageOrientationPatient"]), iop, atol=1e-6)
        np.testing.assert_allclose(_values(t["PixelSpacing"]), np.array(headers[0].PixelSpacing, float), atol=1e-6)
        assert float(t["SliceThickness"]) == pytest.approx(float(headers[0].SliceThickness) / scale, abs=1e-4)
        assert float(t["SpacingBetweenSlices"]) == pytest.approx(np.linalg.norm(step) / scale, abs=1e-4)
    got = np.array(sorted((_values(t["ImagePositionPatient"]) for t in tags), key=lambda p: p @ normal))
    np.testing.assert_allclose(got, expected, atol=1e-3)  # mm


@pytest.mark.slow
def test_node_receives_from_orthanc_and_forwards_the_sr_series_back_to_it(orthanc, stored, node_ports, tmp_path):
    known = set(orthanc.series_of_study(stored.study_uid))
    rule = Rule(
        name="thick MR",
        match={"modality": "MR", "slice_thickness": (3, 5)},
        scale=f"1,1,{SCALE}",
        method="nearest",
        forward="sender",
        return_port=orthanc.dicom_port,
        expected=35,  # complete at the 35th instance: the idle time (60 s) never ends it here
    )
    node = DicomNode(tmp_path / "spool", Rules([rule]), ae_title=NODE_AE, idle=60)
    stop = threading.Event()
    thread = threading.Thread(target=node.run, args=("127.0.0.1", node_ports[NODE_AE], stop, 0.1), daemon=True)
    thread.start()
    try:
        wait_for_echo(net.Peer(NODE_AE, "127.0.0.1", node_ports[NODE_AE]))
        body = json.dumps({"Resources": [stored.orthanc_id], "Synchronous": True}).encode()
        answer = orthanc.request("/modalities/node/store", body)  # Orthanc C-STOREs the series to the node
        assert (answer["InstancesCount"], answer["FailedInstancesCount"]) == (35, 0)
        series = orthanc.wait_for_series(stored.study_uid, known, SCALE * 35, timeout=90)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert_sr_geometry(orthanc.instance_tags(series), stored.folder)
    done = json.loads((tmp_path / "spool" / "done" / f"{stored.series_uid}.json").read_text())
    assert done["output_series_uid"] == series["MainDicomTags"]["SeriesInstanceUID"]
    assert done["forwarded_to"] == orthanc.peer and done["instances_in"] == 35 and done["rule"] == "rule 1 (thick MR)"
    assert not any((tmp_path / "spool" / "ready").iterdir()) and not any((tmp_path / "spool" / "failed").iterdir())


def _start_node(command: list[str], log: Path) -> subprocess.Popen:
    handle = open(log, "wb")  # noqa: SIM115 - kept open by the child
    return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)


@pytest.mark.slow
def test_node_killed_mid_series_loses_no_acknowledged_instance(orthanc, stored, node_ports, tmp_path):
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage
    from pynetdicom import AE

    known = set(orthanc.series_of_study(stored.study_uid))
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"rules:\n  - scale: 1,1,{SCALE}\n    method: nearest\n    expected: 35\n")
    spool, port = tmp_path / "spool", node_ports[KILLED_AE]
    peer = net.Peer(KILLED_AE, "127.0.0.1", port)
    command = [sys.executable, "-m", "geo_med_sr", "dicom-node", "--ae-title", KILLED_AE, "--port", str(port)]
    command += ["--forward", orthanc.peer, "--rules", str(rules), "--spool", str(spool), "--idle", "60"]

    first = _start_node(command, tmp_path / "first.log")
    try:
        wait_for_echo(peer)
        ae = AE(ae_title="SCANNER")
        ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", port, ae_title=KILLED_AE)
        assert assoc.is_established
        for file in stored.files[:20]:
            assert assoc.send_c_store(file).Status == 0x0000  # acknowledged
        first.send_signal(signal.SIGKILL)  # mid-series, mid-association
        first.wait(10)
        assoc.abort()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    acknowledged = {f"{pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID}.dcm" for f in stored.files[:20]}
    assert {p.name for p in (spool / "incoming" / stored.series_uid).glob("*.dcm")} == acknowledged

    second = _start_node(command, tmp_path / "second.log")
    try:
        wait_for_echo(peer)
        assert dimse.send_files(stored.files[20:], peer, "SCANNER") == 15
        series = orthanc.wait_for_series(stored.study_uid, known, SCALE * 35, timeout=120)
        second.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        assert second.wait(30) == 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    log = (tmp_path / "second.log").read_text()
    assert "resuming series" in log and "20 instance(s) received before the restart" in log
    assert f"DICOM node {KILLED_AE} stopped" in log and "Traceback" not in log
    assert_sr_geometry(orthanc.instance_tags(series), stored.folder)
    done = json.loads((spool / "done" / f"{stored.series_uid}.json").read_text())
    assert done["instances_in"] == 35 and done["output_series_uid"] == series["MainDicomTags"]["SeriesInstanceUID"]


@pytest.fixture
def own_tmp(tmp_path, monkeypatch) -> Path:
    """The system temporary folder for this test only (to see that a fetched series is removed)."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _series_uid(folder: Path) -> str:
    return pydicom.dcmread(next(iter(sorted(folder.glob("*.dcm")))), stop_before_pixels=True).SeriesInstanceUID


@pytest.mark.slow
def test_upscale_reads_with_wado_rs_and_stores_with_stow_rs(orthanc, stored, tmp_path, own_tmp, capsys):
    known = set(orthanc.series_of_study(stored.study_uid))
    url = f"dicomweb://127.0.0.1:{orthanc.http_port}/dicom-web/studies/{stored.study_uid}/series/{stored.series_uid}"
    out = tmp_path / "sr"
    argv = ["upscale", url, out, "--scale", f"1,1,{SCALE}", "--method", "nearest", "--stow", orthanc.dicomweb]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert f"stored {SCALE * 35} instances at {orthanc.dicomweb}" in stdout
    series = orthanc.wait_for_series(stored.study_uid, known, SCALE * 35, timeout=30)
    assert series["MainDicomTags"]["SeriesInstanceUID"] == _series_uid(out)
    assert_sr_geometry(orthanc.instance_tags(series), stored.folder)
    assert list(own_tmp.iterdir()) == []  # the fetched series was removed


@pytest.mark.slow
def test_upscale_retrieves_with_c_get_and_sends_with_c_store(orthanc, stored, tmp_path, own_tmp, capsys):
    known = set(orthanc.series_of_study(stored.study_uid))
    out = tmp_path / "sr"
    argv = ["upscale", out, "--from", orthanc.peer, "--series", stored.series_uid, "--scale", f"1,1,{SCALE}"]
    code, stdout, err = run_cli(capsys, *argv, "--method", "nearest", "--send", orthanc.peer, "--ae-title", OUR_AE)
    assert code == 0, err
    assert f"sent {SCALE * 35} instances to {orthanc.peer}" in stdout
    series = orthanc.wait_for_series(stored.study_uid, known, SCALE * 35, timeout=30)
    assert series["MainDicomTags"]["SeriesInstanceUID"] == _series_uid(out)
    assert_sr_geometry(orthanc.instance_tags(series), stored.folder)
    assert list(own_tmp.iterdir()) == []


@pytest.mark.slow
def test_a_series_the_pacs_does_not_have_is_one_line_and_leaves_nothing(orthanc, stored, tmp_path, own_tmp, capsys):
    out = tmp_path / "sr"
    missing = "1.2.3.4.5"
    url = f"dicomweb://127.0.0.1:{orthanc.http_port}/dicom-web/studies/{stored.study_uid}/series/{missing}"
    for argv, problem in (
        ([url, out], "WADO-RS failed: HTTP 404"),
        ([out, "--from", orthanc.peer, "--series", missing], f"has no series with SeriesInstanceUID {missing}"),
    ):
        code, _, err = run_cli(capsys, "upscale", *argv, "--scale", "1,1,2", "--method", "nearest")
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("geo-med-sr: error: ") and problem in err, err
        assert not out.exists() and list(own_tmp.iterdir()) == []
