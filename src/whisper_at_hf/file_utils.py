"""Writing files so that readers (a resumed run, another process, a later call) never see half of one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Writes `data` (text as UTF-8) to a temporary file beside `path`, flushes it to disk and renames it over
    `path` (creating the folder): a reader sees the old file or the whole new one.

    The file gets the mode a plain `open(path, "w")` would give (0o666 less the umask: 0644 for the usual 022);
    `tempfile` would create it 0600, and the mode survives the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


__all__ = ["atomic_write"]
