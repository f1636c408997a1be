"""batch_sharpen(products, out_dir): sharpen many products on a Dask cluster, resumable and idempotent.

``geo-med-sr batch --sharpen PRODUCT... --out-dir D`` runs :func:`~geo_med_sr.sharpening.pipeline.sharpen`
once per product, one Dask task each, through the machinery of ``geo-med-sr batch``
(:func:`geo_med_sr.upscale.batch.run_batch`: the folder's lock, the removal of a killed run's
``.NAME.partial-*`` temporaries, the LocalCluster or ``--scheduler``, the report and the VRT mosaic).

- Products: a Sentinel-2 folder (COG layout, a ``.SAFE`` or one of its folders), an ``MTD_MSIL*.xml``,
  a STAC item JSON, or a STAC ItemCollection JSON, which gives one product per item (assets resolved
  from the collection's folder, :mod:`geo_med_sr.adapters.products.stac`); glob patterns expand to
  them (:func:`geo_med_sr.io.list_products`). Band files are refused: they make one product
  together (``geo-med-sr sharpen FILE... OUTPUT``).
- Outputs: ``OUT_DIR/<product name>.tif``, the name of the folder (a ``.SAFE`` without its suffix) or
  the STAC item's id; two products of one name are refused before any work.
- Idempotent: an output whose recorded request
  (:func:`~geo_med_sr.sharpening.pipeline.sharpen_request_for`: the band files' content hashes,
  method, weights, value-changing settings) equals this run's is skipped; one made by another
  request is refused without ``overwrite``.
- One product that fails is reported (status failed) and the others go on.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from geo_med_sr.sharpening.registry import DEFAULT_METHOD, SHARPEN_METHODS
from geo_med_sr.upscale.batch import (
    DONE,
    FAILED,
    SKIPPED,
    BatchReport,
    Job,
    Outcome,
    check_out_dir,
    check_unique,
    drop_orphan_sidecars,
    expand_inputs,
    failure,
    run_batch,
    stale_output,
    up_to_date,
)

__all__ = ["ProductJob", "SharpenSettings", "batch_sharpen", "plan_products", "run_sharpen_job"]


@dataclass(frozen=True)
class ProductJob(Job):
    """One product and the ``.tif`` it becomes; ``item``: the id of its item in the STAC ItemCollection
    ``input`` (None for any other product)."""

    item: str | None = None

    @property
    def label(self) -> str:
        """The product as the report names it: its path, ``COLLECTION.json#ITEM`` for an item of a collection."""
        return str(self.input) if self.item is None else f"{self.input}#{self.item}"


def plan_products(products: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> list[ProductJob]:
    """One :class:`ProductJob` per product (absolute paths: workers may run in another folder).

    Raises:
        ConfigError: a pattern that matches nothing, two products of the same name, no product.
        InputError: an input that is not a product (:func:`geo_med_sr.io.list_products`).
    """
    from geo_med_sr import io

    out_dir = Path(out_dir).absolute()
    jobs = [
        ProductJob(path.absolute(), out_dir / f"{name}.tif", True, item)
        for path in expand_inputs(products)
        for name, item in io.list_products(path)
    ]
    check_unique(jobs)
    return jobs


@dataclass(frozen=True)
class SharpenSettings:
    """The options of every product's :func:`~geo_med_sr.sharpening.pipeline.sharpen` (plain data: sent to
    every task), checked by :func:`~geo_med_sr.sharpening.pipeline.check_options`; ``tile`` in output
    pixels, ``budget`` in seconds, ``threads``: torch threads per task."""

    method: str = DEFAULT_METHOD
    bands: str | tuple[str, ...] | None = None
    budget: float | None = None
    steps: int | None = None
    model: str | None = None
    offset: float | None = None
    device: str = "auto"
    amp: bool = False
    seed: int = 0
    cog: bool = True
    tile: int = 512
    overwrite: bool = False
    threads: int | None = None

    def request_options(self, item: str | None) -> dict:
        """The keywords of :func:`~geo_med_sr.sharpening.pipeline.sharpen_request_for` (and ``sharpen``)."""
        return {
            "bands": self.bands if not isinstance(self.bands, tuple) else list(self.bands),
            "method": self.method,
            "budget": self.budget,
            "steps": self.steps,
            "model": self.model,
            "offset": self.offset,
            "device": self.device,
            "amp": self.amp,
            "seed": self.seed,
            "cog": self.cog,
            "item": item,
        }


def run_sharpen_job(job: ProductJob, settings: SharpenSettings) -> Outcome:
    """Run one product (on a worker): skip it when its output is up to date, else sharpen it.

    Never raises for a bad product: the error becomes a failed :class:`~geo_med_sr.upscale.batch.Outcome`.
    """
    from geo_med_sr.sharpening.pipeline import sharpen, sharpen_request_for

    start = time.perf_counter()

    def outcome(status: str, error: str = "") -> Outcome:
        return Outcome(job.label, str(job.output), status, time.perf_counter() - start, error)

    try:
        options = settings.request_options(job.item)
        request = sharpen_request_for(job.input, **options)
        state = up_to_date(job, request)
        if state:
            return outcome(SKIPPED)
        if state is False and not settings.overwrite:
            raise stale_output(job)
        drop_orphan_sidecars(job.output)
        if settings.threads and (SHARPEN_METHODS.get(settings.method).weights != "none" or "torch" in sys.modules):
            import torch  # only for methods that run networks: a classical batch never imports it

            torch.set_num_threads(settings.threads)
        sharpen(
            job.input,
            job.output,
            **options,
            tile=settings.tile,
            overwrite=settings.overwrite,
            progress=False,
            request=request,
        )
        return outcome(DONE)
    except Exception as exc:  # a bad product, a bug or a library failure must not stop the others
        return outcome(FAILED, failure(job, exc))


def batch_sharpen(
    products: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    method: str = DEFAULT_METHOD,
    bands: Sequence[str] | str | None = None,
    budget: float | None = None,
    steps: int | None = None,
    model: str | None = None,
    offset: float | None = None,
    device: str = "auto",
    amp: bool = False,
    tile: int = 512,
    seed: int = 0,
    cog: bool = True,
    workers: int | None = None,
    scheduler: str | None = None,
    threads: int | None = None,
    overwrite: bool = False,
    vrt: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> BatchReport:
    """Sharpen every product into ``out_dir/<product name>.tif`` on a Dask cluster; see the module docstring.

    Args:
        products: product folders, ``.SAFE`` folders, STAC item or ItemCollection JSONs, or glob
            patterns of them (``"downloads/*.SAFE"``); one path or a list.
        out_dir: output folder (created if missing).
        method, bands, budget, steps, model, offset, device, amp, tile, seed, cog: as for
            :func:`~geo_med_sr.sharpening.pipeline.sharpen`, the same for every product (``bands``:
            band names; ``budget``: seconds per product; ``tile``: output pixels per tile side).
        workers, scheduler, threads, overwrite, vrt, progress: as for :func:`geo_med_sr.upscale.batch.batch`
            (``vrt``: a GDAL VRT mosaic of the sharpened products, which need the same bands and CRS).

    Returns:
        The :class:`~geo_med_sr.upscale.batch.BatchReport`; ``failed`` lists the products that failed.

    Raises:
        ConfigError/InputError/OutputError: before any work, for a bad option, a pattern matching
            nothing, an input that is not a product, two products of one name, an unusable
            ``out_dir`` or a batch already running there.
    """
    from geo_med_sr import options_check as check
    from geo_med_sr.sharpening.pipeline import check_options

    workers = check.WORKERS.check_optional(workers, "workers=")
    threads = check.WORKERS.check_optional(threads, "threads=")
    options = check_options(
        bands=bands,
        method=method,
        budget=budget,
        steps=steps,
        model=model,
        offset=offset,
        device=device,
        amp=amp,
        seed=seed,
        cog=cog,
    )
    tile = check.PATCH_SIZE.check(tile, "tile=")
    check.flag(overwrite, "overwrite=")
    check.flag(progress, "progress=", optional=True)
    products = [products] if isinstance(products, (str, os.PathLike)) else products
    start = time.perf_counter()
    out_dir = check_out_dir(out_dir)
    jobs = plan_products(products, out_dir)
    names = options.pop("bands")
    settings = SharpenSettings(
        **{k: v for k, v in options.items() if k != "item"},
        bands=tuple(names) if isinstance(names, list) else names,
        tile=int(tile),
        overwrite=overwrite,
    )
    return run_batch(
        jobs,
        out_dir,
        run_sharpen_job,
        settings,
        workers=workers,
        scheduler=scheduler,
        threads=threads,
        vrt=vrt,
        overwrite=overwrite,
        progress=progress,
        start=start,
    )
