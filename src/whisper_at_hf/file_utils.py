"""Files on disk: writing them so that readers (a resumed run, another process, a later call) never see half of one,
finding the audio files a command line names, and recognising the data files and saved datasets that annotate and
training read."""

from __future__ import annotations

import glob
import os
import tempfile
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


def staging_dir(parent: str | os.PathLike, prefix: str = ".tmp-") -> Path:
    """A new, empty, uniquely named folder in `parent`, to be filled and renamed into place: made with `mkdir`'s mode
    (0o777 less the umask: 0755 for the usual 022), as the final folder should have; `tempfile.mkdtemp` makes 0700,
    and the mode survives the rename."""
    while True:
        folder = Path(parent, f"{prefix}{uuid.uuid4().hex[:12]}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".aiff", ".aif", ".webm")


def expand_audio_paths(patterns: list[str]) -> list[str]:
    """Directories -> their audio files (recursively, sorted); globs -> matches; other paths are kept as given (a
    missing one is then reported as missing, not dropped)."""
    files: list[str] = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = [
                os.path.join(root, name)
                for root, _, names in os.walk(pattern)
                for name in names
                if name.lower().endswith(AUDIO_EXTENSIONS)
            ]
            files.extend(sorted(found))
        elif not os.path.exists(pattern) and glob.has_magic(pattern):
            matches = sorted(path for path in glob.glob(pattern, recursive=True) if os.path.isfile(path))
            files.extend(matches if matches else [pattern])
        else:
            files.append(pattern)
    return list(dict.fromkeys(files))


#: Extension of a data/list file -> the `datasets` builder that reads it.
DATA_FILE_BUILDERS: dict[str, str] = {
    ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet",
}  # fmt: skip


def is_saved_dataset(folder: str | os.PathLike) -> bool:
    """`folder` was written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    folder = Path(folder)
    return (folder / "dataset_dict.json").is_file() or (
        (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file()
    )


def check_output_dir(path: str) -> str | None:
    """Creates `path` if needed; returns why it cannot be used (not a folder, not writable), or `None`."""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"output directory {path!r} exists and is not a directory"
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        return f"cannot create output directory {path!r}: {error.strerror or error}"
    try:  # a real write (os.access says yes to root, and knows nothing of read-only mounts)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        return f"output directory {path!r} is not writable: {error.strerror or error}"
    return None



__all__ = [
    "AUDIO_EXTENSIONS",
    "DATA_FILE_BUILDERS",
    "atomic_write",
    "check_output_dir",
    "expand_audio_paths",
    "is_saved_dataset",
]
