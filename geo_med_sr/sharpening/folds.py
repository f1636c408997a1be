"""Leave-one-scene-out folds for the bundled sharpening models (every reported number on unseen ground).

A *scene* is one product folder (or STAC item / band file set) given to ``train``. Scenes that show
the same ground are never split between a fold's training and its held-out scene: two patches of one
Sentinel-2 tile (BigEarthNet's Upper Austria pair, same date) or one place seen on two dates (North
Karelia in autumn and under snow) share a *ground key*, the MGRS tile, and a fold holds out every
scene of its key together. Scenes with no tile (nominal georeferencing, e.g. the ``hvn2`` crops) are
their own key.

The key comes from, in order: the ``PRODUCT`` tag of the scene's first GeoTIFF (a SAFE/product id
holding ``_T<tile>_``), then the scene's name (``S2B_MSIL1C_20171022_T49JGM``, ``ben_at_33UUP_...``,
``S2A_29RKH_20200219_0_L2A``, ``majortom_la_48QUE_...``), then the name itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Fold", "ground_key", "leave_one_out", "tile_of"]

#: an MGRS tile id: UTM zone 01-60, latitude band C-X (no I, O), 100 km square (two letters)
_TILE = r"(?:0[1-9]|[1-5]\d|60)[C-HJ-NP-X][A-HJ-NP-Z][A-HJ-NP-V]"
_IN_PRODUCT = re.compile(rf"_T({_TILE})(?:_|$)")
_IN_NAME = re.compile(rf"(?:^|_)T?({_TILE})(?:_|$)")


def tile_of(text: str) -> str | None:
    """The MGRS tile named in a product id or a scene name, or None.

    >>> tile_of("S2B_MSIL1C_20180204T94161_N0206_R036_T35VPK_20180204T115809.SAFE")
    '35VPK'
    >>> tile_of("ben_at_33UUP_20170613_87_48"), tile_of("hvn2_iceland")
    ('33UUP', None)
    """
    found = _IN_PRODUCT.search(text) or _IN_NAME.search(text)
    return found.group(1) if found else None


def _product_tag(scene: Path) -> str | None:
    """The ``PRODUCT`` tag of the first GeoTIFF of ``scene`` (a folder or a file), if any."""
    files = sorted(scene.glob("*.tif")) if scene.is_dir() else [scene] if scene.suffix.lower() == ".tif" else []
    if not files:
        return None
    from geo_med_sr.adapters.geotiff.tags import dataset_tags

    return dataset_tags(files[0]).get("PRODUCT")


def _name(scene: Path) -> str:
    """A scene's name: its folder, or for a STAC item / band file the folder holding it."""
    return scene.name if scene.is_dir() else scene.parent.name


def ground_key(scene: str | Path) -> str:
    """``"tile:<MGRS>"`` when the scene's product or name says which tile it shows, else ``"scene:<name>"``."""
    scene = Path(scene)
    tile = tile_of(_product_tag(scene) or "") or tile_of(_name(scene))
    return f"tile:{tile}" if tile else f"scene:{_name(scene)}"


@dataclass(frozen=True)
class Fold:
    """One leave-one-out fold: the held-out scene, its ground key and the scenes trained on.

    ``train`` never holds ``held_out`` nor any scene with the same :func:`ground_key`.
    """

    held_out: Path
    key: str
    train: tuple[Path, ...]


def leave_one_out(scenes: Sequence[str | Path], keys: Sequence[str] | None = None) -> list[Fold]:
    """One fold per scene, in the given order; each trains on the scenes of every other ground key.

    Args:
        scenes: the scenes (folders, STAC items or first band files), each given once.
        keys: their ground keys when already known (default: :func:`ground_key` of each).

    Raises:
        ValueError: a scene given twice, or every scene on one ground (no fold would train on anything).
    """
    paths = [Path(s) for s in scenes]
    if len({p.resolve() for p in paths}) != len(paths):
        raise ValueError("a scene is given twice: each scene is held out once")
    keys = list(keys) if keys is not None else [ground_key(p) for p in paths]
    if len(keys) != len(paths):
        raise ValueError(f"{len(keys)} ground keys for {len(paths)} scenes")
    if len(set(keys)) < 2:
        raise ValueError("every scene shows the same ground: a leave-one-out fold would train on nothing")
    return [Fold(path, key, tuple(p for p, k in zip(paths, keys) if k != key)) for path, key in zip(paths, keys)]
