"""Datasets for head training: loading (Hub id, folder, CSV/JSON), label parsing and audio decoding.

Audio columns are cast with `decode=False` (datasets' own decoder needs torchcodec) and decoded by the package's
`whisper_at_hf.audio` (soundfile, ffmpeg for MP3 and other containers), so a missing or corrupt file becomes a
reported, skipped row instead of a crash.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio import AudioDecodeError, load_audio

logger = logging.getLogger(__name__)

SAMPLING_RATE = 16_000


# ----------------------------------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------------------------------
class LabelSet:
    """An ordered set of class names; turns a label cell (name, id, or a list of them) into a multi-hot vector.

    Unknown names raise a `ValueError` that lists the known ones.
    """

    def __init__(self, names: Sequence[str], separator: str | None = None):
        names = [str(name) for name in names]
        if not names:
            raise ValueError("The label set is empty: the training data has no labels.")
        if len(set(names)) != len(names):
            raise ValueError(f"Duplicate label names: {sorted({n for n in names if names.count(n) > 1})}")
        self.names = names
        self.separator = separator
        self.label2id = {name: i for i, name in enumerate(names)}

    def __len__(self) -> int:
        return len(self.names)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    def split_cell(self, cell: Any) -> list[Any]:
        """One dataset cell -> list of label names or ids."""
        if cell is None:
            return []
        if isinstance(cell, str):
            if self.separator:
                return [part.strip() for part in cell.split(self.separator) if part.strip()]
            return [cell]
        if isinstance(cell, (list, tuple, np.ndarray)):
            return list(cell)
        return [cell]

    def encode(self, cell: Any) -> np.ndarray:
        """Cell -> multi-hot `(num_labels,)` float32."""
        target = np.zeros(len(self.names), dtype=np.float32)
        for item in self.split_cell(cell):
            if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                if not 0 <= item < len(self.names):
                    raise ValueError(f"Label id {item} is out of range for {len(self.names)} classes.")
                target[item] = 1.0
            else:
                index = self.label2id.get(str(item))
                if index is None:
                    raise ValueError(f"Unknown label name {item!r}; known labels: {self.names}")
                target[index] = 1.0
        return target

    @classmethod
    def from_dataset(cls, dataset: Any, label_column: str, separator: str | None = None) -> "LabelSet":
        """Names from a `ClassLabel` (or a list of `ClassLabel`) feature, else the sorted distinct values."""
        feature = dataset.features[label_column]
        inner = getattr(feature, "feature", None)  # List(ClassLabel)
        for candidate in (feature, inner):
            if candidate is not None and hasattr(candidate, "names") and hasattr(candidate, "str2int"):
                return cls(candidate.names, separator)
        helper = cls(["_"], separator)
        values: set[str] = set()
        for cell in dataset[label_column]:
            for item in helper.split_cell(cell):
                if isinstance(item, (int, np.integer)):
                    raise ValueError(
                        f"Column {label_column!r} holds integer ids without a ClassLabel feature: pass the class "
                        "names with --class_names."
                    )
                values.add(str(item))
        return cls(sorted(values), separator)


def is_single_label(targets: np.ndarray) -> bool:
    """True when every row has exactly one positive class (accuracy is then reported too)."""
    targets = np.asarray(targets)
    return bool(targets.ndim == 2 and len(targets) and np.all(targets.sum(axis=1) == 1))


# ----------------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------------
def load_raw_datasets(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    data_dir: str | None = None,
    audio_column: str = "audio",
    cache_dir: str | None = None,
    token: str | None = None,
):
    """A `DatasetDict` from a Hub id / local folder (`dataset_name`, e.g. an audiofolder) or CSV/JSON files.

    Audio columns are cast with `decode=False`: rows keep `{"path", "bytes"}` and are decoded by [`decode_audio`].
    Relative paths in CSV/JSON files are resolved against the file's folder.
    """
    import datasets

    if dataset_name:
        raw = datasets.load_dataset(
            dataset_name, dataset_config_name, data_dir=data_dir, cache_dir=cache_dir, token=token
        )
    else:
        files = {"train": train_file, "validation": validation_file}
        files = {split: path for split, path in files.items() if path}
        if not files:
            raise ValueError("Give --dataset_name, or --train_file (and --validation_file).")
        suffixes = {os.path.splitext(path)[1].lower() for path in files.values()}
        if len(suffixes) != 1:
            raise ValueError(f"Data files must share one format, got {sorted(suffixes)}")
        builder = {".csv": "csv", ".json": "json", ".jsonl": "json", ".tsv": "csv"}.get(suffixes.pop())
        if builder is None:
            raise ValueError(f"Unsupported data file type: {sorted(files.values())} (use .csv, .tsv, .json, .jsonl)")
        kwargs = {"delimiter": "\t"} if any(p.endswith(".tsv") for p in files.values()) else {}
        raw = datasets.load_dataset(builder, data_files=files, cache_dir=cache_dir, **kwargs)
        for split, path in files.items():
            base = os.path.dirname(os.path.abspath(path))
            if audio_column not in raw[split].column_names:
                continue  # reported below
            features = raw[split].features.copy()
            features[audio_column] = datasets.Audio(decode=False)
            raw[split] = raw[split].map(
                lambda row: {audio_column: _resolve(row[audio_column], base)},
                features=features,
                desc=f"resolving {split} paths",
            )
    for split in raw:
        if audio_column not in raw[split].column_names:
            raise ValueError(
                f"Split {split!r} has no audio column {audio_column!r} (columns: {raw[split].column_names})."
            )
        raw[split] = raw[split].cast_column(audio_column, datasets.Audio(decode=False))
    return raw


def _resolve(path: Any, base: str) -> Any:
    """A path cell -> `{"path", "bytes"}` (the Audio storage layout), relative paths resolved against `base`."""
    if isinstance(path, str) and path and not os.path.isabs(path) and "://" not in path:
        path = os.path.join(base, path)
    return {"path": path, "bytes": None}


# ----------------------------------------------------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------------------------------------------------
def decode_audio(cell: Any, target_sr: int = SAMPLING_RATE) -> np.ndarray:
    """An undecoded audio cell (`{"path", "bytes"}`, a path, or a decoded `{"array", "sampling_rate"}` dict) -> mono
    float32 `(num_samples,)` at `target_sr`, through the package's decoder ([`whisper_at_hf.audio.load_audio`]).

    Raises [`AudioDecodeError`] naming the file and the problem; callers skip and count such rows.
    """
    return load_audio(cell, sampling_rate=target_sr).array


def crop_or_pad(audio: np.ndarray, seconds: float, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """First `seconds` of `audio`, zero-padded to exactly that length (the recipe trains on one window per clip)."""
    length = int(round(seconds * sampling_rate))
    return np.pad(audio[:length], (0, max(0, length - len(audio))))


@dataclass
class SkippedRows:
    """Rows dropped because their audio could not be read; reported once per split."""

    split: str
    total: int
    errors: dict[int, str]

    def report(self) -> str:
        if not self.errors:
            return f"{self.split}: all {self.total} audio files readable"
        first = "; ".join(list(self.errors.values())[:5])
        return (
            f"{self.split}: skipped {len(self.errors)} of {self.total} examples with unreadable audio "
            f"(first: {first})"
        )
