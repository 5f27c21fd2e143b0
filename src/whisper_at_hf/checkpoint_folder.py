"""Writing a checkpoint folder: what `whisper-at-convert` and the training scripts both leave behind.

A folder holds the model (full, or head-only naming its base Whisper; with the code for `trust_remote_code`), the
processor, `label_names.json`, a model card (`README.md`) and any further JSON files (`eval_results.json`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .labels import LabelNames


def write_checkpoint_folder(
    model: Any,
    output_dir: str | os.PathLike,
    *,
    head_only: bool,
    processor: Any = None,
    label_names: LabelNames | None = None,
    card: str | None = None,
    json_files: Mapping[str, Any] | None = None,
) -> Path:
    """Writes `model` (`save_pretrained(head_only=...)`), `processor` (anything with `save_pretrained`), the label
    names (default: the config's `id2label` in English), the card text as `README.md` and each of `json_files`
    (`{"eval_results.json": metrics}`) into `output_dir`, created if needed. Returns the folder."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir, head_only=head_only)
    if processor is not None:
        processor.save_pretrained(output_dir)
    if label_names is None:
        label_names = LabelNames.from_id2label(model.config.id2label)
    label_names.save(output_dir)
    for name, payload in (json_files or {}).items():
        (output_dir / name).write_text(json.dumps(payload, indent=2))
    if card is not None:
        (output_dir / "README.md").write_text(card, encoding="utf-8")
    return output_dir


def output_folder_problem(output_dir: str | os.PathLike, overwrite: bool) -> str | None:
    """Why `output_dir` cannot take a new checkpoint: a file is in the way, or (without `overwrite`) a folder that
    is not empty; `None` when it can."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        return f"{output_dir} exists and is not a folder"
    if not overwrite and output_dir.is_dir() and any(output_dir.iterdir()):
        return f"{output_dir} is not empty: pass --overwrite (overwrite=True) to replace it, or choose another folder"
    return None


@contextlib.contextmanager
def staged_folder(output_dir: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside `output_dir` to write a checkpoint into; moved into place when the block ends
    without an error (the old contents replaced: with `overwrite` only, else a non-empty `output_dir` is refused
    first), removed when it raises. A reader never sees a half-written checkpoint at `output_dir`.

    Raises:
        FileExistsError: `output_dir` is a file, or a non-empty folder without `overwrite`.
    """
    output_dir = Path(output_dir)
    problem = output_folder_problem(output_dir, overwrite)
    if problem:
        raise FileExistsError(problem)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    # os.mkdir gives the mode a plain folder gets (0o777 less the umask); mkdtemp's 0700 would survive the rename
    staging = output_dir.parent / f".{output_dir.name}.tmp-{uuid.uuid4().hex[:12]}"
    os.mkdir(staging, 0o777)
    try:
        yield staging
        retired = output_dir.parent / f".{output_dir.name}.old-{uuid.uuid4().hex[:8]}"
        if output_dir.exists():
            os.replace(output_dir, retired)
        os.replace(staging, output_dir)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


__all__ = ["output_folder_problem", "staged_folder", "write_checkpoint_folder"]
