"""The DICOM node's guided rules (issue 27, item 4): a rule names a guide series of the same study; the node
waits for it, runs guided ``self`` with it, or falls back to the rule's single-contrast method after ``wait``.

Small synthetic subject: a thick "T2" target (16x16x4 at 1x1x4 mm) and a "T1" guide (16x16x16 at 1 mm) of the
same study and world space; guided ``self`` trains 5 steps (the rule's ``config:``). The node is driven
in-process with a hand-moved clock, one test receives over pynetdicom on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_fixtures import make_synthetic_series
from orthanc_server import free_port

from geo_med_sr import io
from geo_med_sr.errors import ConfigError
from geo_med_sr.pacs import dimse, net
from geo_med_sr.pacs.node import DicomNode
from geo_med_sr.pacs.rules import Guide, Rule, Rules, load_rules
from geo_med_sr.upscale.pipeline import super_resolve

STUDY = "1.2.826.0.1.3680043.8.498.27"
OTHER_STUDY = "1.2.826.0.1.3680043.8.498.28"
EXAMPLE = Path(__file__).parents[2] / "configs" / "dicom_node" / "rules.example.yaml"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """The node's ``send``: records the series UIDs sent; fails ``fail`` times first."""

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.calls = fail, []

    def __call__(self, files, peer, calling_ae):
        if self.fail:
            self.fail -= 1
            raise OSError("cannot connect (test)")
        self.calls.append({pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID for f in files})
        return len(files)


class Upscale:
    """The node's ``upscale``: the real super_resolve, its keyword arguments recorded."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, *args, **kwargs):
        self.calls.append(kwargs)
        return super_resolve(*args, **kwargs)


def phantom(shape=(16, 16, 16)) -> np.ndarray:
    """A smooth positive volume of blobs (float)."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    out = np.full(shape, 30.0)
    for _ in range(8):
        centre, radius = rng.uniform(3, 13, 3), rng.uniform(2.0, 5.0)
        out += rng.uniform(20, 80) * (np.linalg.norm(grid - centre[:, None, None, None], axis=0) < radius)
    return out


def target_series(folder: Path, study: str = STUDY) -> list[Path]:
    """The thick T2 target: 16x16x4 at 1x1x4 mm (the phantom block-averaged along the slices)."""
    thick = phantom().reshape(16, 16, 4, 4).mean(axis=3)
    make_synthetic_series(
        folder,
        shape=(16, 16, 4),
        spacing=(1.0, 1.0, 4.0),
        values=thick.round().astype("uint16"),
        study_uid=study,
        description="T2 tra thick",
    )
    return sorted(folder.glob("*.dcm"))


def guide_series(
    folder: Path, study: str = STUDY, description: str = "T1 MPRAGE 3D", shift_mm: float = 0.0
) -> list[Path]:
    """The 1 mm T1 guide of the same world space (slice centres 1.5 mm before the first thick slice's),
    moved ``shift_mm`` along x (100: it covers none of the target)."""
    make_synthetic_series(
        folder,
        shape=(16, 16, 16),
        spacing=(1.0, 1.0, 1.0),
        origin=(-30.5 + shift_mm, 20.25, 15.0 - 1.5),
        values=(250.0 - phantom()).round().astype("uint16"),
        study_uid=study,
        description=description,
    )
    return sorted(folder.glob("*.dcm"))


def instance(path: Path) -> net.Instance:
    """What the C-STORE server hands the node for the file ``path``."""
    return net.instance_of(pydicom.dcmread(path), path.read_bytes(), "SCANNER", "127.0.0.1", 11112)


def uid_of(files: list[Path]) -> str:
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)


def guided_rules(tmp_path: Path, **guide) -> Rules:
    """One guided rule for thick T2 (self, 5 steps from its config file); the rest is skipped."""
    config = tmp_path / "steps.yaml"
    config.write_text("model: {steps: 5}\n")
    guide = {"series_description": "T1|MPRAGE", **guide}
    rule = Rule(
        name="guided t2",
        match={"modality": "MR", "series_description": "T2", "slice_thickness": (3, 10)},
        scale="auto",
        method="self",
        config=str(config),
        guide=guide,
    )
    return Rules([rule])


def make_node(spool: Path, rules: Rules, clock: Clock, **kwargs) -> DicomNode:
    kwargs.setdefault("send", Recorder())
    kwargs.setdefault("upscale", Upscale())
    return DicomNode(
        spool,
        rules,
        ae_title="SRNODE",
        forward="PACS@127.0.0.1:4242",
        idle=5,
        retry=30,
        clock=clock,
        wall_clock=clock,
        **kwargs,
    )


def receive_all(node: DicomNode, files: list[Path]) -> None:
    for f in files:
        node.receive(instance(f))


# ---------------------------------------------------------------------------------------------- rules


def test_rules_with_a_guide_load_with_their_defaults(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - name: thick T2 with the T1w as guide\n"
        "    match: {modality: MR, series_description: 'T2|FLAIR', slice_thickness: [3, 10]}\n"
        "    scale: auto\n"
        "    method: self\n"
        "    guide: {series_description: 'T1|MPRAGE', wait: 120, fallback: bspline, registered: true}\n"
        "  - name: defaults\n"
        "    scale: 1,1,4\n"
        "    guide: {series_description: T1}\n"
    )
    first, second = load_rules(path).rules
    assert first.guide == Guide(series_description="T1|MPRAGE", wait=120, fallback="bspline", registered=True)
    assert (second.guide.wait, second.guide.fallback, second.guide.max_slice_thickness) == (300.0, None, 1.5)
    assert second.guide.registered is False


def test_the_example_guided_rule_is_valid_once_uncommented(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(EXAMPLE.read_text().replace("\n  # - name:", "\n  - name:").replace("\n  #   ", "\n    "))
    rules = load_rules(path)
    assert len(rules.rules) == 4 and rules.rules[0].guide.fallback == "bspline-ibp"
    t2 = {"modality": "MR", "series_description": "T2 tra", "slice_thickness": 4.0, "pixel_spacing": [1.0, 1.0]}
    assert rules.select(t2)[1].startswith("rule 1 (thick T2 / FLAIR")


@pytest.mark.parametrize(
    "guide,problem",
    [
        ("{series_description: 'T1('}", "field guide.series_description: not a valid regular expression"),
        ("{series_description: T1, wait: -1}", "field guide.wait: Input should be greater than or equal to 0"),
        ("{series_description: T1, wait: 86401}", "field guide.wait: Input should be less than or equal to 86400"),
        ("{series_description: T1, wait: .nan}", "field guide.wait: "),
        ("{series_description: T1, wiat: 3}", "field guide.wiat: Extra inputs are not permitted"),
        ("{series_description: T1, fallback: bspleen}", "field guide.fallback: unknown method 'bspleen'"),
        ("{series_description: T1, max_slice_thickness: 0}", "field guide.max_slice_thickness: Input should be"),
        ("{wait: 3}", "field guide.series_description: Field required"),
        ("T1", "field guide: Input should be a valid dictionary"),
    ],
)
def test_bad_guide_blocks_are_refused_naming_the_rule_and_the_field(tmp_path, guide, problem):
    path = tmp_path / "rules.yaml"
    path.write_text(f"rules:\n  - name: ok\n  - name: guided\n    guide: {guide}\n")
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid rules: rule 2 (guided), ") and "\n" not in message
    assert problem in message, message


def test_a_guided_rule_needs_one_thick_axis(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: iso\n    scale: 2\n    guide: {series_description: T1}\n")
    with pytest.raises(ConfigError, match=r"rule 1 \(iso\): scale '2': a guide restores one thick axis"):
        load_rules(path)


def test_a_guide_is_thin_and_named_by_its_description():
    guide = Guide(series_description="t1|mprage")
    assert guide.fits({"series_description": "T1 MPRAGE", "slice_thickness": 1.0})
    assert guide.fits({"series_description": "sag MPRAGE", "slice_thickness": None, "spacing_between_slices": 1.2})
    assert not guide.fits({"series_description": "T1 tse", "slice_thickness": 4.0})  # a thick series is no guide
    assert not guide.fits({"series_description": "T1 MPRAGE"})  # no thickness known
    assert not guide.fits({"series_description": "FLAIR", "slice_thickness": 1.0})


# ---------------------------------------------------------------------------------------------- the node


@pytest.mark.slow
def test_a_guide_sent_first_over_the_network_is_used_and_kept_until_the_target_is_handled(tmp_path):
    target, guide = target_series(tmp_path / "t2"), guide_series(tmp_path / "t1")
    target_uid, guide_uid = uid_of(target), uid_of(guide)
    clock, upscale, send = Clock(), Upscale(), Recorder()
    node = make_node(
        tmp_path / "spool", guided_rules(tmp_path, wait=30, registered=True), clock, upscale=upscale, send=send
    )
    port = free_port()
    server = dimse.StoreServer("SRNODE", "127.0.0.1", port, node.receive).start()
    try:
        peer = net.Peer("SRNODE", "127.0.0.1", port)
        assert dimse.send_files(guide, peer, "SCANNER") == 16
        clock.now += 5
        assert node.poll() == [guide_uid]  # the guide matches no rule: skipped, but kept as a guide
        assert node.spool.done(guide_uid)["skipped"] == "no rule matches"
        assert node.spool.count(node.spool.folder("ready", guide_uid)) == 16
        clock.now += 20  # within the guide's 30 s
        assert dimse.send_files(target, peer, "SCANNER") == 4
    finally:
        server.stop()
    clock.now += 5
    assert node.poll() == [target_uid]
    assert upscale.calls[0]["guide"] == node.spool.folder("ready", guide_uid)
    assert upscale.calls[0]["guide_registered"] is True
    done = node.spool.done(target_uid)
    assert done["guide"] == guide_uid and "guide_fallback" not in done and done["method"] == "self"
    assert send.calls == [{done["output_series_uid"]}]
    # the guide is removed once no target of its study waits and its 30 s are over
    assert node.spool.folder("ready", guide_uid).is_dir()
    clock.now += 30
    assert node.poll() == [] and not node.spool.folder("ready", guide_uid).exists()
    assert node.spool.ready() == [] and list(node.spool.folder("output").iterdir()) == []


@pytest.mark.slow
def test_a_guide_arriving_within_the_wait_is_used_and_other_series_go_on_meanwhile(tmp_path):
    target, guide = target_series(tmp_path / "t2"), guide_series(tmp_path / "t1")
    make_synthetic_series(tmp_path / "other", shape=(8, 8, 3), spacing=(1, 1, 1), description="localizer")
    other = sorted((tmp_path / "other").glob("*.dcm"))
    target_uid, guide_uid, other_uid = uid_of(target), uid_of(guide), uid_of(other)
    clock = Clock()
    spool = tmp_path / "spool"
    node = make_node(spool, guided_rules(tmp_path, wait=60), clock, keep=True)
    receive_all(node, target)
    clock.now += 5
    assert node.poll() == []  # complete, waits for its guide: not processed, not failed
    assert node.spool.ready() == [target_uid] and node.spool.done(target_uid) is None
    assert not (spool / "failed" / target_uid).exists() and not (spool / "output" / target_uid).exists()
    receive_all(node, other)
    clock.now += 5
    assert node.poll() == [other_uid]  # another series is handled while the target waits
    receive_all(node, guide)
    clock.now += 5
    assert sorted(node.poll()) == sorted([guide_uid, target_uid])  # the guide complete: skipped, and it guides
    assert node.spool.done(guide_uid)["skipped"] == "no rule matches"
    done = node.spool.done(target_uid)
    assert done["guide"] == guide_uid and done["rule"] == "rule 1 (guided t2)"
    provenance = io.read_provenance(spool / "output" / target_uid)
    assert provenance["method"] == "self" and provenance["guided"] is True
    assert Path(provenance["guide"]["path"]).name == guide_uid
    assert provenance["guide"].get("used", True) is not False
    assert provenance["guide"]["registration"]["converged"] is True  # registered onto the target (no `registered`)
    assert io.read(spool / "output" / target_uid).spatial_shape == (16, 16, 16)


def test_a_target_alone_falls_back_after_the_wait_and_a_retried_forward_still_says_so(tmp_path):
    target = target_series(tmp_path / "t2")
    target_uid = uid_of(target)
    clock, upscale, spool = Clock(), Upscale(), tmp_path / "spool"
    rules = guided_rules(tmp_path, wait=1, fallback="bspline")
    node = make_node(spool, rules, clock, upscale=upscale, send=Recorder(fail=1))
    receive_all(node, target)
    clock.now += 5
    assert node.poll() == [] and upscale.calls == []  # waits
    clock.now += 0.5
    assert node.poll() == [] and upscale.calls == []
    clock.now += 0.5
    assert node.poll() == []  # processed with the fallback; the forward failed
    assert len(upscale.calls) == 1 and "guide" not in upscale.calls[0]
    provenance = io.read_provenance(spool / "output" / target_uid)
    assert provenance["method"] == "bspline" and "guide" not in provenance
    restarted = make_node(spool, rules, clock, upscale=upscale)  # a restart retries the forward at once
    assert restarted.poll() == [target_uid] and len(upscale.calls) == 1
    done = restarted.spool.done(target_uid)
    assert done["guide"] is None and done["guide_fallback"] == "no guide series within 1 s"
    assert done["method"] == "bspline"
    assert not (spool / "output" / f"{target_uid}.json").exists()


def test_a_guide_of_another_study_or_a_thick_one_is_not_used(tmp_path):
    target = target_series(tmp_path / "t2")
    foreign = guide_series(tmp_path / "t1_other", study=OTHER_STUDY)
    make_synthetic_series(
        tmp_path / "t1_thick", shape=(16, 16, 4), spacing=(1, 1, 4), study_uid=STUDY, description="T1 tse thick"
    )
    thick = sorted((tmp_path / "t1_thick").glob("*.dcm"))
    target_uid, foreign_uid = uid_of(target), uid_of(foreign)
    clock, upscale = Clock(), Upscale()
    node = make_node(tmp_path / "spool", guided_rules(tmp_path, wait=10, fallback="bspline"), clock, upscale=upscale)
    receive_all(node, foreign)
    receive_all(node, thick)
    receive_all(node, target)
    clock.now += 5
    assert sorted(node.poll()) == sorted([foreign_uid, uid_of(thick)])  # both skipped (no rule matches)
    # the thick T1 is no guide (removed); the foreign T1 is kept for a target of its own study
    assert node.spool.ready() == sorted([target_uid, foreign_uid])
    clock.now += 9
    assert node.poll() == [] and upscale.calls == []
    clock.now += 1
    assert node.poll() == [target_uid]
    assert "guide" not in upscale.calls[0]
    done = node.spool.done(target_uid)
    assert done["guide"] is None and done["guide_fallback"] == "no guide series within 10 s"


def test_a_restarted_node_goes_on_with_the_same_wait(tmp_path):
    """The wait of a target for its guide outlives a restart (``ready/<uid>.wait.json``): a node restarted 20 s
    into a 30 s wait falls back 10 s later, not 30 s after the restart; the file goes with the series."""
    target = target_series(tmp_path / "t2")
    target_uid = uid_of(target)
    clock, upscale, spool = Clock(), Upscale(), tmp_path / "spool"
    rules = guided_rules(tmp_path, wait=30, fallback="bspline")
    node = make_node(spool, rules, clock, upscale=upscale)
    receive_all(node, target)
    clock.now += 5
    assert node.poll() == [] and (spool / "ready" / f"{target_uid}.wait.json").is_file()
    clock.now += 20
    restarted = make_node(spool, rules, clock, upscale=upscale)
    assert restarted.poll() == [] and upscale.calls == []  # 20 s of 30 waited
    clock.now += 11
    assert restarted.poll() == [target_uid] and len(upscale.calls) == 1 and "guide" not in upscale.calls[0]
    assert restarted.spool.done(target_uid)["guide_fallback"] == "no guide series within 30 s"
    assert not (spool / "ready" / f"{target_uid}.wait.json").exists()


def test_a_guided_run_that_refuses_falls_back_and_says_why(tmp_path):
    """A guide that covers none of the target (moved 100 mm away, stated registered) makes the guided run refuse
    before any work: the node then runs the fallback without a guide and the done marker says why."""
    target, guide = target_series(tmp_path / "t2"), guide_series(tmp_path / "t1", shift_mm=100.0)
    target_uid, guide_uid = uid_of(target), uid_of(guide)
    clock, upscale, spool = Clock(), Upscale(), tmp_path / "spool"
    rules = guided_rules(tmp_path, wait=30, registered=True, fallback="bspline")
    node = make_node(spool, rules, clock, upscale=upscale, keep=True)
    receive_all(node, guide)
    receive_all(node, target)
    clock.now += 5
    assert sorted(node.poll()) == sorted([guide_uid, target_uid])
    assert [("guide" in call) for call in upscale.calls] == [True, False]
    done = node.spool.done(target_uid)
    assert done["guide"] is None and done["method"] == "bspline"
    assert done["guide_fallback"].startswith("the guided run refused: ") and "%" in done["guide_fallback"]
    assert node.spool.failed_stage(target_uid) is None
    provenance = io.read_provenance(spool / "output" / target_uid)
    assert provenance["method"] == "bspline" and "guide" not in provenance
