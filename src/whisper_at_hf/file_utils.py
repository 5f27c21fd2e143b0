"""Writing files so that readers (a resumed run, another process, a later call) never see half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Writes `data` (text as UTF-8) to a temporary file beside `path`, flushes it to disk and renames it over
    `path` (creating the folder): a reader sees the old file or the whole new one, and a failed write leaves only the
    old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    handle = tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:  # e.g. a full disk, or a folder at `path`: leave no temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise


__all__ = ["atomic_write"]
