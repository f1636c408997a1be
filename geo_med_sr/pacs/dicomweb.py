"""DICOMweb (dicomweb-client): :func:`wado_series` (WADO-RS into a folder) and :func:`stow_files` (STOW-RS).

Every failure is a :mod:`geo_med_sr.errors` exception naming the URL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydicom

from geo_med_sr.errors import InputError, OutputError, file_error
from geo_med_sr.pacs.net import save_instance

__all__ = ["stow_files", "wado_series"]

log = logging.getLogger("geo_med_sr.dicom.net")


def _dicomweb_client(url: str) -> Any:
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(url=url.rstrip("/"))


def _http_problem(exc: Exception) -> str:
    """One line for a requests/HTTP failure: the status and reason, or the connection problem."""
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} {response.reason}"
    return f"cannot connect ({type(exc).__name__})"


def wado_series(url: str, study_uid: str, series_uid: str, folder: Path) -> int:
    """Retrieve a series with WADO-RS from the DICOMweb root ``url`` into ``folder``; returns the files written.

    Raises:
        InputError: naming the series URL: the server cannot be reached, answers an HTTP error
            (404: no such series), or returns no instance.
    """
    import requests

    where = f"{url.rstrip('/')}/studies/{study_uid}/series/{series_uid}"
    client = _dicomweb_client(url)
    count = 0
    try:
        for ds in client.iter_series(study_uid, series_uid):
            save_instance(ds, Path(folder))
            count += 1
    except requests.RequestException as exc:
        raise file_error(InputError, where, f"WADO-RS failed: {_http_problem(exc)}") from exc
    if not count:
        raise file_error(InputError, where, "WADO-RS returned no instance")
    log.info("retrieved %d instance(s) from %s", count, where)
    return count


def stow_files(url: str, files: Sequence[Path], batch: int = 16) -> int:
    """Store ``files`` with STOW-RS at the DICOMweb root ``url``, ``batch`` instances per request.

    Returns:
        The number of instances the server stored.

    Raises:
        OutputError: naming the URL: the server cannot be reached, answers an HTTP error, or
            lists failed instances.
    """
    import requests

    client = _dicomweb_client(url)
    stored = 0
    for start in range(0, len(files), batch):
        datasets = [pydicom.dcmread(f) for f in files[start : start + batch]]
        try:
            answer = client.store_instances(datasets)
        except requests.RequestException as exc:
            raise file_error(
                OutputError, url, f"STOW-RS failed after {stored} instance(s) stored: {_http_problem(exc)}"
            ) from exc
        failed = list(answer.get("FailedSOPSequence", []) if answer is not None else [])
        if failed:
            raise file_error(OutputError, url, f"STOW-RS refused {len(failed)} instance(s) of {len(datasets)}")
        stored += len(datasets)
    log.info("stored %d instance(s) at %s", stored, url)
    return stored
