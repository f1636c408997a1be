"""Scanning a folder: reading the slice headers, grouping them by series, choosing one series.

One series is one ``SeriesInstanceUID``. The folder is not searched recursively; files that
are not DICOM, and DICOM objects that are not images (DICOMDIR, reports), are skipped. Only
series of single-frame grayscale slices are accepted: multi-frame (enhanced) and colour
images are refused with the reason and a way out.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from geo_med_sr.adapters.dicom.detect import folder_files, is_non_image_object, sniff
from geo_med_sr.adapters.dicom.header import SliceHeader, sop_class
from geo_med_sr.errors import InputError, file_error

#: SeriesInstanceUID -> the ``(path, header)`` of its slices, in file-name order.
SeriesGroups = dict[str, list[SliceHeader]]


def dicom_candidates(folder: Path) -> list[tuple[Path, str]]:
    """``(path, kind)`` of the files of ``folder`` that look like DICOM (kind from :func:`sniff`).

    Raises:
        InputError: ``folder`` is not a folder, or holds no DICOM file (sub-folders named).
    """
    if not folder.is_dir():
        raise file_error(InputError, folder, "a DICOM series must be given as the folder holding its files")
    candidates = [(p, sniff(p)) for p in folder_files(folder)]
    candidates = [(p, kind) for p, kind in candidates if kind is not None]
    if not candidates:
        subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir())
        hint = f" (sub-folders are not searched: {', '.join(subfolders[:5])})" if subfolders else ""
        raise file_error(
            InputError, folder, f"no DICOM files found{hint}; pass the folder that holds the series' files"
        )
    return candidates


def read_header(file: Path, kind: str) -> Dataset:
    """The header of one DICOM file without its pixel data (``kind == "raw"``: parsed with ``force``).

    Raises:
        InputError: naming the file, when pydicom cannot parse it or it holds no data element.
    """
    try:
        ds = pydicom.dcmread(file, stop_before_pixels=True, force=kind == "raw")
    except Exception as exc:  # re-raised with the file name: pydicom raises many types
        reason = " ".join(str(exc).split())[:300]
        raise file_error(
            InputError,
            file,
            f"not a readable DICOM file ({type(exc).__name__}: {reason}); replace or remove it",
        ) from exc
    if len(ds) == 0:
        raise file_error(
            InputError, file, "the DICOM file holds no data elements (empty or truncated); replace or remove it"
        )
    return ds


def scan_folder(folder: Path) -> tuple[SeriesGroups, dict[Path, bool]]:
    """Read the headers of every DICOM image file of ``folder`` and group them by series.

    Returns:
        The groups by SeriesInstanceUID (in file-name order), and for every grouped file
        whether it must be parsed with ``force`` (no "DICM" preamble).

    Raises:
        InputError: no DICOM file, an unreadable file, an image without SeriesInstanceUID, or
            only non-image objects.
    """
    forced: dict[Path, bool] = {}
    groups: SeriesGroups = {}
    skipped = 0
    for file, kind in dicom_candidates(folder):
        ds = read_header(file, kind)
        if is_non_image_object(ds):
            skipped += 1
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid:
            raise file_error(
                InputError,
                file,
                "SeriesInstanceUID is missing (incomplete or truncated file?); replace or remove it",
            )
        forced[file] = kind == "raw"
        groups.setdefault(uid, []).append((file, ds))
    if not groups:
        raise file_error(
            InputError,
            folder,
            f"no DICOM images found ({skipped} non-image DICOM objects such as DICOMDIR skipped)",
        )
    return groups, forced


def describe_series(uid: str, items: list[SliceHeader]) -> str:
    """One series for a message: ``"UID (description, N files)"``."""
    description = str(items[0][1].get("SeriesDescription", "") or "no description")
    return f"{uid} ({description}, {len(items)} files)"


def select_series(folder: Path, groups: SeriesGroups, series: str | None) -> tuple[str, list[SliceHeader]]:
    """The series ``series`` (a SeriesInstanceUID), or the only series when ``series`` is None.

    Raises:
        InputError: ``series`` is not in the folder, or None while the folder holds several
            series (the message lists them all).
    """
    listing = "; ".join(describe_series(uid, items) for uid, items in groups.items())
    if series is not None:
        key = str(series).strip()
        if key not in groups:
            raise file_error(InputError, folder, f"no DICOM series with SeriesInstanceUID {key}; available: {listing}")
        return key, groups[key]
    if len(groups) > 1:
        raise file_error(
            InputError,
            folder,
            f"the folder holds {len(groups)} DICOM series: {listing}; pass --series UID to choose one",
        )
    uid = next(iter(groups))
    return uid, groups[uid]


def check_image_kind(path: Path, ds: Dataset) -> None:
    """Refuse multi-frame, enhanced and colour images with a clear reason.

    Raises:
        InputError: naming the file, for a multi-frame/enhanced or colour image, or one
            without Rows/Columns.
    """
    frames = ds.get("NumberOfFrames", 1)
    try:
        frames = int(frames or 1)
    except (TypeError, ValueError):
        frames = 1
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds or frames > 1:
        name = pydicom.uid.UID(sop_class(ds)).name if sop_class(ds) else "unknown SOP class"
        raise file_error(
            InputError,
            path,
            f"multi-frame/enhanced DICOM ({name}, {frames} frames) is not supported; only series of"
            " single-frame slices can be read; convert it first (e.g. dcm2niix to NIfTI)",
        )
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        photometric = ds.get("PhotometricInterpretation", "?")
        raise file_error(
            InputError,
            path,
            f"colour DICOM ({photometric}, {samples} samples per pixel) is not supported;"
            " only grayscale slices can be read",
        )
    for keyword in ("Rows", "Columns"):
        if keyword not in ds:
            raise file_error(
                InputError, path, f"{keyword} is missing: the file is incomplete or truncated; replace or remove it"
            )
