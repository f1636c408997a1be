"""Build the QGIS plugin zip: ``dist/geo_med_sr_qgis-<version>.zip`` (what "Install from ZIP" takes).

Usage (from the repository root; any Python >= 3.8, no QGIS needed)::

    .venv/bin/python integrations/qgis/build.py [--dist DIR]

The zip holds the folder ``geo_med_sr_qgis/`` at its root (the plugin's id), with the files the
QGIS plugin repository requires (``__init__.py``, ``metadata.txt``, ``LICENSE``) and no
``__pycache__``, ``*.pyc`` or hidden files. The version is the ``version=`` of metadata.txt.
Entries have a fixed timestamp, so the same sources give the same zip, byte for byte.
"""

from __future__ import annotations

import argparse
import configparser
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "geo_med_sr_qgis"
REPO = HERE.parents[1]
#: files that must be in the package (the QGIS plugin repository refuses a zip without them).
REQUIRED = ("__init__.py", "metadata.txt", "LICENSE")
#: metadata the QGIS plugin repository requires (its validator's PLUGIN_REQUIRED_METADATA).
REQUIRED_METADATA = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about", "tracker")
REQUIRED_METADATA += ("repository",)
_EPOCH = (2020, 1, 1, 0, 0, 0)


def metadata(plugin: Path = PLUGIN) -> dict[str, str]:
    """The ``[general]`` section of the plugin's metadata.txt."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    parser.read(plugin / "metadata.txt", encoding="utf-8")
    return dict(parser["general"])


def plugin_files(plugin: Path = PLUGIN) -> list[Path]:
    """The files that go into the zip, sorted: no caches, bytecode or hidden files."""
    files = []
    for path in sorted(plugin.rglob("*")):
        parts = path.relative_to(plugin).parts
        if path.is_dir() or any(p.startswith(".") or p == "__pycache__" for p in parts):
            continue
        if path.suffix in (".pyc", ".pyo"):
            continue
        files.append(path)
    return files


def build(dist: Path = REPO / "dist", plugin: Path = PLUGIN) -> Path:
    """Write ``dist/<plugin folder>-<version>.zip`` and return its path.

    Raises:
        SystemExit: a required file or metadata entry is missing (one line naming it).
    """
    meta = metadata(plugin)
    missing = [key for key in REQUIRED_METADATA if not meta.get(key, "").strip()]
    missing += [name for name in REQUIRED if not (plugin / name).is_file()]
    if missing:
        raise SystemExit(f"build.py: error: {plugin}: missing {', '.join(missing)}; add them before building")
    dist.mkdir(parents=True, exist_ok=True)
    target = dist / f"{plugin.name}-{meta['version']}.zip"
    partial = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in plugin_files(plugin):
            info = zipfile.ZipInfo(f"{plugin.name}/{path.relative_to(plugin).as_posix()}", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the geo_med_sr QGIS plugin zip.")
    parser.add_argument("--dist", type=Path, default=REPO / "dist", help="output folder (default: <repo>/dist)")
    args = parser.parse_args(argv)
    print(build(args.dist))
    return 0


if __name__ == "__main__":
    sys.exit(main())
