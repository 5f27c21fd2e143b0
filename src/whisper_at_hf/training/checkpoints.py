"""Checkpoint folders that survive a crash: written under a temporary name and renamed when complete; on resume the
newest *intact* checkpoint is used, with a warning for each newer one that is not."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from ..file_utils import atomic_write as atomic_write_text  # the scripts' name for it

logger = logging.getLogger(f"transformers.{__name__}")  # under transformers: its verbosity rules ours

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def temporary_checkpoint_dir(final: str | os.PathLike) -> Path:
    """Where a checkpoint is written before [`publish_checkpoint`] renames it to `final`."""
    final = Path(final)
    return final.with_name(f".{final.name}.incomplete")


def publish_checkpoint(temporary: str | os.PathLike, final: str | os.PathLike) -> None:
    """Renames a completely written checkpoint folder into place (replacing an older folder of that name)."""
    import shutil

    final = Path(final)
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)


def checkpoints_newest_first(output_dir: str | os.PathLike) -> list[Path]:
    found = [
        (int(match.group(1)), path)
        for path in Path(output_dir).glob("checkpoint-*")
        if path.is_dir() and (match := CHECKPOINT_PATTERN.match(path.name))
    ]
    return [path for _, path in sorted(found, reverse=True)]


def checkpoint_problem(folder: str | os.PathLike, state_file: str) -> str | None:
    """What is wrong with a checkpoint folder (`None` if nothing found): a missing or unreadable JSON `state_file`,
    or a `.safetensors` file whose header or length does not check out."""
    folder = Path(folder)
    state = folder / state_file
    if not state.is_file():
        return f"no {state_file}"
    try:
        if not isinstance(json.loads(state.read_text(encoding="utf-8")), dict):
            return f"{state_file} holds no JSON object"
    except (OSError, ValueError) as error:
        return f"{state_file} is unreadable ({error.__class__.__name__}: {error})"
    from safetensors import safe_open

    for weights in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(weights), "pt") as handle:
                handle.keys()
        except Exception as error:  # noqa: BLE001 - safetensors raises several types for a damaged file
            return f"{weights.name} is corrupt ({error})"
    return None


def latest_intact_checkpoint(output_dir: str | os.PathLike, state_file: str) -> Path | None:
    """The newest `checkpoint-N` in `output_dir` without a [`checkpoint_problem`]; each newer, damaged one is logged
    as a warning and skipped."""
    for folder in checkpoints_newest_first(output_dir):
        problem = checkpoint_problem(folder, state_file)
        if problem is None:
            return folder
        logger.warning("Checkpoint %s is damaged (%s): falling back to an older one.", folder, problem)
    return None


__all__ = [
    "CHECKPOINT_PATTERN",
    "atomic_write_text",
    "checkpoint_problem",
    "checkpoints_newest_first",
    "latest_intact_checkpoint",
    "publish_checkpoint",
    "temporary_checkpoint_dir",
]
