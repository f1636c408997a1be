"""The DICOM node without a PACS: rules (matching, validation errors), the spool (durable before the
answer, refusals), series completion, restart, retries, and the PACS options' refusals on the command line.

The network tests here talk to our own C-STORE server on 127.0.0.1; the tests with a real PACS are in
``test_pacs_orthanc.py``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pydicom
import pytest
from cli_fixtures import run_cli
from dicom_fixtures import make_synthetic_series, wait_for_echo
from hypothesis import given
from hypothesis import strategies as st
from orthanc_server import free_port

from geo_med_sr.errors import ConfigError, InputError, OutputError, file_error
from geo_med_sr.pacs import dimse, net
from geo_med_sr.pacs.fetch import parse_dicomweb
from geo_med_sr.pacs.node import DicomNode
from geo_med_sr.pacs.rules import Rule, Rules, load_rules
from geo_med_sr.upscale.pipeline import super_resolve


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def series(folder: Path, slices: int = 6, **kwargs) -> list[Path]:
    """A small synthetic MR series (10x8 pixels, 2.5 mm slices) in ``folder``; its files sorted by name."""
    make_synthetic_series(folder, shape=(10, 8, slices), spacing=(0.8, 0.9, 2.5), **kwargs)
    return sorted(folder.glob("*.dcm"))


def instance(path: Path, ae: str = "SCANNER") -> net.Instance:
    """What the C-STORE server hands the node for the file ``path`` sent by ``ae``."""
    return net.instance_of(pydicom.dcmread(path), path.read_bytes(), ae, "127.0.0.1", 11112)


class Recorder:
    """The node's ``send``: records (files' SOPInstanceUIDs, series UID, destination); fails ``fail`` times first."""

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.calls = fail, []

    def __call__(self, files, peer, calling_ae):
        if self.fail:
            self.fail -= 1
            raise file_error(OutputError, peer, "cannot connect (test)")
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        self.calls.append(({h.SeriesInstanceUID for h in headers}, len(files), str(peer), calling_ae))
        return len(files)


class Upscale:
    """The node's ``upscale``: the real super_resolve, counted."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return super_resolve(*args, **kwargs)


NEAREST = Rules([Rule(scale="1,1,2", method="nearest")])


def node(spool: Path, rules: Rules = NEAREST, clock: Clock | None = None, **kwargs) -> DicomNode:
    kwargs.setdefault("forward", "PACS@127.0.0.1:4242")
    kwargs.setdefault("send", Recorder())
    kwargs.setdefault("upscale", Upscale())
    return DicomNode(spool, rules, ae_title="SRNODE", idle=5, retry=30, clock=clock or Clock(), **kwargs)


# ---------------------------------------------------------------------------------------------- rules

MR_THICK = {"modality": "MR", "series_description": "t1_fl2d_sag", "slice_thickness": 4.0, "pixel_spacing": [1.0, 1.0]}


def test_first_matching_rule_wins_then_default_then_skip():
    rules = Rules(
        [
            Rule(name="ct", match={"modality": ["CT", "PT"]}, scale="1,1,2"),
            Rule(name="t1", match={"series_description": "T1", "slice_thickness": (3, 5)}, scale="1,1,3"),
            Rule(name="any mr", match={"modality": "mr"}, scale="1,1,4"),
        ]
    )
    assert rules.select(MR_THICK)[1] == "rule 2 (t1)"  # regex case-insensitive, thickness inside [3, 5]
    assert rules.select({**MR_THICK, "slice_thickness": 5.5})[1] == "rule 3 (any mr)"  # modality case-insensitive
    assert rules.select({**MR_THICK, "slice_thickness": None})[1] == "rule 3 (any mr)"  # no thickness: no fit
    assert rules.select({"modality": "PT"})[1] == "rule 1 (ct)"
    assert rules.select({"modality": "US"}) is None  # skipped
    with_default = Rules(rules.rules, Rule(scale="2"))
    assert with_default.select({"modality": "US"})[1] == "default rule"
    assert rules.select({**MR_THICK, "slice_thickness": 3.0})[1] == "rule 2 (t1)"  # the range is inclusive


@pytest.mark.parametrize(
    "values,expected",
    [
        (MR_THICK, (1, 1, 4)),
        ({"slice_thickness": 4.0, "pixel_spacing": [1.015625, 1.015625]}, (1, 1, 4)),  # 3.94 rounds to 4
        ({"slice_thickness": None, "spacing_between_slices": 3.0, "pixel_spacing": [0.5, 0.5]}, (1, 1, 6)),
        ({"slice_thickness": 0.9, "pixel_spacing": [1.0, 1.0]}, (1, 1, 1)),  # never below 1
        ({"slice_thickness": 100.0, "pixel_spacing": [0.5, 0.5]}, (1, 1, 16)),  # the scale cap
    ],
)
def test_auto_scale_is_thickness_over_pixel_spacing(values, expected):
    assert Rule(scale="auto").scale_for(values) == expected
    assert Rule(scale="2").scale_for(values) == (2, 2, 2)


def test_auto_scale_without_the_header_values_says_why():
    assert "needs SliceThickness" in Rule().scale_for({"modality": "MR"})


@pytest.mark.parametrize(
    "text,problem",
    [
        ("rules:\n  - name: a\n  - name: b\n    method: bicubik\n", "rule 2 (b), field method: "),
        ("rules:\n  - scale: 1,x\n", "rule 1, field scale: "),
        ("rules:\n  - scale: 1,2\n", "rule 1, field scale: '1,2': one factor or three"),
        ("rules:\n  - match: {slice_thickness: [5, 3]}\n", "rule 1, field match.slice_thickness: expected [min, max]"),
        ("rules:\n  - match: {series_description: 't1('}\n", "field match.series_description: not a valid regular"),
        ("rules:\n  - methd: bicubic\n", "rule 1, field methd: Extra inputs are not permitted"),
        ("rules:\n  - forward: nohost\n", "rule 1, field forward: forward 'nohost': expected AE@HOST:PORT"),
        ("rules:\n  - return_port: 70000\n", "rule 1, field return_port"),
        ("rules:\n  - config: nope/nope\n", "rule 1: nope/nope: no such config file"),
        ("default:\n  scale: zero\n", "default rule, field scale"),
        ("rules: [\n", "not valid YAML"),
        ("just a string\n", "a rules file is a mapping"),
    ],
)
def test_bad_rules_file_names_the_file_the_rule_and_the_field(tmp_path, text, problem):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert problem in message, message


def test_bad_rules_file_on_the_command_line_is_one_line(tmp_path, capsys):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: thick\n    scale: -1\n")
    code, _, err = run_cli(capsys, "dicom-node", "--ae-title", "N", "--port", "11112", "--rules", path)
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith(f"geo-med-sr: error: {path}: invalid rules: rule 1 (thick), field scale: ")


def test_the_example_rules_are_valid():
    rules = load_rules(Path(__file__).parents[2] / "configs" / "dicom_node" / "rules.example.yaml")
    assert len(rules.rules) == 3
    assert rules.select(MR_THICK)[0].scale_for(MR_THICK) == (1, 1, 4)


@pytest.mark.slow
def test_a_rule_without_destination_is_refused_at_start(tmp_path):
    with pytest.raises(ConfigError, match="rule 1 has no forward destination"):
        DicomNode(tmp_path / "spool", Rules([Rule()]), forward=None)
    with pytest.raises(ConfigError, match="return_port"):
        DicomNode(tmp_path / "spool", Rules([Rule(forward="sender")]))


@pytest.mark.parametrize("text", ["nohost", "AE@host", "AE@host:0", "AE@host:99999", "@h:1", "A" * 17 + "@h:1"])
def test_bad_peers_are_refused(text):
    with pytest.raises(ConfigError, match="--send"):
        net.parse_peer(text, "--send")


@given(
    ae=st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="\\@"), min_size=1, max_size=16),
    host=st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True),
    port=st.integers(1, 65535),
)
def test_a_peer_round_trips_through_its_text(ae, host, port):
    peer = net.Peer(ae, host, port)
    assert net.parse_peer(str(peer)) == peer


def test_peers_and_dicomweb_urls_parse():
    assert net.parse_peer("ORTHANC@[::1]:4242") == net.Peer("ORTHANC", "::1", 4242)
    url = parse_dicomweb("dicomweb://pacs:8042/dicom-web/studies/1.2.3/series/4.5.6")
    assert (url.root, url.study_uid, url.series_uid) == ("http://pacs:8042/dicom-web", "1.2.3", "4.5.6")
    assert parse_dicomweb("dicomweb+https://h/wado/studies/1/series/2").root == "https://h/wado"
    for bad in ("dicomweb://h/studies/1.2", "dicomweb://h/studies/1/series/x", "http://h/studies/1/series/2"):
        with pytest.raises(ConfigError, match="studies"):
            parse_dicomweb(bad)


# ---------------------------------------------------------------------------------------------- spool


def test_a_series_is_complete_when_the_expected_count_is_reached(tmp_path):
    files = series(tmp_path / "in")
    clock = Clock()
    n = node(tmp_path / "spool", Rules([Rule(scale="1,1,2", method="nearest", expected=6)]), clock)
    for f in files[:5]:
        n.receive(instance(f))
    assert n.complete() == []
    n.receive(instance(files[5]))
    assert n.complete() == [instance(files[0]).series_uid]  # at once: the clock did not move


def test_a_series_is_complete_after_idle_seconds_or_its_header_count(tmp_path):
    files = series(tmp_path / "in")
    clock = Clock()
    n = node(tmp_path / "spool", clock=clock)
    for f in files[:3]:
        n.receive(instance(f))
    clock.now += 4.9
    assert n.complete() == []
    n.receive(instance(files[3]))  # the idle time counts from the last instance
    clock.now += 4.9
    assert n.complete() == []
    clock.now += 0.2
    assert len(n.complete()) == 1
    # ImagesInAcquisition in the header ends the series as soon as it is reached
    more = series(tmp_path / "in2", slices=3)
    for f in more:
        ds = pydicom.dcmread(f)
        ds.ImagesInAcquisition = 3
        ds.save_as(f)
        n.receive(instance(f))
    assert instance(more[0]).series_uid in n.complete()


def test_instances_are_on_disk_before_the_answer_and_a_failed_write_is_refused(tmp_path, monkeypatch):
    files = series(tmp_path / "in")
    n = node(tmp_path / "spool")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))[1])
    port = free_port()
    server = dimse.StoreServer("SRNODE", "127.0.0.1", port, n.receive).start()
    try:
        peer = net.Peer("SRNODE", "127.0.0.1", port)
        assert dimse.send_files(files[:4], peer, "SCANNER") == 4
        uid = instance(files[0]).series_uid
        stored = sorted(n.spool.folder("incoming", uid).glob("*.dcm"))
        assert len(stored) == 4
        tmp, folder = str(n.spool.folder("tmp")), str(n.spool.folder("incoming", uid))
        assert sum(path.startswith(tmp) for path in synced) == 4 + 1  # each instance (and the series JSON)
        assert synced.count(folder) == 4  # each rename into the series folder
        for f in files[:4]:
            sent, kept = (
                pydicom.dcmread(f),
                pydicom.dcmread(n.spool.folder("incoming", uid) / f"{instance(f).sop_uid}.dcm"),
            )
            assert kept.PixelData == sent.PixelData and kept.SOPInstanceUID == sent.SOPInstanceUID
        info = n.spool.info("incoming", uid)
        assert info["calling_ae"] == "SCANNER" and info["peer_host"] == "127.0.0.1"

        def full(fd):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(OutputError, match="status 0xA700"):
            dimse.send_files(files[4:], peer, "SCANNER")
        assert len(list(n.spool.folder("incoming", uid).glob("*.dcm"))) == 4  # the refused one is not there
        assert list(n.spool.folder("tmp").iterdir()) == []  # nor half of it
    finally:
        server.stop()


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_unsafe_uids_are_refused_not_used_as_paths(tmp_path):
    files = series(tmp_path / "in", slices=2)
    ds = pydicom.dcmread(files[0])
    ds.SeriesInstanceUID = "../../etc"
    ds.save_as(files[0])
    with pytest.raises(InputError, match="SeriesInstanceUID missing or not a valid UID"):
        instance(files[0])
    n = node(tmp_path / "spool")
    port = free_port()
    server = dimse.StoreServer("SRNODE", "127.0.0.1", port, n.receive).start()
    try:
        with pytest.raises(OutputError, match="status 0xC000"):
            dimse.send_files(files[:1], net.Peer("SRNODE", "127.0.0.1", port), "SCANNER")
    finally:
        server.stop()
    assert n.spool.incoming() == [] and not (tmp_path / "etc").exists()


def test_restart_resumes_and_nothing_is_processed_twice(tmp_path):
    files = series(tmp_path / "in")
    uid = instance(files[0]).series_uid
    spool, clock = tmp_path / "spool", Clock()
    first = node(spool, clock=clock)
    for f in files[:4]:
        first.receive(instance(f))
    clock.now += 60  # the node is killed; time passes
    (spool / "tmp" / "partial.part").write_bytes(b"half an instance")  # a write the kill interrupted
    upscale, send = Upscale(), Recorder()
    second = node(spool, clock=clock, upscale=upscale, send=send)
    assert not (spool / "tmp" / "partial.part").exists()
    assert second.poll() == []  # the idle time restarts with the node: the sender may still be sending
    for f in files[4:]:
        second.receive(instance(f))
    clock.now += 5
    assert second.poll() == [uid]
    assert upscale.calls == 1
    (out_uids, count, dest, calling) = send.calls[0]
    assert count == 12 and dest == "PACS@127.0.0.1:4242" and calling == "SRNODE"
    done = second.spool.done(uid)
    assert {done["output_series_uid"]} == out_uids and done["instances_in"] == 6 and done["instances_out"] == 12
    assert second.spool.ready() == [] and not (spool / "output" / uid).exists()  # cleaned up
    third = node(spool, clock=clock, upscale=upscale, send=send)
    clock.now += 100
    assert third.poll() == [] and upscale.calls == 1 and len(send.calls) == 1


def test_a_failed_forward_is_recorded_and_retried_without_processing_again(tmp_path):
    files = series(tmp_path / "in")
    uid = instance(files[0]).series_uid
    spool, clock, upscale, send = tmp_path / "spool", Clock(), Upscale(), Recorder(fail=2)
    n = node(spool, clock=clock, upscale=upscale, send=send)
    for f in files:
        n.receive(instance(f))
    clock.now += 5
    assert n.poll() == []
    error = (spool / "failed" / uid / "error.txt").read_text()
    assert "stage: forward" in error and "cannot connect (test)" in error
    assert len(list((spool / "output" / uid).glob("*.dcm"))) == 12
    clock.now += 10
    assert n.poll() == [] and send.fail == 1  # not before --retry seconds
    clock.now += 25
    assert n.poll() == [] and send.fail == 0  # retried, failed again
    restarted = node(spool, clock=clock, upscale=upscale, send=send)
    assert restarted.poll() == [uid]  # a restart retries at once
    assert upscale.calls == 1 and len(send.calls) == 1
    assert not (spool / "failed" / uid).exists() and restarted.spool.done(uid)["forwarded_to"] == "PACS@127.0.0.1:4242"


def test_a_failed_series_keeps_its_instances_and_is_not_retried(tmp_path, caplog):
    files = series(tmp_path / "in", missing=(2,), slices=7)  # a gap in the stack: the reader refuses it
    uid = instance(files[0]).series_uid
    clock, upscale = Clock(), Upscale()
    n = node(tmp_path / "spool", clock=clock, upscale=upscale)
    for f in files:
        n.receive(instance(f))
    clock.now += 5
    with caplog.at_level(logging.ERROR, logger="geo_med_sr.pacs.node"):
        assert n.poll() == []
    error = (tmp_path / "spool" / "failed" / uid / "error.txt").read_text()
    assert "stage: process" in error and "rule 1" in error
    assert any(uid in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)
    assert len(list((tmp_path / "spool" / "ready" / uid).glob("*.dcm"))) == 6  # nothing lost
    clock.now += 100
    assert n.poll() == [] and upscale.calls == 1


def test_no_matching_rule_skips_and_late_instances_are_kept(tmp_path, caplog):
    files = series(tmp_path / "in")
    uid = instance(files[0]).series_uid
    clock, upscale, send = Clock(), Upscale(), Recorder()
    n = node(tmp_path / "spool", Rules([Rule(match={"modality": "CT"})]), clock, upscale=upscale, send=send)
    for f in files[:5]:
        n.receive(instance(f))
    clock.now += 5
    assert n.poll() == [uid]
    assert n.spool.done(uid)["skipped"] == "no rule matches" and upscale.calls == 0 and send.calls == []
    n.receive(instance(files[5]))  # arrives after the series was handled
    clock.now += 5
    with caplog.at_level(logging.WARNING, logger="geo_med_sr.pacs.node"):
        assert n.poll() == []
    assert len(list(n.spool.folder("incoming", uid).glob("*.dcm"))) == 1
    assert any("arrived after it was processed" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------- upscale options


def test_send_and_stow_need_a_dicom_series_output(tmp_path, capsys, oblique_nifti):
    out = tmp_path / "out.nii.gz"
    for option in (["--send", "PACS@127.0.0.1:4242"], ["--stow", "http://127.0.0.1:1/dicom-web"]):
        code, _, err = run_cli(capsys, "upscale", oblique_nifti, out, "--scale", "2", "--method", "nearest", *option)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert err.startswith(f"geo-med-sr: error: {out}: {option[0]} push a DICOM series")
        assert not out.exists()


@pytest.mark.parametrize(
    "argv,problem",
    [
        (["OUT"], "upscale needs INPUT"),
        (["OUT", "--from", "PACS@127.0.0.1:4242"], "needs --series SERIES_UID"),
        (["IN", "OUT", "--from", "PACS@127.0.0.1:4242", "--series", "1.2"], "give either INPUT"),
        (["dicomweb://h:1/x/studies/1.2", "OUT"], "expected dicomweb://HOST:PORT/PATH/studies"),
        (["OUT", "--from", "PACS@nowhere", "--series", "1.2"], "--from 'PACS@nowhere': expected AE@HOST:PORT"),
    ],
)
def test_pacs_input_refusals_are_one_line(tmp_path, capsys, argv, problem):
    argv = [str(tmp_path / a) if a in ("IN", "OUT") else a for a in argv]
    code, _, err = run_cli(capsys, "upscale", *argv, "--scale", "2", "--method", "nearest")
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("geo-med-sr: error: ")
    assert problem in err, err
    assert not (tmp_path / "OUT").exists()


def test_send_to_a_closed_port_says_the_output_was_written(tmp_path, capsys):
    series(tmp_path / "in", slices=3)
    out, port = tmp_path / "sr", free_port()
    argv = [
        "upscale",
        tmp_path / "in",
        out,
        "--scale",
        "1,1,2",
        "--method",
        "nearest",
        "--send",
        f"PACS@127.0.0.1:{port}",
    ]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"PACS@127.0.0.1:{port}: cannot connect" in err and f"the output {out} was written" in err
    assert len(list(out.glob("*.dcm"))) == 6


def test_a_signal_stops_the_node_between_steps_and_a_second_one_at_once():
    """Ctrl-C or SIGTERM sets the node's stop event (no KeyboardInterrupt inside the server's or the logger's
    locks, which once left a stopping node hanging); a second signal interrupts at once; the previous handlers
    come back."""
    import signal
    import threading

    from geo_med_sr.pacs.node import _stop_on_signals

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    for sig in (signal.SIGINT, signal.SIGTERM):
        stop = threading.Event()
        restore = _stop_on_signals(stop)
        try:
            os.kill(os.getpid(), sig)
            assert stop.wait(5)
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), sig)
                stop.wait(5)  # the handler runs in the main thread between two bytecodes
        finally:
            restore()
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_the_node_command_stops_cleanly_on_a_signal(tmp_path, signame):
    import signal
    import subprocess
    import sys

    port = free_port()
    command = [sys.executable, "-m", "geo_med_sr", "dicom-node", "--ae-title", "STOPME", "--port", str(port)]
    command += ["--forward", f"NOBODY@127.0.0.1:{free_port()}", "--spool", str(tmp_path / "spool")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_echo(net.Peer("STOPME", "127.0.0.1", port), timeout=60, alive=lambda: proc.poll() is None)
        proc.send_signal(getattr(signal, signame))
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "DICOM node STOPME stopped" in out and "Traceback" not in out
