"""File fingerprints shared by the pipeline and the model code (`models` may import `pipeline`,
never the reverse, so the one helper lives here)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in blocks so a large export never sits in memory."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
