"""A DICOM node: receive series (C-STORE), super-resolve each complete one by rule, forward the result.

The node is a PACS modality like any other: the PACS (or a scanner) sends it series, it answers
every C-STORE only once the instance is on disk, waits until a series is complete, chooses a rule
(modality, SeriesDescription, slice thickness -> scale, method, destination), runs
:func:`geo_med_sr.super_resolve` into a new DICOM series of the same study and C-STOREs that to
the destination. All state lives in the spool folder, so a killed node resumes where it stopped.

Spool layout (``SPOOL/``):

* ``tmp/``: instances being written (write, fsync, rename); emptied at start (never acknowledged).
* ``incoming/<SeriesUID>/<SOPInstanceUID>.dcm`` and ``incoming/<SeriesUID>.json`` (the sender
  and header values, written before the first instance): series being received.
* ``ready/<SeriesUID>/`` (+ ``.json``): a complete series, moved there in one rename (instances
  arriving later start a new ``incoming/`` folder, never change the series being processed).
* ``output/<SeriesUID>/``: the super-resolved series (written atomically by the pipeline), and
  ``output/<SeriesUID>.json``: how it was made (rule, method, the guide series or why none), written
  before processing so that a forward retried after a restart still records it.
* ``done/<SeriesUID>.json``: the done marker (output SeriesInstanceUID, counts, destination);
  a series with a marker is never processed again. ``ready/`` and ``output/`` are then removed
  (kept with ``keep=True``).
* ``failed/<SeriesUID>/error.txt``: the last failure (``stage: process`` or ``stage: forward``,
  the one-line error). A failed forward is retried every ``retry`` seconds and at start; a failed
  processing is not retried until the user deletes ``failed/<SeriesUID>/``. Instances are never
  deleted on a failure.

A series is complete when no instance arrived for ``idle`` seconds, or as soon as it holds the
expected number of instances (the rule's ``expected``, else ImagesInAcquisition / NumberOfSlices of
its header). After a restart the idle time of a series found in ``incoming/`` counts from the start.

Rules (YAML, :mod:`geo_med_sr.pacs.rules`; see ``configs/dicom_node/rules.example.yaml``): the first rule whose
``match`` fits the series is used; without a match, ``default`` if given, else the series is skipped
(logged, marked done with the reason).

Guided MRI (a rule with ``guide:``, :class:`~geo_med_sr.pacs.rules.Guide`): a complete target series
is processed with a guide, a complete series in ``ready/`` of the same StudyInstanceUID whose
SeriesDescription matches ``guide.series_description`` and whose slices are at most
``guide.max_slice_thickness`` mm (the thinnest when several fit), read only. Without one the target
waits in ``ready/`` (neither processed nor failed; the other series go on) until a guide is complete
or ``guide.wait`` seconds have passed since the target began waiting (kept in ``ready/<uid>.wait.json``:
a restarted node goes on with the same wait), then runs ``guide.fallback`` without a guide; a guided run
that refuses (a registration that fails, a guide that misses the anatomy...) falls back the same way. The
done marker records ``guide`` (the guide's SeriesInstanceUID) or ``guide: null`` and ``guide_fallback``
(why). A series that could be a
guide of some rule is kept in ``ready/`` after its own handling (even without ``keep``) while a target
of its study waits in ``ready/``, and for the longest ``wait`` of those rules after it was complete,
so that a target arriving after its guide finds it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from geo_med_sr.errors import ConfigError, GeoMedSRError
from geo_med_sr.pacs.rules import Rule, Rules, slice_thickness

log = logging.getLogger("geo_med_sr.pacs.node")

#: default seconds without a new instance after which a series is complete.
DEFAULT_IDLE_S = 10.0
#: default seconds between retries of a failed forward.
DEFAULT_RETRY_S = 60.0
#: the spool's sub-folders.
SPOOL_FOLDERS = ("tmp", "incoming", "ready", "output", "done", "failed")
#: ``ready/<uid>`` + this: when a target began waiting for its guide (survives a restart).
WAIT_SUFFIX = ".wait.json"


# ---------------------------------------------------------------------------------------------- spool


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(folder: Path, data: bytes) -> Path:
    """A new ``*.part`` file in ``folder`` holding ``data``, fsynced (removed again if that fails)."""
    fd, name = tempfile.mkstemp(dir=folder, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _write_durably(path: Path, data: bytes, tmp_dir: Path) -> None:
    """Write ``data`` to ``path`` so that it is on disk when this returns: temp file, fsync, rename, fsync folder."""
    tmp = _write_synced(tmp_dir, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class Spool:
    """The node's folder on disk (layout in the module docstring); thread-safe for ``store``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        for name in SPOOL_FOLDERS:
            (self.root / name).mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    def folder(self, kind: str, uid: str = "") -> Path:
        """``SPOOL/<kind>/<uid>`` (``kind`` one of :data:`SPOOL_FOLDERS`)."""
        return self.root / kind / uid if uid else self.root / kind

    def clean_tmp(self) -> int:
        """Remove partial writes left by a killed node (never acknowledged); returns how many."""
        removed = 0
        for entry in self.folder("tmp").iterdir():
            if entry.is_file():
                entry.unlink()
                removed += 1
        return removed

    def write_tmp(self, data: bytes) -> Path:
        """Write ``data`` to a new file in ``tmp/`` and fsync it; returns the file (see :meth:`commit`)."""
        return _write_synced(self.folder("tmp"), data)

    def commit(self, tmp: Path, instance: Any) -> Path:
        """Move the fsynced ``tmp`` of ``instance`` to ``incoming/<series>/<sop>.dcm``; returns that file.

        The series' JSON (sender, header values) is written before its first instance; the rename
        and the folder are fsynced, so the instance is on disk when this returns (a repeated
        SOPInstanceUID replaces the earlier copy). Call with :attr:`lock` held.
        """
        uid = instance.series_uid
        try:
            folder = self.folder("incoming", uid)
            info = self.folder("incoming", f"{uid}.json")
            if not info.exists():
                _write_durably(info, json.dumps(instance.summary(), indent=1).encode(), self.folder("tmp"))
            if not folder.is_dir():
                folder.mkdir()
                _fsync_dir(folder.parent)
            target = folder / f"{instance.sop_uid}.dcm"
            os.replace(tmp, target)
            _fsync_dir(folder)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target

    def store(self, instance: Any) -> Path:
        """Write one received :class:`~geo_med_sr.pacs.net.Instance` durably into ``incoming/``.

        Raises:
            OutputError: the disk could not take it (the C-STORE is then refused), see :meth:`storing`.
        """
        with self.storing(instance):
            tmp = self.write_tmp(instance.data)
            with self.lock:
                return self.commit(tmp, instance)

    @contextlib.contextmanager
    def storing(self, instance: Any) -> Iterator[None]:
        """Turn an ``OSError`` met while storing ``instance`` (disk full, read-only spool...) into one line.

        Raises:
            OutputError: ``"<spool>/incoming/<series>/<sop>.dcm: cannot store a received instance:
                <strerror>; <what to do>"`` (the cause chained, never a traceback in the text).
        """
        from geo_med_sr.pacs.net import storage_error

        try:
            yield
        except OSError as exc:
            target = self.folder("incoming", instance.series_uid) / f"{instance.sop_uid}.dcm"
            raise storage_error(target, exc, "cannot store a received instance") from exc

    def incoming(self) -> list[str]:
        """SeriesInstanceUIDs being received."""
        return sorted(p.name for p in self.folder("incoming").iterdir() if p.is_dir())

    def ready(self) -> list[str]:
        """SeriesInstanceUIDs of complete series waiting to be processed or forwarded."""
        return sorted(p.name for p in self.folder("ready").iterdir() if p.is_dir())

    @staticmethod
    def count(folder: Path) -> int:
        """The instances (``*.dcm``) in a series folder."""
        return sum(1 for _ in folder.glob("*.dcm")) if folder.is_dir() else 0

    def info(self, kind: str, uid: str) -> dict[str, Any]:
        """The series JSON of ``kind`` (``incoming``/``ready``), rebuilt from an instance if it is missing."""
        path = self.folder(kind, f"{uid}.json")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            from geo_med_sr.pacs.net import read_instance

            first = next(iter(sorted(self.folder(kind, uid).glob("*.dcm"))), None)
            return {} if first is None else read_instance(first).summary()

    def move_to_ready(self, uid: str) -> int:
        """Move ``incoming/<uid>`` (and its JSON) to ``ready/`` in one rename (merged into an existing
        ``ready/<uid>``); returns the instances now ready."""
        with self.lock:
            src, dst = self.folder("incoming", uid), self.folder("ready", uid)
            src_info, dst_info = self.folder("incoming", f"{uid}.json"), self.folder("ready", f"{uid}.json")
            if dst.is_dir():
                for file in src.glob("*.dcm"):
                    os.replace(file, dst / file.name)
                shutil.rmtree(src, ignore_errors=True)
            else:
                os.replace(src, dst)
            if src_info.exists():
                os.replace(src_info, dst_info)
            _fsync_dir(dst.parent)
        return self.count(dst)

    def done(self, uid: str) -> dict[str, Any] | None:
        """The done marker of ``uid``, or None."""
        try:
            return json.loads(self.folder("done", f"{uid}.json").read_text())
        except (OSError, ValueError):
            return None

    def mark_done(self, uid: str, record: dict[str, Any]) -> None:
        """Write the done marker durably, then clear the failure record."""
        record = {"series": uid, "time": datetime.datetime.now().isoformat(timespec="seconds"), **record}
        _write_durably(self.folder("done", f"{uid}.json"), json.dumps(record, indent=1).encode(), self.folder("tmp"))
        shutil.rmtree(self.folder("failed", uid), ignore_errors=True)

    def mark_failed(self, uid: str, stage: str, message: str) -> Path:
        """Write ``failed/<uid>/error.txt`` (stage, one-line error, time); returns it."""
        folder = self.folder("failed", uid)
        folder.mkdir(exist_ok=True)
        when = datetime.datetime.now().isoformat(timespec="seconds")
        text = f"series: {uid}\nstage: {stage}\ntime: {when}\nerror: {' '.join(message.split())}\n"
        path = folder / "error.txt"
        _write_durably(path, text.encode(), self.folder("tmp"))
        return path

    def failed_stage(self, uid: str) -> str | None:
        """``"process"``/``"forward"`` when ``uid`` has a failure record, else None."""
        try:
            text = self.folder("failed", uid).joinpath("error.txt").read_text()
        except OSError:
            return None
        match = re.search(r"^stage: (\w+)$", text, re.MULTILINE)
        return match[1] if match else "process"

    def remove(self, uid: str) -> None:
        """Remove ``ready/<uid>`` and ``output/<uid>`` (and their JSON; after the done marker)."""
        for path in (self.folder("ready", uid), self.folder("output", uid)):
            shutil.rmtree(path, ignore_errors=True)
        self.folder("ready", f"{uid}.json").unlink(missing_ok=True)
        self.folder("ready", f"{uid}{WAIT_SUFFIX}").unlink(missing_ok=True)
        self.folder("output", f"{uid}.json").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- node


def _seconds(value: float, option: str) -> float:
    """``value`` as a finite positive number of seconds.

    Raises:
        ConfigError: naming ``option`` (NaN, infinite, zero, negative or not a number).
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"{option} {value!r}: expected a finite positive number of seconds, e.g. 10")
    return seconds


def _one_line(exc: BaseException) -> str:
    """The one-line text of ``exc`` for a log line and ``error.txt``: our errors' message; for others their
    type and the first line of their text (never a traceback some library embedded in it)."""
    if isinstance(exc, GeoMedSRError):
        return " ".join(str(exc).split())
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__


def _guide_note(made: dict[str, Any]) -> str:
    """``", guide <uid>"`` / ``", no guide (why)"`` for a log line; empty for a rule without a guide."""
    if made.get("guide"):
        return f", guide {made['guide']}"
    return f", no guide ({made['guide_fallback']})" if "guide_fallback" in made else ""


def _output_series_uid(folder: Path) -> str:
    from geo_med_sr.pacs.net import read_instance

    first = next(iter(sorted(folder.glob("*.dcm"))))
    return read_instance(first).series_uid


class DicomNode:
    """The node's logic: receive into the spool, detect complete series, process and forward them.

    Args:
        spool: the spool folder (created).
        rules: the rules (None: one rule ``scale: auto`` with the default method).
        ae_title: our AE title (called by senders, calling when forwarding).
        forward: ``AE@HOST:PORT`` for rules without ``forward``.
        return_port: the port of ``forward: sender`` for rules without ``return_port``.
        idle: seconds without an instance after which a series is complete.
        retry: seconds between retries of a failed forward.
        keep: keep ``ready/`` and ``output/`` of done series.
        upscale: :func:`geo_med_sr.super_resolve` (replaceable in tests).
        send: :func:`geo_med_sr.pacs.dimse.send_files` (replaceable in tests).
        clock: monotonic seconds (replaceable in tests).
        wall_clock: seconds since the epoch, for a guide's wait that outlives a restart (replaceable in tests).

    Raises:
        ConfigError: ``idle`` or ``retry`` is not a finite positive number (NaN, infinite, zero...),
            a rule has no destination (no ``forward`` and no ``forward`` argument), or
            ``forward: sender`` without a return port.
    """

    def __init__(
        self,
        spool: str | os.PathLike,
        rules: Rules | None = None,
        *,
        ae_title: str = "GEO_MED_SR",
        forward: str | None = None,
        return_port: int | None = None,
        idle: float = DEFAULT_IDLE_S,
        retry: float = DEFAULT_RETRY_S,
        keep: bool = False,
        upscale: Callable[..., Any] | None = None,
        send: Callable[..., int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        from geo_med_sr.pacs import dimse, net

        self.ae_title = net.check_ae_title(ae_title)
        self.forward = net.parse_peer(forward, "--forward") if forward else None
        self.return_port = return_port
        self.rules = rules if rules is not None else Rules(default=Rule(name="auto"))
        self.idle, self.retry, self.keep = _seconds(idle, "--idle"), _seconds(retry, "--retry"), keep
        self._upscale, self._send, self.clock = upscale, send or dimse.send_files, clock
        self.wall_clock = wall_clock
        for rule, label in self.rules.all():
            if rule.forward is None and self.forward is None:
                raise ConfigError(f"{label} has no forward destination: give --forward AE@HOST:PORT or forward: in it")
            if rule.forward == "sender" and rule.return_port is None and return_port is None:
                raise ConfigError(f"{label} forwards to the sender: give return_port: in it or --return-port")
        self.spool = Spool(spool)
        self._last: dict[str, float] = {}
        self._sops: dict[str, set[str]] = {}
        self._retry_at: dict[str, float] = {}
        self._warned: set[str] = set()
        self._unrecorded: dict[str, str] = {}  # uid -> stage of a failure the spool could not record
        self._ready_at: dict[str, float] = {}  # uid -> clock when the series was complete (or found at start)
        self._waiting: set[str] = set()  # targets that logged that they wait for a guide
        self._wait_from: dict[str, float] = {}  # uid -> wall clock when it began waiting (ready/<uid>.wait.json)
        self.resume()

    # -- receiving (pynetdicom's association threads)

    def receive(self, instance: Any) -> None:
        """Store one instance durably (the C-STORE is answered after this returns) and note its arrival.

        Runs in the association's thread: it only writes and takes the spool lock for a rename,
        never matches a rule (that is :meth:`poll`'s work, on the main thread).

        Raises:
            OutputError: the spool could not take it (disk full, read-only...), one line with the
                system's reason and the file; the C-STORE is then refused (0xA700).
        """
        with self.spool.storing(instance):
            tmp = self.spool.write_tmp(instance.data)
            with self.spool.lock:
                self.spool.commit(tmp, instance)
                uid = instance.series_uid
                self._last[uid] = self.clock()
                self._sops.setdefault(uid, set()).add(instance.sop_uid)

    # -- state

    def resume(self) -> None:
        """Pick up the spool after a start: partial writes removed, series in ``incoming/`` wait a full
        idle time from now, series in ``ready/`` are processed or forwarded at the next :meth:`poll`."""
        removed = self.spool.clean_tmp()
        if removed:
            log.info("removed %d partial write(s) of a previous run (never acknowledged)", removed)
        now = self.clock()
        for uid in self.spool.incoming():
            self._last[uid] = now
            self._sops[uid] = {p.stem for p in self.spool.folder("incoming", uid).glob("*.dcm")}
            log.info("resuming series %s: %d instance(s) received before the restart", uid, len(self._sops[uid]))
        for uid in self.spool.ready():
            self._ready_at[uid] = now
            stage = self.spool.failed_stage(uid)
            if stage == "process":
                log.warning(
                    "series %s failed before (see %s); delete that folder to process it again",
                    uid,
                    self.spool.folder("failed", uid),
                )
            else:
                log.info("resuming series %s: %s", uid, "forward" if stage else "processing")

    def _expected(self, uid: str, info: dict[str, Any]) -> int | None:
        """The instance count that completes series ``uid``: its rule's ``expected``, else its header's."""
        chosen = self.rules.select(info)
        if chosen is not None and chosen[0].expected:
            return chosen[0].expected
        expected = info.get("expected")
        return expected if isinstance(expected, int) and not isinstance(expected, bool) else None

    def complete(self) -> list[str]:
        """SeriesInstanceUIDs in ``incoming/`` that are complete now (idle, or expected count reached)."""
        now, out = self.clock(), []
        for uid in self.spool.incoming():
            with self.spool.lock:
                last = self._last.setdefault(uid, now)
                sops = self._sops.get(uid)
            count = len(sops) if sops is not None else self.spool.count(self.spool.folder("incoming", uid))
            try:
                expected = self._expected(uid, self.spool.info("incoming", uid))
            except (GeoMedSRError, OSError) as exc:  # an unreadable series JSON and instance: idle time ends it
                if f"header {uid}" not in self._warned:
                    self._warned.add(f"header {uid}")
                    log.warning(
                        "series %s: cannot read its header (%s); complete after %.0f s idle", uid, exc, self.idle
                    )
                expected = None
            if now - last >= self.idle or (expected is not None and count >= expected):
                out.append(uid)
        return out

    # -- processing (the main thread)

    def poll(self) -> list[str]:
        """One round: move complete series to ``ready/``, then process/forward every ready series that is due.

        Returns:
            The SeriesInstanceUIDs finished (done) in this round.
        """
        for uid in self.complete():
            if self.spool.done(uid) is not None:
                if uid not in self._warned:
                    self._warned.add(uid)
                    log.warning(
                        "%d instance(s) of series %s arrived after it was processed; kept in %s, not processed again",
                        self.spool.count(self.spool.folder("incoming", uid)),
                        uid,
                        self.spool.folder("incoming", uid),
                    )
                continue
            with self.spool.lock:
                self._last.pop(uid, None)
                self._sops.pop(uid, None)
                count = self.spool.move_to_ready(uid)
                self._ready_at.setdefault(uid, self.clock())
            log.info("series %s complete: %d instance(s)", uid, count)
        finished = []
        now = self.clock()
        for uid in self.spool.ready():
            if self.spool.done(uid) is not None:
                self._clean_up(uid)  # a node killed between the marker and the clean-up, or a guide kept
                continue
            stage = self.spool.failed_stage(uid) or self._unrecorded.get(uid)
            if stage == "process" or (stage == "forward" and self._retry_at.get(uid, 0.0) > now):
                continue
            if self._handle_guarded(uid):
                finished.append(uid)
        return finished

    def _handle_guarded(self, uid: str) -> bool:
        """:meth:`handle`, with anything it did not expect (a spool that cannot be written, a header
        nothing foresaw) recorded as a failure of the series instead of stopping the node."""
        try:
            return self.handle(uid)
        except Exception as exc:  # one series never stops the node
            self._record_failure(uid, "process", _one_line(exc))
            return False

    def handle(self, uid: str) -> bool:
        """Process (unless already processed) and forward the ready series ``uid``; True when done.

        A failure is recorded in ``failed/<uid>/error.txt`` and logged; nothing is deleted.
        """
        info = self.spool.info("ready", uid)
        chosen = self.rules.select(info)
        if chosen is None:
            return self._skip(uid, info, "no rule matches")
        rule, label = chosen
        scale = rule.scale_for(info)
        if isinstance(scale, str):
            return self._skip(uid, info, f"{label}: {scale}")
        if max(scale) == 1:
            return self._skip(uid, info, f"{label}: scale 1,1,1 (the slices are as thin as the pixels)")
        output = self.spool.folder("output", uid)
        if not output.is_dir():
            made = self._guide_choice(uid, rule, info)
            if made is None:
                return False  # waits for its guide
            try:
                try:
                    self._write_made(uid, {"rule": label, **made})
                    self._process(uid, rule, label, scale, output, made)
                except GeoMedSRError as exc:
                    if not made.get("guide") or rule.guide is None or output.exists():
                        raise
                    made = self._guide_refused(uid, rule, exc)  # e.g. a registration that failed
                    self._write_made(uid, {"rule": label, **made})
                    self._process(uid, rule, label, scale, output, made)
            except Exception as exc:  # the node keeps running; the series is kept and the error recorded
                self._record_failure(uid, "process", f"{label}: {_one_line(exc)}")
                return False
        else:
            made = self._read_made(uid, rule)
        try:
            destination = self._destination(rule, info)
            files = sorted(output.glob("*.dcm"))
            sent = self._send(files, destination, self.ae_title)
        except (GeoMedSRError, OSError) as exc:
            self._retry_at[uid] = self.clock() + self.retry
            self._record_failure(uid, "forward", _one_line(exc))
            return False
        record = {
            "output_series_uid": _output_series_uid(output),
            "instances_in": self.spool.count(self.spool.folder("ready", uid)),
            "instances_out": sent,
            "rule": label,
            "scale": list(scale),
            "method": made.get("method", rule.method),
            **{k: made[k] for k in ("guide", "guide_fallback") if k in made},
            "forwarded_to": str(destination),
        }
        self.spool.mark_done(uid, record)
        self._retry_at.pop(uid, None)
        self._waiting.discard(uid)
        self._clean_up(uid)
        log.info(
            "series %s done: %d instance(s) of series %s sent to %s%s",
            uid,
            sent,
            record["output_series_uid"],
            destination,
            _guide_note(record),
        )
        return True

    # -- guided MRI

    def _guide_choice(self, uid: str, rule: Rule, info: dict[str, Any]) -> dict[str, Any] | None:
        """How to process target ``uid`` now: ``{"method": rule's method}`` for a rule without a guide;
        with one ``{"method", "guide": UID}`` when a guide series is ready, ``{"method": fallback,
        "guide": None, "guide_fallback": why}`` once ``guide.wait`` seconds have passed without one;
        None while it waits."""
        guide = rule.guide
        if guide is None:
            return {"method": rule.method}
        found = self._find_guide(uid, guide, info)
        if found is not None:
            if uid in self._waiting:
                log.info("series %s: guide series %s is complete", uid, found)
            return {"method": rule.method, "guide": found}
        since = self._waiting_since(uid)
        if self.wall_clock() - since < guide.wait:
            if uid not in self._waiting:
                self._waiting.add(uid)
                log.info(
                    "series %s: waiting up to %.0f s for a guide series (SeriesDescription ~ %r) of study %s",
                    uid,
                    guide.wait,
                    guide.series_description,
                    info.get("study_uid"),
                )
            return None
        why = f"no guide series within {guide.wait:g} s"
        method = guide.fallback or rule.method
        log.info("series %s: %s; %s without a guide", uid, why, method or "the default method")
        return {"method": method, "guide": None, "guide_fallback": why}

    def _guide_refused(self, uid: str, rule: Rule, exc: Exception) -> dict[str, Any]:
        """How to process target ``uid`` after its guided run refused (a registration that failed, a guide that
        misses the anatomy...): the rule's fallback method without a guide, the reason recorded."""
        assert rule.guide is not None
        why = f"the guided run refused: {_one_line(exc)}"
        method = rule.guide.fallback or rule.method
        log.warning("series %s: %s; %s without a guide", uid, why, method or "the default method")
        return {"method": method, "guide": None, "guide_fallback": why}

    def _waiting_since(self, uid: str) -> float:
        """The wall-clock time (``wall_clock``) when target ``uid`` began waiting for its guide.

        Kept in ``ready/<uid>.wait.json`` (written durably the first time), so that a restarted node goes
        on counting the same wait instead of starting it again; in memory only when the spool cannot take
        the file (a restart then waits again)."""
        if uid in self._wait_from:
            return self._wait_from[uid]
        path = self.spool.folder("ready", f"{uid}{WAIT_SUFFIX}")
        try:
            since = float(json.loads(path.read_text())["since"])
            if not math.isfinite(since):
                raise ValueError(since)
        except (OSError, ValueError, KeyError, TypeError):
            since = float(self.wall_clock())
            try:
                _write_durably(path, json.dumps({"since": since}).encode(), self.spool.folder("tmp"))
            except OSError as exc:
                log.warning("series %s: cannot record when its wait began (%s); a restart waits again", uid, exc)
        self._wait_from[uid] = since
        return since

    def _find_guide(self, uid: str, guide: Any, info: dict[str, Any]) -> str | None:
        """The SeriesInstanceUID of a complete series in ``ready/`` that can guide target ``uid`` (same
        StudyInstanceUID, :meth:`~geo_med_sr.pacs.rules.Guide.fits`; the thinnest, then the one with the
        most instances), or None."""
        study = info.get("study_uid")
        if not study:
            return None
        found = []
        for other in self.spool.ready():
            if other == uid:
                continue
            values = self._ready_info(other)
            if values.get("study_uid") != study or not guide.fits(values):
                continue
            count = self.spool.count(self.spool.folder("ready", other))
            if count:
                found.append((slice_thickness(values), -count, other))
        return min(found)[2] if found else None

    def _ready_info(self, uid: str) -> dict[str, Any]:
        """:meth:`Spool.info` of a ready series, ``{}`` when neither its JSON nor an instance can be read."""
        try:
            return self.spool.info("ready", uid)
        except (GeoMedSRError, OSError):
            return {}

    def _write_made(self, uid: str, made: dict[str, Any]) -> None:
        """Write ``output/<uid>.json`` (how the output is made) durably, before processing."""
        _write_durably(self.spool.folder("output", f"{uid}.json"), json.dumps(made).encode(), self.spool.folder("tmp"))

    def _read_made(self, uid: str, rule: Rule) -> dict[str, Any]:
        """``output/<uid>.json`` of an output made before (a forward retried), ``{"method": rule's}`` without it."""
        try:
            made = json.loads(self.spool.folder("output", f"{uid}.json").read_text())
        except (OSError, ValueError):
            made = None
        return made if isinstance(made, dict) else {"method": rule.method}

    def _kept_as_guide(self, uid: str) -> bool:
        """Whether the handled series ``uid`` stays in ``ready/`` as a possible guide: it fits the ``guide`` of
        some rule, and a target of its study waits in ``ready/`` (not yet processed) or it was complete less than
        the longest ``wait`` of those rules ago."""
        guides = [rule.guide for rule, _ in self.rules.all() if rule.guide is not None]
        if not guides:
            return False
        info = self._ready_info(uid)
        fitting = [g for g in guides if g.fits(info)]
        study = info.get("study_uid")
        if not fitting or not study:
            return False
        now = self.clock()
        if now - self._ready_at.setdefault(uid, now) < max(g.wait for g in fitting):
            return True
        for other in self.spool.ready():
            if other == uid or self.spool.done(other) is not None or self.spool.folder("output", other).is_dir():
                continue  # handled, or processed (a forward to retry): needs no guide any more
            if (self.spool.failed_stage(other) or self._unrecorded.get(other)) == "process":
                continue  # failed: not retried until its failure record is deleted
            values = self._ready_info(other)
            chosen = self.rules.select(values) if values.get("study_uid") == study else None
            if chosen is not None and chosen[0].guide is not None and chosen[0].guide.fits(info):
                return True
        return False

    def _clean_up(self, uid: str) -> None:
        """Remove ``ready/<uid>`` and ``output/<uid>`` of a done series, unless ``keep`` or kept as a guide."""
        if self.keep or self._kept_as_guide(uid):
            return
        self.spool.remove(uid)
        self._ready_at.pop(uid, None)
        self._wait_from.pop(uid, None)

    def _record_failure(self, uid: str, stage: str, message: str) -> None:
        """Record and log a failure of series ``uid`` at ``stage`` (``process``/``forward``; a forward is
        retried every ``retry`` seconds). When the spool cannot take the record either (disk full), it is
        kept in memory until the node restarts, so that the series is not processed again in a loop."""
        try:
            where = str(self.spool.mark_failed(uid, stage, message))
            self._unrecorded.pop(uid, None)
        except OSError as exc:
            self._unrecorded[uid] = stage
            where = f"not recorded: {exc.strerror or _one_line(exc)}"
        if stage == "forward":
            log.error("series %s: forward failed, retry in %.0f s (%s): %s", uid, self.retry, where, message)
        else:
            log.error("series %s failed (%s): %s", uid, where, message)

    def _process(
        self, uid: str, rule: Rule, label: str, scale: tuple[int, ...], output: Path, made: dict[str, Any]
    ) -> None:
        upscale = self._upscale
        if upscale is None:
            from geo_med_sr.upscale.pipeline import super_resolve as upscale
        started = time.monotonic()
        method = made.get("method")
        log.info(
            "series %s: %s, scale %s, method %s%s",
            uid,
            label,
            ",".join(map(str, scale)),
            method or "default",
            _guide_note(made),
        )
        extra: dict[str, Any] = {}
        if made.get("guide") and rule.guide is not None:  # the guide's files are only read
            extra = {"guide": self.spool.folder("ready", made["guide"]), "guide_registered": rule.guide.registered}
        config = rule.sr_config(method)
        upscale(self.spool.folder("ready", uid), output, ",".join(map(str, scale)), config, progress=False, **extra)
        log.info("series %s: super-resolved in %.1f s into %s", uid, time.monotonic() - started, output)

    def _destination(self, rule: Rule, info: dict[str, Any]) -> Any:
        from geo_med_sr.pacs.net import Peer, parse_peer

        if rule.forward == "sender":
            ae, host = info.get("calling_ae"), info.get("peer_host")
            if not ae or not host:
                raise ConfigError(f"series {info.get('series_uid')}: the sender is unknown, cannot forward to it")
            return Peer(str(ae).strip(), str(host), int(rule.return_port or self.return_port or 0))
        return parse_peer(rule.forward, "forward") if rule.forward else self.forward

    def _skip(self, uid: str, info: dict[str, Any], reason: str) -> bool:
        log.info("series %s (%s) skipped: %s", uid, info.get("series_description", ""), reason)
        self.spool.mark_done(uid, {"skipped": reason})
        self._clean_up(uid)
        return True

    # -- running

    def run(self, host: str, port: int, stop: threading.Event | None = None, interval: float | None = None) -> None:
        """Serve C-STORE on ``(host, port)`` and poll until ``stop`` is set (or Ctrl-C, which propagates
        after the server stopped)."""
        from geo_med_sr.pacs.dimse import StoreServer

        server = StoreServer(self.ae_title, host, port, self.receive).start()
        log.info("DICOM node %s listening on %s:%d, spool %s", self.ae_title, host, port, self.spool.root)
        stop = stop or threading.Event()
        interval = interval if interval is not None else min(0.5, self.idle / 4)
        restore = _stop_on_signals(stop)
        try:
            while not stop.is_set():
                self.poll()
                stop.wait(interval)
        finally:
            restore()
            server.stop()
            log.info("DICOM node %s stopped", self.ae_title)


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGINT (Ctrl-C) and SIGTERM set ``stop``: the node stops between two steps, never inside the
    server's or the logger's locks (a KeyboardInterrupt raised at an arbitrary point could leave one held and the
    shutdown waiting on it). A second signal stops at once (KeyboardInterrupt). Returns the function that puts
    the previous handlers back; does nothing outside the main thread, where handlers cannot be set."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.info("%s: stopping after the current step (again to stop now)", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
