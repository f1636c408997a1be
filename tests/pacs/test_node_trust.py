"""Trust on the DICOM node's surfaces (issue 25).

* A ``series_description`` rule is matched by RE2 in linear time: a SeriesDescription that any sender
  controls cannot freeze the node (Python's ``re`` backtracks exponentially on ``(a+)+$`` against
  ``"a" * n + "!"`` while holding the GIL, so no thread of the node, C-ECHO included, could answer).
* Patterns RE2 cannot run (backreferences, lookaround) are refused when the rules are loaded, in one
  line naming the file, the rule and the field.
* ``idle`` and ``retry`` are finite positive seconds (NaN and infinity refused).
* A full disk or a read-only folder, while storing a received instance or writing a series, is one line
  with the system's reason and the file, never pydicom's traceback text; the node keeps running.
* Header values a sender wrote (NaN, infinite or zero spacing) never stop the node.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import resource
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from dicom_fixtures import make_synthetic_series, wait_for_echo
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from orthanc_server import free_port

from geo_med_sr.adapters.dicom.write import save_slice
from geo_med_sr.errors import ConfigError, OutputError
from geo_med_sr.pacs import dimse, net
from geo_med_sr.pacs.node import DicomNode
from geo_med_sr.pacs.rules import Match, Rule, Rules, load_rules

#: a rule whose pattern a backtracking engine runs in 2**n steps on ``"a" * n + "!"``.
HOSTILE_RULES = """\
rules:
  - name: hostile
    match: {series_description: "(a+)+$"}
    scale: 1,1,2
    method: nearest
"""
#: the hostile SeriesDescription's length: Python's ``re`` needs seconds on it (a node frozen that long
#: fails the test), RE2 microseconds; short enough that the old code ends (fails) instead of hanging.
HOSTILE_N = 25
#: the most one C-ECHO may take while the node matches the hostile series.
ECHO_LIMIT_S = 1.0
NO_TRACEBACK = ("Traceback", 'File "', "With tag", "\n")


def series(folder: Path, description: str, slices: int = 2, shape: tuple[int, int] = (10, 8)) -> list[Path]:
    """A small synthetic MR series with ``description`` as SeriesDescription; its files sorted by name."""
    make_synthetic_series(folder, shape=(*shape, slices), spacing=(0.8, 0.9, 2.5), description=description)
    return sorted(folder.glob("*.dcm"))


def series_uid(files: list[Path]) -> str:
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)


def copy_series(src, dst, scale, config, progress=False):
    """The node's ``upscale`` in these tests: the series copied (the rule and its scale are what is checked)."""
    shutil.copytree(src, dst)


class Sent:
    """The node's ``send``: counts the files forwarded."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def __call__(self, files, peer, calling_ae) -> int:
        self.counts.append(len(files))
        return len(files)


# ---------------------------------------------------------------------------------------------- the node frozen


@pytest.mark.slow
def test_a_hostile_series_description_never_freezes_the_node(tmp_path):
    """A real pynetdicom sender C-STOREs a series whose SeriesDescription makes a backtracking engine take
    2**HOSTILE_N steps (seconds) on the rule ``(a+)+$``; every C-ECHO meanwhile is answered within 1 s, the
    hostile series is skipped (no rule matches) and a matching one is handled by the rule."""
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(HOSTILE_RULES)
    hostile = series(tmp_path / "hostile", "a" * HOSTILE_N + "!")
    matching = series(tmp_path / "matching", "A" * HOSTILE_N)
    sent = Sent()
    node = DicomNode(
        tmp_path / "spool",
        load_rules(rules_file),
        ae_title="SRNODE",
        forward=f"PACS@127.0.0.1:{free_port()}",
        idle=0.3,
        retry=30,
        upscale=copy_series,
        send=sent,
    )
    port, stop = free_port(), threading.Event()
    thread = threading.Thread(target=node.run, args=("127.0.0.1", port, stop, 0.02), daemon=True)
    thread.start()
    peer = net.Peer("SRNODE", "127.0.0.1", port)
    uids = (series_uid(hostile), series_uid(matching))
    try:
        wait_for_echo(peer, timeout=10.0, interval=0.02)
        assert dimse.send_files(hostile, peer, "SCANNER") == len(hostile)
        echoes = []
        deadline = time.monotonic() + 20
        while not all(node.spool.done(uid) for uid in uids) and time.monotonic() < deadline:
            if len(echoes) == 3:  # the second series arrives while the first is received, matched, skipped
                assert dimse.send_files(matching, peer, "SCANNER") == len(matching)
            started = time.monotonic()
            dimse.echo(peer, "SCANNER")
            echoes.append(time.monotonic() - started)
        assert len(echoes) >= 4 and max(echoes) < ECHO_LIMIT_S, echoes
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert node.spool.done(uids[0])["skipped"] == "no rule matches"
    done = node.spool.done(uids[1])
    assert done["rule"] == "rule 1 (hostile)" and done["scale"] == [1, 1, 2] and sent.counts == [len(matching)]


#: patterns a backtracking engine runs in exponential time, with what they mean on ``"a" * n + tail``.
CATASTROPHIC = {
    "(a+)+$": lambda text: text.lower().endswith("a"),
    "(a|aa)+b": lambda text: "ab" in text.lower(),
    "(a*)*b": lambda text: "b" in text.lower(),
    "^(a|a?)+$": lambda text: set(text.lower()) <= {"a"},
}


@settings(max_examples=60, deadline=None)
@given(
    pattern=st.sampled_from(sorted(CATASTROPHIC)),
    n=st.integers(0, 64),
    tail=st.sampled_from(["", "!", "b", "B", " a"]),
    upper=st.booleans(),
)
@example(pattern="(a+)+$", n=64, tail="!", upper=False)
def test_catastrophic_patterns_are_matched_in_linear_time(pattern, n, tail, upper):
    """Up to the 64 characters of a SeriesDescription (LO), any catastrophic pattern answers at once and right
    (case-insensitive). The old engine took 2**n steps: it never returned on the explicit example."""
    text = ("A" if upper else "a") * n + tail
    match = Match(series_description=pattern)
    started = time.monotonic()
    fits = match.fits({"series_description": text})
    assert time.monotonic() - started < 0.5
    assert fits == CATASTROPHIC[pattern](text)


# ASCII only: Python's and RE2's Unicode case folding differ on a few letters (Kelvin sign, long s).
TEXT = st.text(st.sampled_from("abcAB1_ -."), max_size=20)
ATOMS = st.sampled_from(["a", "b", "c", "A", "1", ".", "[ab]", "[^a]", r"\d", r"\w", r"\s", "-", r"\."])


def _patterns() -> st.SearchStrategy[str]:
    """Patterns of up to five pieces (an atom or a two-way alternation, with an optional quantifier),
    optionally anchored; no nested quantifier, so that Python's ``re``, the oracle, stays fast."""
    group = st.tuples(ATOMS, ATOMS).map(lambda p: f"(?:{p[0]}|{p[1]})")
    piece = st.tuples(ATOMS | group, st.sampled_from(["", "*", "+", "?", "{1,2}"])).map(
        lambda p: f"({p[0]}){p[1]}" if p[1] else p[0]
    )
    body = st.lists(piece, min_size=1, max_size=5).map("".join)
    return st.tuples(st.sampled_from(["", "^"]), body, st.sampled_from(["", "$"])).map("".join)


@given(pattern=_patterns(), text=TEXT)
def test_rules_match_case_insensitively_as_before(pattern, text):
    """RE2 finds a pattern in a SeriesDescription exactly where Python's ``re`` did (case-insensitive)."""
    expected = re.search(pattern, text, re.IGNORECASE) is not None
    assert Match(series_description=pattern).fits({"series_description": text}) == expected


# ---------------------------------------------------------------------------------------------- refused at load


@pytest.mark.parametrize(
    "pattern,problem",
    [
        (r"(t1)\\1", "invalid escape sequence"),  # a backreference
        ("(?=t1)t", "invalid perl operator"),  # lookahead
        ("(?<!t2)t1", "invalid perl operator"),  # lookbehind
        (r"t1\\Z", "invalid escape sequence"),  # Python's end of text (RE2 spells it \z)
        ("x{2000}", "invalid repetition size"),
        ("a" * 1001, "at most 1000 characters"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_naming_file_rule_and_field(tmp_path, capfd, pattern, problem):
    path = tmp_path / "rules.yaml"
    path.write_text(f'rules:\n  - name: ok\n  - name: thin\n    match: {{series_description: "{pattern}"}}\n')
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid rules: rule 2 (thin), field match.series_description: "), message
    assert problem in message and "\n" not in message, message
    assert capfd.readouterr().err == ""  # RE2's own log line is silenced: the one line is ours


# ---------------------------------------------------------------------------------------------- idle, retry


BAD_SECONDS = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0]) | st.floats(max_value=0.0)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=BAD_SECONDS, option=st.sampled_from(["idle", "retry"]))
def test_idle_and_retry_must_be_finite_positive_seconds(tmp_path, value, option):
    spool = tmp_path / "spool"
    with pytest.raises(ConfigError) as info:
        DicomNode(spool, forward="PACS@127.0.0.1:4242", **{option: value})
    message = str(info.value)
    assert message.startswith(f"--{option} ") and "finite positive" in message and "\n" not in message
    assert not spool.exists()  # refused before any work


# ---------------------------------------------------------------------------------------------- a full disk


@contextlib.contextmanager
def disk_filling_up(path: Path, mode: str) -> Iterator[str]:
    """Writes to ``path`` fail: ``"full"``: every write (a link to /dev/full: ENOSPC, the error raised when
    pydicom closes the file); ``"midway"``: after 8000 bytes of any file (RLIMIT_FSIZE: EFBIG inside
    pydicom's element writer, which re-raises it with the traceback in the text and no errno). Yields the
    system's reason expected in the message."""
    if mode == "full":
        if not os.path.exists("/dev/full"):
            pytest.skip("no /dev/full on this system")
        path.symlink_to("/dev/full")
        yield os.strerror(errno.ENOSPC)
        return
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel's signal kills us
    previous = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8000, previous[1]))
    try:
        yield os.strerror(errno.EFBIG)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous)
        signal.signal(signal.SIGXFSZ, previous_handler)


@pytest.mark.parametrize("mode", ["full", "midway"])
def test_a_failed_slice_write_is_one_line_without_pydicom_traceback(tmp_path, mode):
    """The message is the system's reason and the file (a slice larger than the write buffer: the failure
    happens inside pydicom's element writer)."""
    files = series(tmp_path / "in", "t1", slices=1, shape=(80, 80))
    ds = pydicom.dcmread(files[0])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OutputError) as info, disk_filling_up(out / "IM_0001.dcm", mode) as reason:
        save_slice(ds, out / "IM_0001.dcm")
    message = str(info.value)
    assert message.startswith(f"{out}: cannot write DICOM slice IM_0001.dcm: {reason}; "), message
    assert not any(marker in message for marker in NO_TRACEBACK), message


@pytest.mark.parametrize("mode", ["full", "midway"])
def test_a_failed_write_of_a_retrieved_instance_is_one_line(tmp_path, mode):
    files = series(tmp_path / "in", "t1", slices=1, shape=(80, 80))
    ds = pydicom.dcmread(files[0])
    folder = tmp_path / "got"
    folder.mkdir()
    with pytest.raises(OutputError) as info, disk_filling_up(folder / f".{ds.SOPInstanceUID}.part", mode) as reason:
        net.save_instance(ds, folder)
    message = str(info.value)
    assert message.startswith(f"{folder / ds.SOPInstanceUID}.dcm: cannot be written: {reason}; "), message
    assert not any(marker in message for marker in NO_TRACEBACK), message
    assert list(folder.iterdir()) == []  # nothing left behind


@pytest.mark.parametrize(
    "code,hint", [(errno.ENOSPC, "free some space"), (errno.EROFS, "check that the folder is writable")]
)
def test_a_received_instance_the_spool_cannot_take_is_one_line(tmp_path, monkeypatch, code, hint):
    files = series(tmp_path / "in", "t1", slices=1)
    received = net.instance_of(pydicom.dcmread(files[0]), files[0].read_bytes(), "SCANNER", "127.0.0.1", 1)
    node = DicomNode(tmp_path / "spool", forward="PACS@127.0.0.1:4242")

    def fail(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OutputError) as info:
        node.receive(received)
    target = node.spool.folder("incoming", received.series_uid) / f"{received.sop_uid}.dcm"
    assert str(info.value) == f"{target}: cannot store a received instance: {os.strerror(code)}; {hint}"
    assert list(node.spool.folder("tmp").iterdir()) == []


def test_a_failure_the_full_spool_cannot_record_does_not_stop_the_node(tmp_path, monkeypatch, caplog):
    """The series fails, and the disk is too full for ``failed/<uid>/error.txt``: the node logs one line,
    keeps running, and does not process the series again in a loop."""
    files = series(tmp_path / "in", "t1", slices=2)
    calls = []

    def full_upscale(src, dst, scale, config, progress=False):
        calls.append(dst)
        raise OutputError(f"{dst}: cannot write DICOM slice IM_0001.dcm: No space left on device; free some space")

    clock = [1000.0]
    node = DicomNode(
        tmp_path / "spool",
        Rules([Rule(scale="1,1,2", method="nearest")]),
        forward="PACS@127.0.0.1:4242",
        idle=1,
        upscale=full_upscale,
        send=Sent(),
        clock=lambda: clock[0],
    )
    for f in files:
        node.receive(net.instance_of(pydicom.dcmread(f), f.read_bytes(), "SCANNER", "127.0.0.1", 1))

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(node.spool, "mark_failed", no_space)
    clock[0] += 2
    with caplog.at_level(logging.ERROR, logger="geo_med_sr.pacs.node"):
        assert node.poll() == []
        clock[0] += 100
        assert node.poll() == []
    assert len(calls) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("\n" not in e for e in errors)
    assert "not recorded: No space left on device" in errors[0] and "IM_0001.dcm" in errors[0]


# ---------------------------------------------------------------------------------------------- sender's headers


FLOATS = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -1.0, 1e-320, 1e308])


@given(thickness=FLOATS, between=FLOATS, spacing=st.none() | st.lists(FLOATS, min_size=0, max_size=3))
@example(thickness=math.nan, between=None, spacing=[1.0, 1.0])
@example(thickness=math.inf, between=None, spacing=[1.0, 1.0])
@example(thickness=3.0, between=None, spacing=[0.0, 0.0])
@example(thickness=1e308, between=None, spacing=[1e-10, 1e-10])
def test_auto_scale_of_any_header_is_a_scale_or_a_reason(thickness, between, spacing):
    """Whatever a sender wrote in SliceThickness, SpacingBetweenSlices and PixelSpacing, ``scale: auto``
    gives whole factors in [1, 16] or says why not: never an exception that would stop the node."""
    header = {"slice_thickness": thickness, "spacing_between_slices": between, "pixel_spacing": spacing}
    scale = Rule(scale="auto").scale_for(header)
    if not isinstance(scale, str):
        assert scale[:2] == (1, 1) and isinstance(scale[2], int) and 1 <= scale[2] <= 16
    fits = Match(slice_thickness=(1, 5)).fits(header)
    assert fits == (thickness is not None and math.isfinite(thickness) and 1 <= thickness <= 5)
