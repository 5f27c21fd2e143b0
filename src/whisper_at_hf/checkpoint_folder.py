"""Writing a checkpoint folder: what `whisper-at-convert` and the training scripts both leave behind.

A folder holds the model (full, or head-only naming its base Whisper; with the code for `trust_remote_code`), the
processor, `label_names.json`, a model card (`README.md`) and any further JSON files (`eval_results.json`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
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


__all__ = ["write_checkpoint_folder"]
