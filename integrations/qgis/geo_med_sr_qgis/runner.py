"""Run the ``geo-med-sr`` command line as a subprocess, with progress, cancellation and cleanup.

No torch and no geo_med_sr in QGIS's Python: the plugin builds a command line, and this module
runs it. It reads the CLI's stderr in chunks while it runs, turns the last ``NN%|`` of the tqdm
bars (``--progress``) into ``feedback.setProgress(NN)``, passes the other lines on as log lines,
and polls ``feedback.isCanceled()``. On cancel it interrupts the CLI (SIGINT to its process
group, as Ctrl-C would; SIGTERM, then SIGKILL if it does not stop within a grace period) and
removes what the run made: the outputs that did not exist before, and the CLI's hidden
temporaries beside them (``.<name>.partial-*``, ``.<name>.old-*``). Nothing that existed before
the run is ever removed.

This module imports nothing from QGIS (it is tested with any Python); ``feedback`` is anything
with ``setProgress``, ``isCanceled``, ``pushInfo`` and ``pushWarning`` (a QgsProcessingFeedback).
"""

from __future__ import annotations

import codecs
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cli_spec import EXECUTABLE

#: tqdm's percentage, as it writes it before the bar: `` 45%|████...``.
_PERCENT = re.compile(r"(\d{1,3})%\|")
#: a tqdm update (with or without a total) rather than a message line.
_BAR = re.compile(r"\d{1,3}%\||\[\d+:\d\d")
#: the CLI's one-line errors: ``geo-med-sr: error: ...``, argparse's ``geo-med-sr upscale: error: ...``,
#: batch's per-input ``geo-med-sr: failed: ...``.
_ERROR = re.compile(r"^geo-med-sr(?: [a-z-]+)?: (?:error|failed): ")
#: environment variables of QGIS's own Python and libraries that must not leak into the CLI's
#: Python (another interpreter, perhaps another GDAL/PROJ: a foreign proj.db breaks CRS handling).
_FOREIGN_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PROJ_LIB", "PROJ_DATA", "GDAL_DATA", "GDAL_DRIVER_PATH")


class CliError(Exception):
    """The CLI failed; ``str()`` is its one-line error (``geo-med-sr: error: <file>: ...``)."""

    def __init__(self, message: str, returncode: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode


class Canceled(Exception):
    """The user canceled the run; the CLI was stopped and what it made was removed."""


@dataclass
class Result:
    """A finished run: exit status, the CLI's stdout, and its stderr message lines (bars left out)."""

    returncode: int
    stdout: str
    lines: list[str] = field(default_factory=list)


def find_executable(configured: str | None = None) -> str:
    """The CLI to run: ``configured`` (the Processing setting) when set, else ``geo-med-sr`` on the PATH.

    Raises:
        CliError: neither is found (the message says where to set it).
    """
    if configured:
        found = shutil.which(configured) or (configured if os.path.isfile(configured) else None)
        if found:
            return found
        raise CliError(
            f"geo-med-sr: error: {configured}: the configured geo-med-sr executable does not exist; fix it in "
            "Settings > Options > Processing > Providers > geo_med_sr"
        )
    found = shutil.which(EXECUTABLE)
    if found:
        return found
    raise CliError(
        "geo-med-sr: error: the geo-med-sr executable was not found on the PATH; install geo-med-sr in its own "
        "virtual environment and set its path in Settings > Options > Processing > Providers > geo_med_sr"
    )


def child_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The CLI's environment: QGIS's, without its Python/GDAL/PROJ paths, with unbuffered UTF-8 output."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k not in _FOREIGN_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


class _Snapshot:
    """What existed at and beside the outputs before the run, so that cleanup removes only what is new.

    Each output is a file or a folder the run may create (a folder for batch). An output that
    existed before is never removed; a folder output that existed keeps every entry it had.
    """

    def __init__(self, outputs: Sequence[str | os.PathLike]) -> None:
        self.outputs = [Path(os.path.abspath(o)) for o in outputs]
        self.existed = {o: os.path.lexists(o) for o in self.outputs}
        self.beside = {o: _entries(o.parent) for o in self.outputs}
        self.inside = {o: _entries(o) for o in self.outputs if o.is_dir() and not o.is_symlink()}

    def cleanup(self) -> list[Path]:
        """Remove what the run made at and beside the outputs; returns the paths removed."""
        removed: list[Path] = []
        for out in self.outputs:
            prefixes = (f".{out.name}.partial-", f".{out.name}.old-")
            for name in sorted(_entries(out.parent) - self.beside[out]):
                if name.startswith(prefixes):
                    removed += _remove(out.parent / name)
            if not self.existed[out]:
                removed += _remove(out)
            elif out in self.inside and out.is_dir() and not out.is_symlink():
                for name in sorted(_entries(out) - self.inside[out]):
                    removed += _remove(out / name)
        return removed


def _entries(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def _remove(path: Path) -> list[Path]:
    if not os.path.lexists(path):
        return []
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            return []
    return [path]


def _read(stream: Any, sink: queue.Queue, key: str) -> None:
    """Thread body: put the stream's chunks (bytes, as they come) into ``sink``, then ``None``."""
    try:
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                break
            sink.put((key, chunk))
    finally:
        sink.put((key, None))


class _Stderr:
    """Incremental view of the CLI's stderr: the last tqdm percentage and the message lines."""

    def __init__(self, feedback: Any) -> None:
        self.feedback = feedback
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.partial = ""
        self.lines: list[str] = []
        self.progress: int | None = None

    def feed(self, chunk: bytes, final: bool = False) -> None:
        text = self.partial + self.decoder.decode(chunk, final=final)
        percents = _PERCENT.findall(text)
        if percents:
            self.progress = min(100, int(percents[-1]))
            _call(self.feedback, "setProgress", self.progress)
        *complete, self.partial = text.split("\n")
        if final:
            complete.append(self.partial)
            self.partial = ""
        elif "\r" in self.partial:  # keep only the last bar update of an unfinished line
            self.partial = self.partial[self.partial.rfind("\r") :]
        for raw in complete:
            segments = [s.strip() for s in raw.split("\r")]
            for line in (s for s in segments if s and not _BAR.search(s)):
                self.lines.append(line)
                if _ERROR.match(line):
                    continue  # raised as the error instead
                _call(self.feedback, "pushWarning" if ": warning:" in line else "pushInfo", line)

    def error_line(self) -> str | None:
        """The CLI's last one-line error, if it printed one."""
        return next((line for line in reversed(self.lines) if _ERROR.match(line)), None)


def _call(feedback: Any, method: str, *args: Any) -> None:
    if feedback is not None and hasattr(feedback, method):
        getattr(feedback, method)(*args)


def _canceled(feedback: Any) -> bool:
    return feedback is not None and bool(feedback.isCanceled())


def _popen(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start the CLI in its own process group (so that a signal reaches its workers too)."""
    options: dict[str, Any] = {}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
    else:
        options["start_new_session"] = True
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **options
    )


def _signal(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the CLI's process group (POSIX) or the CLI (Windows: CTRL_BREAK, then kill)."""
    try:
        if sys.platform == "win32":
            if sig == signal.SIGINT:
                proc.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                proc.kill()
        else:
            os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> int:
    """Interrupt ``proc`` like Ctrl-C; SIGTERM after ``grace_s`` seconds, SIGKILL after as long again.

    Returns the exit status. The CLI removes its own temporaries on SIGINT and SIGTERM; after a
    SIGKILL the caller's cleanup removes them.
    """
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGKILL", signal.SIGTERM)):
        _signal(proc, sig)
        try:
            status = proc.wait(timeout=grace_s)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        status = proc.wait()
    if sys.platform != "win32":
        _signal(proc, getattr(signal, "SIGKILL", signal.SIGTERM))  # workers that outlived the CLI
    return status


def run_cli(
    arguments: Sequence[str],
    feedback: Any = None,
    *,
    executable: str | None = None,
    outputs: Sequence[str | os.PathLike] = (),
    grace_s: float = 10.0,
    poll_s: float = 0.1,
    ok_codes: Sequence[int] = (0,),
) -> Result:
    """Run ``executable arguments...`` to the end, or until ``feedback`` is canceled.

    Args:
        arguments: the CLI's arguments after the executable (``["upscale", IN, OUT, "--scale", "2", ...]``);
            pass ``--progress`` for progress reports.
        feedback: a QgsProcessingFeedback (or None): progress 0-100 from the CLI's bars, message
            lines as info/warnings, polled for cancel every ``poll_s`` seconds.
        executable: the CLI (default: :func:`find_executable`).
        outputs: files or folders the run may create; on cancel or failure those that did not
            exist before, and the CLI's temporaries beside them, are removed (the CLI removes its
            temporaries itself, except when it is killed).
        grace_s: seconds the CLI gets to stop after SIGINT (and again after SIGTERM).
        ok_codes: exit statuses that are not failures (batch: 1 = some inputs failed).

    Returns:
        The :class:`Result` (exit status in ``ok_codes``).

    Raises:
        Canceled: ``feedback`` was canceled; the CLI was stopped and its outputs removed.
        CliError: another exit status; the message is the CLI's one-line error.
    """
    command = [executable or find_executable(), *arguments]
    snapshot = _Snapshot(outputs)
    stderr = _Stderr(feedback)
    stdout = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out_text: list[str] = []
    chunks: queue.Queue = queue.Queue()
    try:
        proc = _popen(command, child_environment())
    except OSError as exc:
        raise CliError(f"geo-med-sr: error: {command[0]}: cannot run it ({exc.strerror or exc})") from exc
    readers = [
        threading.Thread(target=_read, args=(proc.stdout, chunks, "out"), daemon=True),
        threading.Thread(target=_read, args=(proc.stderr, chunks, "err"), daemon=True),
    ]
    for reader in readers:
        reader.start()
    open_streams, canceled, finished, give_up = 2, False, False, None
    try:
        while open_streams and (give_up is None or time.monotonic() < give_up):
            if not canceled and _canceled(feedback):
                canceled = True
                stop(proc, grace_s)
                give_up = time.monotonic() + 5.0  # a process that inherited the pipes may keep them open
            deadline = time.monotonic() + poll_s
            while open_streams and time.monotonic() < deadline:
                try:
                    key, chunk = chunks.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if chunk is None:
                    open_streams -= 1
                elif key == "err":
                    stderr.feed(chunk)
                else:
                    out_text.append(stdout.decode(chunk))
        stderr.feed(b"", final=True)
        out_text.append(stdout.decode(b"", final=True))
        status = proc.wait()
        finished = True
        if not open_streams:
            for stream in (proc.stdout, proc.stderr):
                stream.close()
    finally:
        if not finished:  # an exception of ours: leave no CLI running and nothing of its behind
            stop(proc, grace_s=2.0)
            snapshot.cleanup()
    if canceled or status not in ok_codes:
        snapshot.cleanup()
    if canceled:
        raise Canceled("geo-med-sr: canceled; the run was stopped and its partial outputs removed")
    if status not in ok_codes:
        line = stderr.error_line()
        if line is None:
            last = next((x for x in reversed(stderr.lines) if x), "")
            line = f"geo-med-sr: error: exited with status {status}" + (f" ({last})" if last else "")
        raise CliError(line, status)
    if stderr.progress is not None or status == 0:
        _call(feedback, "setProgress", 100)
    return Result(status, "".join(out_text), stderr.lines)
