"""Recognising DICOM files in a folder and DICOM objects that are not images.

A file counts as DICOM when it has the "DICM" marker at byte 128 (the Part 10 preamble), a
DICOM file-name suffix, or starts like a preamble-less dataset (a group 0002/0008 tag). Complete
DICOM objects that are not images (DICOMDIR, structured reports, presentation states, private
vendor objects) are recognised so the reader can skip them.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import MediaStorageDirectoryStorage

from geo_med_sr.adapters.dicom.header import sop_class

#: file-name endings that mark a DICOM file even without the "DICM" preamble.
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


def sniff(path: Path) -> str | None:
    """How ``path`` can be parsed as DICOM, or None when it is not a DICOM file.

    Returns:
        ``"preamble"`` for a file with "DICM" at byte 128, ``"raw"`` for a DICOM suffix or a
        preamble-less file that starts with a group 0002/0008 tag (parsed with ``force``).
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return None
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "preamble"
    if path.name.lower().endswith(DICOM_SUFFIXES):
        return "raw"
    if len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[3:4] == b"\x00":
        return "raw"
    return None


def folder_files(folder: Path) -> list[Path]:
    """Regular files directly inside ``folder`` (not recursive), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file())


def is_non_image_object(ds: Dataset) -> bool:
    """True for complete DICOM objects that are not images (DICOMDIR, SR, presentation states)."""
    sop = sop_class(ds)
    if sop == MediaStorageDirectoryStorage:
        return True
    if not sop or "Rows" in ds or "PixelData" in ds:
        return False
    name = pydicom.uid.UID(sop).name
    if name != sop:  # a standard SOP class: images have "Image" in their name
        return "Image" not in name
    return not sop.startswith("1.2.840.10008.")  # a private non-image object (e.g. a vendor report)
