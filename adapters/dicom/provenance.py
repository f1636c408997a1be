"""Provenance in the slices: ``meta["provenance"]`` as JSON in a private block.

The JSON (VR UT) is stored in every slice, in the private block of creator ``GEO_MED_SR`` in
group 0x0071 (element (0071,xx01)); :func:`read_folder_provenance` reads it back from one slice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from geo_med_sr.adapters.base import provenance_from_text
from geo_med_sr.adapters.dicom.detect import folder_files, sniff

#: private group, creator and element offset of the provenance JSON written into every slice.
PROVENANCE_GROUP = 0x0071
PROVENANCE_CREATOR = "GEO_MED_SR"
PROVENANCE_ELEMENT = 0x01


def add_provenance(ds: Dataset, provenance: dict[str, Any]) -> None:
    """Store ``provenance`` as JSON text (VR UT) in the private block ``GEO_MED_SR`` of group 0x0071."""
    block = ds.private_block(PROVENANCE_GROUP, PROVENANCE_CREATOR, create=True)
    block.add_new(PROVENANCE_ELEMENT, "UT", json.dumps(provenance, sort_keys=True))


def provenance_of(ds: Dataset) -> dict[str, Any] | None:
    """The provenance JSON of a slice header, or None when absent or not a JSON object."""
    try:
        return provenance_from_text(ds.private_block(PROVENANCE_GROUP, PROVENANCE_CREATOR)[PROVENANCE_ELEMENT].value)
    except KeyError:
        return None


#: how many DICOM files :func:`read_folder_provenance` looks at before giving up.
PROVENANCE_FILES_CHECKED = 16


def read_folder_provenance(path: Path) -> dict[str, Any] | None:
    """The provenance JSON stored in the first of our DICOM files in the folder ``path`` (headers only).

    Files that are unreadable or carry no ``GEO_MED_SR`` block (a DICOMDIR, a file someone
    added) are skipped; at most :data:`PROVENANCE_FILES_CHECKED` DICOM files are read.

    Returns None when ``path`` is not a folder, or none of those files carries provenance;
    never raises.
    """
    folder = Path(path)
    try:
        files = folder_files(folder) if folder.is_dir() else []
    except OSError:
        return None
    checked = 0
    for file in files:
        kind = sniff(file)
        if kind is None:
            continue
        checked += 1
        if checked > PROVENANCE_FILES_CHECKED:
            break
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True, force=kind == "raw")
        except Exception:  # pydicom raises many types for corrupt or partial files: not ours
            continue
        provenance = provenance_of(ds)
        if provenance is not None:
            return provenance
    return None
