"""batch(inputs, out_dir, scale): many files on a Dask cluster, resumable and idempotent.

One task per input (a file, a DICOM series folder or a glob pattern) runs
:func:`geo_med_sr.upscale.pipeline.super_resolve` on a Dask ``LocalCluster`` (``workers`` processes,
each running one file at a time with ``threads`` torch threads) or on an existing cluster at
``scheduler``. Outputs keep the input's name in ``out_dir`` (a DICOM folder gives a DICOM
series folder, NIfTI gives NIfTI beside a JSON provenance sidecar, a GeoTIFF gives a COG).

- Idempotent: an output whose recorded provenance request (input hash, method, model weights
  hash, scale, value-changing settings; :func:`~geo_med_sr.upscale.request.request_for`) equals this
  run's is skipped.
- Resumable: every output is written atomically, so a killed batch leaves only hidden
  ``.NAME.partial-*`` folders, which the next run removes before redoing what is missing.
- One bad input does not stop the others: its error is reported and :attr:`BatchReport.failed`
  is non-empty (the CLI then exits 1).
- A summary (input, status, seconds, output, error) is printed and written to
  ``out_dir/geo-med-sr-batch.json`` and ``.csv``; ``vrt`` adds a GDAL VRT mosaic of the
  GeoTIFF outputs.

The machinery (lock, leftovers, cluster, report, mosaic: :func:`run_batch`) takes any task
``task(job, settings) -> Outcome``: ``batch --sharpen`` (:mod:`geo_med_sr.sharpening.batch`) runs
its sharpening jobs through it.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import glob
import json
import logging
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from geo_med_sr.errors import ConfigError, GeoMedSRError, OutputError, file_error
from geo_med_sr.optional import require
from geo_med_sr.upscale.config import SRConfig

#: status of one input after a batch run.
DONE, SKIPPED, FAILED = "done", "skipped", "failed"
REPORT_NAME = "geo-med-sr-batch"
LOCK_NAME = ".geo-med-sr-batch.lock"


@dataclass(frozen=True)
class Job:
    """One input and the output it becomes; ``raster``: a GeoTIFF (takes ``bands``, mosaicked by ``vrt``)."""

    input: Path
    output: Path
    raster: bool

    @property
    def label(self) -> str:
        """The input as the report names it."""
        return str(self.input)


@dataclass(frozen=True)
class Outcome:
    """What happened to one input: ``status`` is done, skipped or failed (``error`` says why)."""

    input: str
    output: str
    status: str
    seconds: float
    error: str = ""


@dataclass
class BatchReport:
    """All outcomes, in input order, plus the report files and the VRT mosaic if one was made."""

    outcomes: list[Outcome]
    seconds: float
    files: list[Path] = field(default_factory=list)
    vrt: Path | None = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    def table(self) -> str:
        """A plain-text table: input, status, seconds, output (and the error of failed inputs)."""
        rows = [("input", "status", "seconds", "output")]
        rows += [
            (o.input, o.status, f"{o.seconds:.1f}", o.error if o.status == FAILED else o.output) for o in self.outcomes
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
        counts = {s: sum(o.status == s for o in self.outcomes) for s in (DONE, SKIPPED, FAILED)}
        lines.append(
            f"{counts[DONE]} done, {counts[SKIPPED]} skipped (up to date), {counts[FAILED]} failed in "
            f"{self.seconds:.1f} s"
        )
        return "\n".join(lines)


# ----------------------------------------------------------------------------- planning


def expand_inputs(patterns: Sequence[str | os.PathLike]) -> list[Path]:
    """Files, folders and glob patterns (``**`` recurses) -> existing paths, in the given order.

    Raises:
        ConfigError: a pattern matches nothing (a typo should not silently shrink a batch).
    """
    found: list[Path] = []
    for pattern in patterns:
        text = os.fspath(pattern)
        matches = [Path(text)] if Path(text).exists() else [Path(m) for m in sorted(glob.glob(text, recursive=True))]
        if not matches:
            raise file_error(ConfigError, text, "no such file or folder, and no file matches it as a glob pattern")
        found += matches
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def plan(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> list[Job]:
    """One :class:`Job` per input (absolute paths: workers may run in another folder); refuses
    inputs that would write the same output."""
    from geo_med_sr import io

    out_dir = Path(out_dir).absolute()
    jobs = []
    for path in expand_inputs(inputs):
        adapter = io.adapter_for_input(path)
        jobs.append(Job(path.absolute(), out_dir / adapter.output_name(path), adapter.band_selection))
    return check_unique(jobs)


def check_unique(jobs: Sequence[Job]) -> list[Job]:
    """``jobs`` as a list, once no two of them write the same output (and there is one at least).

    Raises:
        ConfigError: two inputs would write the same output name (naming both), or no job.
    """
    owners: dict[str, Job] = {}
    for job in jobs:
        first = owners.setdefault(job.output.name, job)
        if first is not job:
            raise file_error(
                ConfigError,
                job.label,
                f"would write {job.output} like {first.label}; give the inputs different names or run them in "
                "separate batches",
            )
    if not jobs:
        raise ConfigError("batch: no inputs given")
    return list(jobs)


# ----------------------------------------------------------------------------- one task


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs besides the job (plain data: sent to every task)."""

    scale: str
    config: dict[str, Any]
    bands: str | None = None
    cog: bool = True
    overwrite: bool = False
    threads: int | None = None


def up_to_date(job: Job, request: dict[str, Any]) -> bool | None:
    """True when ``job.output`` was made by this request, False when it exists from another
    request or another tool, None when it does not exist."""
    from geo_med_sr import io

    if not job.output.exists():
        return None
    provenance = io.read_provenance(job.output)
    return isinstance(provenance, dict) and provenance.get("request") == request


def drop_orphan_sidecars(output: Path) -> list[Path]:
    """Delete the JSON sidecars this tool wrote beside ``output`` when ``output`` itself is gone
    (the user deleted the image to have it redone); a file that is not our sidecar is kept, and
    the write then refuses it by name. Returns what was deleted."""
    from geo_med_sr import io

    if output.exists():
        return []
    adapter = io.adapter_for_output(output)
    removed = []
    for companion in adapter.companions(output):
        if adapter.owns_companion(companion):
            companion.unlink()
            removed.append(companion)
    return removed


def stale_output(job: Job) -> OutputError:
    """The refusal of an existing output that another request made, without ``overwrite``."""
    return file_error(
        OutputError,
        job.output,
        "exists but was not made from this input with these settings (different input, method, model, scale "
        "or options, or not by geo_med_sr); pass --overwrite to replace it or choose another --out-dir",
    )


def failure(job: Job, exc: Exception) -> str:
    """The report's one-line error of ``exc`` raised by ``job``: the message of a known error, else the
    exception type, message and where it was raised (a bug or a library failure)."""
    if isinstance(exc, GeoMedSRError):
        return " ".join(str(exc).split())
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{job.label}: unexpected {type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"


def run_job(job: Job, settings: Settings) -> Outcome:
    """Run one input (on a worker): skip it when its output is up to date, else super-resolve.

    Never raises for a bad input: the error becomes a failed :class:`Outcome`.
    """
    from geo_med_sr import io
    from geo_med_sr.scale import for_input as scale_for_input
    from geo_med_sr.upscale.methods import resolve_method  # no torch: a worker that only skips never imports it
    from geo_med_sr.upscale.request import request_for

    start = time.perf_counter()
    bands = settings.bands if job.raster else None

    def outcome(status: str, error: str = "") -> Outcome:
        return Outcome(job.label, str(job.output), status, time.perf_counter() - start, error)

    try:
        config = SRConfig.model_validate(settings.config)
        adapter = io.adapter_for_input(job.input)
        factors = scale_for_input(settings.scale, adapter.spatial_dims, job.input)
        method = resolve_method(config, domain=adapter.domain, scale=factors, bands=io.parse_bands(bands))
        request = request_for(job.input, factors, config, bands=bands, cog=settings.cog, method=method)
        state = up_to_date(job, request)
        if state:
            return outcome(SKIPPED)
        if state is False and not settings.overwrite:
            raise stale_output(job)
        drop_orphan_sidecars(job.output)
        import torch

        from geo_med_sr.upscale.pipeline import super_resolve

        if settings.threads:
            torch.set_num_threads(settings.threads)
        super_resolve(
            job.input,
            job.output,
            settings.scale,
            config,
            bands=bands,
            cog=settings.cog,
            overwrite=settings.overwrite,
            progress=False,
            request=request,
            method=method,
        )
        return outcome(DONE)
    except Exception as exc:  # a bad input, a bug or a library failure on one input must not stop the others
        return outcome(FAILED, failure(job, exc))


# ----------------------------------------------------------------------------- the batch


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold a lock file in ``out_dir`` so two batches never write the same folder at once."""
    handle = open(out_dir / LOCK_NAME, "w")
    held = False
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise file_error(
                OutputError,
                out_dir,
                "another geo-med-sr batch is writing to this folder; wait for it or choose another --out-dir",
            ) from None
        held = True
        yield
    finally:
        if held:  # removed while still held: nobody else can have taken it
            (out_dir / LOCK_NAME).unlink(missing_ok=True)
        handle.close()


def remove_leftovers(jobs: Sequence[Job]) -> list[Path]:
    """Delete the hidden temporary files a killed run left beside the outputs; returns them."""
    removed = []
    for job in jobs:
        for pattern in (f".{job.output.name}.partial-*", f".{job.output.name}.old-*"):
            for path in job.output.parent.glob(pattern):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                removed.append(path)
    return removed


def default_workers(n_jobs: int) -> int:
    """Worker processes for a LocalCluster: one per 4 cores (at least 1, at most one per input)."""
    return max(1, min(n_jobs, (os.cpu_count() or 1) // 4))


@contextlib.contextmanager
def _client(workers: int, scheduler: str | None) -> Iterator[Any]:
    """A Dask client: on the cluster at ``scheduler``, or on a new LocalCluster of worker processes."""
    distributed = require("distributed", "geo-med-sr batch")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ConfigError(f"--scheduler {scheduler}: cannot connect ({exc})") from exc
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def input_bytes(path: Path) -> int:
    """Size of an input on disk (a folder: its files), a proxy for its run time."""
    try:
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file()) if path.is_dir() else path.stat().st_size
    except OSError:
        return 0


#: what runs one job on a worker: ``task(job, settings)``, never raising for a bad input (a failed Outcome).
Task = Callable[[Any, Any], Outcome]


def _run_all(client: Any, jobs: Sequence[Job], task: Task, settings: Any, progress: bool | None) -> list[Outcome]:
    as_completed = require("distributed", "geo-med-sr batch").as_completed
    from tqdm.auto import tqdm

    # largest inputs first, so that no worker starts a long file when the others are nearly done
    sizes = [input_bytes(job.input) for job in jobs]
    futures = {
        client.submit(task, job, settings, pure=False, priority=sizes[i], key=f"geo-med-sr-{i}-{time.time_ns()}"): i
        for i, job in enumerate(jobs)
    }
    outcomes: list[Outcome | None] = [None] * len(jobs)
    with tqdm(total=len(jobs), desc="batch", unit="file", disable=None if progress is None else not progress) as bar:
        for future in as_completed(futures):
            i = futures[future]
            try:
                outcomes[i] = future.result()
            except Exception as exc:  # the worker died (memory limit, crash) or the task was cancelled
                outcomes[i] = Outcome(
                    jobs[i].label,
                    str(jobs[i].output),
                    FAILED,
                    0.0,
                    f"{jobs[i].label}: the worker running it failed ({type(exc).__name__}: {exc})",
                )
            bar.update(1)
            bar.set_postfix_str(f"{outcomes[i].status} {jobs[i].input.name}", refresh=False)
    return [o for o in outcomes if o is not None]


def write_report(report: BatchReport, out_dir: Path) -> list[Path]:
    """``geo-med-sr-batch.json`` and ``.csv`` in ``out_dir`` (replaced each run)."""
    rows = [asdict(o) for o in report.outcomes]
    paths = [out_dir / f"{REPORT_NAME}.json", out_dir / f"{REPORT_NAME}.csv"]
    payload = {"seconds": report.seconds, "vrt": None if report.vrt is None else str(report.vrt), "outcomes": rows}
    paths[0].write_text(json.dumps(payload, indent=2) + "\n")
    with open(paths[1], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return paths


def _vrt_path(vrt: str | os.PathLike, out_dir: Path) -> Path:
    """Where ``--vrt`` is written: a bare name in ``out_dir``, any other path as given."""
    return Path(vrt) if Path(vrt).is_absolute() or Path(vrt).parent != Path(".") else out_dir / vrt


def check_vrt(vrt: str | os.PathLike, out_dir: Path, overwrite: bool) -> Path:
    """The output pre-flight of ``--vrt``, before any input runs (the mosaic is written last): a ``.vrt``
    file name in a writable folder, and an existing file there an earlier mosaic of this tool (one in
    ``out_dir`` is rewritten on every run; elsewhere it needs ``overwrite``)."""
    from geo_med_sr import io

    path = _vrt_path(vrt, out_dir)
    return io.check_file_output(
        path,
        suffixes=(".vrt",),
        what="the --vrt mosaic",
        owned=io.owns_vrt,
        overwrite=overwrite or path.resolve().parent == out_dir.resolve(),
        ignore_case=True,
    )


def _mosaic(report: BatchReport, jobs: Sequence[Job], vrt: str | os.PathLike, out_dir: Path, overwrite: bool) -> Path:
    """The VRT of every GeoTIFF output that exists after the run (relative names live in ``out_dir``)."""
    from geo_med_sr.io import build_vrt

    path = _vrt_path(vrt, out_dir)
    tiles = [job.output for job, o in zip(jobs, report.outcomes) if job.raster and o.status != FAILED]
    if not tiles:
        raise file_error(OutputError, path, "no GeoTIFF output to mosaic")
    # the batch's own folder is rewritten each run; elsewhere an existing file needs --overwrite
    return build_vrt(tiles, path, overwrite=overwrite or path.resolve().parent == out_dir.resolve())


def batch(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    scale: str | int | Sequence[int],
    config: SRConfig | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    threads: int | None = None,
    bands: str | Sequence[int] | None = None,
    cog: bool = True,
    overwrite: bool = False,
    vrt: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> BatchReport:
    """Super-resolve every input into ``out_dir`` on a Dask cluster; see the module docstring.

    Args:
        inputs: files, DICOM series folders or glob patterns (``"scenes/*.tif"``).
        out_dir: output folder (created if missing); outputs keep the inputs' names.
        scale: as for :func:`~geo_med_sr.upscale.pipeline.super_resolve`, the same for every input.
        config: method, model and inference settings for every input.
        workers: LocalCluster worker processes (default one per 4 cores); ignored with ``scheduler``.
        scheduler: address of a running Dask scheduler (``tcp://host:8786``); its workers must
            have geo_med_sr installed and see the same paths.
        threads: torch threads per task (default: the cores divided among the workers).
        bands: GeoTIFF bands to keep (1-based), applied to GeoTIFF inputs only.
        cog: GeoTIFF outputs as Cloud-Optimized GeoTIFFs with overviews.
        overwrite: replace outputs made from other inputs or settings (never needed to resume).
        vrt: also write a GDAL VRT mosaic of the GeoTIFF outputs (a bare name goes in ``out_dir``).
        progress: progress bar of files done (None = only on a terminal).

    Returns:
        The :class:`BatchReport`; :attr:`BatchReport.failed` lists inputs that failed.

    Raises:
        ConfigError/OutputError: before any work, for bad patterns, clashing output names, an
            unusable ``out_dir`` or a batch already running there.
    """
    from geo_med_sr import options_check as check

    workers = check.WORKERS.check_optional(workers, "workers=")  # the rule of --workers/--threads
    threads = check.WORKERS.check_optional(threads, "threads=")
    start = time.perf_counter()
    config = config or SRConfig()
    out_dir = check_out_dir(out_dir)
    jobs = plan(inputs, out_dir)
    settings = Settings(
        str(scale) if isinstance(scale, (str, int)) else ",".join(str(s) for s in scale),
        config.model_dump(),
        None if bands is None else (bands if isinstance(bands, str) else ",".join(str(b) for b in bands)),
        cog,
        overwrite,
    )
    return run_batch(
        jobs,
        out_dir,
        run_job,
        settings,
        workers=workers,
        scheduler=scheduler,
        threads=threads,
        vrt=vrt,
        overwrite=overwrite,
        progress=progress,
        start=start,
    )


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` as a Path, once it is known not to be a file.

    Raises:
        OutputError: ``out_dir`` is a file.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise file_error(OutputError, out_dir, "--out-dir is a file; give a folder")
    return out_dir


def run_batch(
    jobs: Sequence[Job],
    out_dir: Path,
    task: Task,
    settings: Any,
    *,
    workers: int | None,
    scheduler: str | None,
    threads: int | None,
    vrt: str | os.PathLike | None,
    overwrite: bool,
    progress: bool | None,
    start: float,
) -> BatchReport:
    """Run ``task(job, settings)`` for every job on a Dask cluster, in ``out_dir``, as the module docstring says.

    The rest of the pre-flight comes first (no input inside ``out_dir``, ``out_dir`` created, the
    ``vrt`` output); then, holding the folder's lock, the temporaries of a killed run are removed,
    the tasks run (largest inputs first) and the report (and mosaic) is written.

    Args:
        jobs: the planned jobs (:func:`check_unique` passed).
        out_dir: the output folder (:func:`check_out_dir` passed).
        task: a picklable module-level function run on the workers (:func:`run_job`).
        settings: a frozen dataclass with a ``threads`` field, sent to every task; ``threads`` is set
            here (the given value, else the cores divided among the local workers).
        workers, scheduler, threads, vrt, overwrite, progress: as for :func:`batch`.
        start: ``time.perf_counter()`` when the batch began (its seconds in the report).

    Raises:
        OutputError: an input inside ``out_dir``, a bad ``vrt``, another batch writing to ``out_dir``.
    """
    for job in jobs:
        if job.input.resolve().parent == out_dir.resolve():
            raise file_error(
                OutputError,
                job.input,
                "is inside --out-dir (a pattern matching earlier outputs?); outputs keep their inputs' names, so "
                "choose another --out-dir",
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    if vrt is not None:
        check_vrt(vrt, out_dir, overwrite)
    n_workers = workers or default_workers(len(jobs))
    if threads is None and not scheduler:
        threads = max(1, (os.cpu_count() or 1) // n_workers)
    settings = replace(settings, threads=threads)
    with _exclusive(out_dir):
        remove_leftovers(jobs)
        try:
            with _client(n_workers, scheduler) as client:
                outcomes = _run_all(client, jobs, task, settings, progress)
        except BaseException:
            # interrupted (Ctrl-C, SIGTERM) or the cluster failed: the local workers stopped with the cluster, so
            # the temporaries they were writing are removed here (only ours: .NAME.partial-*). Tasks already sent to
            # a remote --scheduler may still be running there, so their temporaries are left to the next run.
            if not scheduler:
                remove_leftovers(jobs)
            raise
        report = BatchReport(outcomes, 0.0)
        if vrt is not None:
            try:
                report.vrt = _mosaic(report, jobs, vrt, out_dir, overwrite)
            except GeoMedSRError as exc:
                report.outcomes.append(Outcome(str(vrt), str(vrt), FAILED, 0.0, " ".join(str(exc).split())))
        report.seconds = time.perf_counter() - start
        report.files = write_report(report, out_dir)
    return report
