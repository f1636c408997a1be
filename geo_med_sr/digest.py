"""Content hashes of files and inputs (SHA-256), for provenance and the batch request."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (read in 1 MB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_input(path: str | os.PathLike) -> str:
    """Hex SHA-256 of an input's content: the file, or for a folder (DICOM series) every regular
    file directly inside it, by name and content (so renaming, adding or editing a slice counts)."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(f"{item.name}\0{sha256_file(item)}\n".encode())
    return digest.hexdigest()
