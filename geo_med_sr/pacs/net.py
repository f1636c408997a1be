"""DICOM network basics shared by the DIMSE and DICOMweb clients: peers (``AE@HOST:PORT``), AE titles,
UIDs, and the received or retrieved instances (:class:`Instance`, saved as ``<SOPInstanceUID>.dcm``).

The modules that talk to other DICOM nodes build on it: :mod:`geo_med_sr.pacs.dimse` (a C-STORE
server, C-ECHO / C-STORE / C-FIND / C-GET clients, pynetdicom) and :mod:`geo_med_sr.pacs.dicomweb`
(WADO-RS and STOW-RS, dicomweb-client). The tools above them (:mod:`geo_med_sr.pacs.node`,
:mod:`geo_med_sr.pacs.fetch`) decide what to receive, fetch and send.

Every failure is a :mod:`geo_med_sr.errors` exception naming the peer (``AE@HOST:PORT`` or the URL).
"""

from __future__ import annotations

import errno
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from geo_med_sr.errors import ConfigError, GeoMedSRError, InputError, OutputError, file_error

__all__ = [
    "Instance",
    "Peer",
    "check_ae_title",
    "instance_of",
    "is_uid",
    "parse_peer",
    "read_instance",
    "save_instance",
    "storage_error",
]

#: a UID: digits and dots, at most 64 characters (safe as a file or folder name).
UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def is_uid(text: object) -> bool:
    """Whether ``text`` is a syntactically valid DICOM UID (digits and dots, 1-64 characters)."""
    return isinstance(text, str) and 0 < len(text) <= 64 and UID_PATTERN.match(text) is not None


@dataclass(frozen=True)
class Peer:
    """A DICOM application entity on the network: ``AE@HOST:PORT``."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def check_ae_title(title: str, what: str = "--ae-title") -> str:
    """``title`` when it is a valid AE title (1-16 characters, no backslash or control character).

    Raises:
        ConfigError: naming ``what``.
    """
    if not isinstance(title, str) or not title.strip() or len(title) > 16 or "\\" in title:
        raise ConfigError(f"{what} {title!r}: an AE title has 1 to 16 characters and no backslash")
    if any(ord(c) < 32 or ord(c) > 126 for c in title):
        raise ConfigError(f"{what} {title!r}: an AE title holds printable ASCII characters only")
    return title.strip()


def parse_peer(text: str, what: str = "peer") -> Peer:
    """``"AE@HOST:PORT"`` -> :class:`Peer` (an IPv6 host in brackets: ``AE@[::1]:104``).

    Raises:
        ConfigError: naming ``what`` and the expected form.
    """
    match = re.fullmatch(r"(?P<ae>[^@]+)@(?P<host>\[[^\]]+\]|[^:@\[\]]+):(?P<port>\d{1,5})", str(text).strip())
    if not match or not 0 < int(match["port"]) < 65536:
        raise ConfigError(f"{what} {text!r}: expected AE@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242")
    return Peer(check_ae_title(match["ae"], what), match["host"].strip("[]"), int(match["port"]))


@dataclass(frozen=True)
class Instance:
    """One received instance: the Part 10 bytes as sent, the header values the node decides on, the sender.

    ``pixel_spacing`` is (row spacing, column spacing) in mm; ``slice_thickness`` and
    ``spacing_between_slices`` in mm; ``expected`` the series' instance count the header announces
    (ImagesInAcquisition or NumberOfSlices), None when it says nothing.
    """

    data: bytes
    sop_uid: str
    series_uid: str
    study_uid: str
    modality: str
    series_description: str
    slice_thickness: float | None
    spacing_between_slices: float | None
    pixel_spacing: tuple[float, float] | None
    expected: int | None
    calling_ae: str
    peer_host: str
    peer_port: int

    def summary(self) -> dict[str, Any]:
        """The JSON-able header values and sender (everything but ``data``)."""
        return {k: v for k, v in self.__dict__.items() if k != "data"}


def _number(ds: Dataset, keyword: str, index: int | None = None) -> float | None:
    """The value of ``keyword`` (its ``index``-th value) as a finite float; None when missing, not a number,
    NaN or infinite (a header the sender wrote: nothing downstream may divide by it or round it)."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        number = float(value[index] if index is not None else value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _expected_count(ds: Dataset) -> int | None:
    for keyword in ("ImagesInAcquisition", "NumberOfSlices"):
        value = _number(ds, keyword)
        if value is not None and value >= 1:
            return int(value)
    return None


def instance_of(ds: Dataset, data: bytes, calling_ae: str = "", peer_host: str = "", peer_port: int = 0) -> Instance:
    """The :class:`Instance` of a decoded dataset ``ds`` whose Part 10 encoding is ``data``.

    Raises:
        InputError: SOPInstanceUID, SeriesInstanceUID or StudyInstanceUID missing or not a valid UID.
    """
    uids = {k: str(ds.get(k, "") or "") for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")}
    bad = [k for k, v in uids.items() if not is_uid(v)]
    if bad:
        raise InputError(f"instance from {calling_ae}: {', '.join(bad)} missing or not a valid UID")
    spacing = ds.get("PixelSpacing")
    pixel_spacing = None
    if spacing is not None and len(spacing) == 2:
        row, col = _number(ds, "PixelSpacing", 0), _number(ds, "PixelSpacing", 1)
        pixel_spacing = (row, col) if row and col else None
    return Instance(
        data=data,
        sop_uid=uids["SOPInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        study_uid=uids["StudyInstanceUID"],
        modality=str(ds.get("Modality", "") or ""),
        series_description=str(ds.get("SeriesDescription", "") or ""),
        slice_thickness=_number(ds, "SliceThickness"),
        spacing_between_slices=_number(ds, "SpacingBetweenSlices"),
        pixel_spacing=pixel_spacing,
        expected=_expected_count(ds),
        calling_ae=calling_ae,
        peer_host=peer_host,
        peer_port=int(peer_port or 0),
    )


def read_instance(path: Path) -> Instance:
    """The :class:`Instance` of a DICOM file (its header; ``data`` empty; no sender).

    Raises:
        InputError: naming the file, when it is not readable DICOM or lacks its UIDs.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return instance_of(ds, b"")
    except InputError as exc:
        raise file_error(InputError, path, str(exc)) from exc
    except Exception as exc:  # pydicom raises many types
        raise file_error(InputError, path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc


def save_instance(ds: Dataset, folder: Path) -> Path:
    """Save a retrieved dataset as ``folder/<SOPInstanceUID>.dcm`` (written whole, then renamed).

    Raises:
        InputError: the dataset has no valid SOPInstanceUID.
        OutputError: the file cannot be written (disk full, read-only folder...), naming it, with
            the system's reason on one line (never pydicom's traceback text); nothing is left behind.
    """
    uid = str(ds.get("SOPInstanceUID", "") or "")
    if not is_uid(uid):
        raise InputError("a retrieved instance has no valid SOPInstanceUID")
    path = folder / f"{uid}.dcm"
    tmp = folder / f".{uid}.part"
    try:
        ds.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(path, exc, "cannot be written") from exc
    return path


def storage_error(path: Path, exc: OSError, what: str) -> GeoMedSRError:
    """``OutputError("<path>: <what>: <system's reason>; <what to do>")`` for a failed write of ``path``.

    The reason is the ``strerror`` of the first ``OSError`` with an errno in ``exc``'s chain
    (:func:`geo_med_sr.adapters.dicom.write.system_reason`), never pydicom's traceback text.
    """
    from geo_med_sr.adapters.dicom.write import system_reason

    reason, code = system_reason(exc)
    hint = "free some space" if code in (errno.ENOSPC, errno.EDQUOT) else "check that the folder is writable"
    return file_error(OutputError, path, f"{what}: {reason}; {hint}")
