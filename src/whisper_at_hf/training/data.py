"""Datasets for head training: loading (Hub id, folder, CSV/JSON), label parsing and audio decoding.

Audio columns are cast with `decode=False` and decoded here with soundfile (datasets' own decoder needs
torchcodec), so a missing or corrupt file becomes a reported, skipped row instead of a crash.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
import torch

logger = logging.getLogger(__name__)

SAMPLING_RATE = 16_000


class AudioDecodeError(ValueError):
    """An audio entry that cannot be read (missing file, empty, not audio, NaN...)."""


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
def resample(audio: np.ndarray, orig_sr: int, target_sr: int = SAMPLING_RATE) -> np.ndarray:
    """Band-limited resampling through the FFT (no scipy/torchaudio needed); `audio` is 1-D."""
    if orig_sr == target_sr:
        return audio
    num = int(round(len(audio) * target_sr / orig_sr))
    spectrum = torch.fft.rfft(torch.from_numpy(audio.astype(np.float64)))
    keep = min(spectrum.shape[0], num // 2 + 1)
    out = torch.zeros(num // 2 + 1, dtype=spectrum.dtype)
    out[:keep] = spectrum[:keep]
    return (torch.fft.irfft(out, n=num) * (num / len(audio))).numpy().astype(np.float32)


def decode_audio(cell: Any, target_sr: int = SAMPLING_RATE) -> np.ndarray:
    """An undecoded audio cell (`{"path", "bytes"}`, a path, or a decoded dict) -> mono float32 at `target_sr`.

    Raises [`AudioDecodeError`] naming the file and the problem.
    """
    if isinstance(cell, dict) and "array" in cell:
        audio, sr, name = np.asarray(cell["array"], dtype=np.float32), int(cell["sampling_rate"]), cell.get("path")
    else:
        path = cell.get("path") if isinstance(cell, dict) else cell
        data = cell.get("bytes") if isinstance(cell, dict) else None
        name = path or "<bytes>"
        try:
            if data is not None:
                audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
            elif path is None:
                raise AudioDecodeError("audio cell holds neither a path nor bytes")
            elif not os.path.exists(path):
                raise AudioDecodeError(f"{path}: file not found")
            elif os.path.getsize(path) == 0:
                raise AudioDecodeError(f"{path}: file is empty")
            else:
                audio, sr = sf.read(path, dtype="float32", always_2d=True)
        except AudioDecodeError:
            raise
        except Exception as error:  # soundfile raises LibsndfileError / RuntimeError for non-audio data
            raise AudioDecodeError(f"{name}: cannot decode audio ({error})") from error
        audio = audio.mean(axis=1)  # downmix
    if audio.ndim != 1:
        audio = audio.reshape(len(audio), -1).mean(axis=1)
    if audio.size == 0:
        raise AudioDecodeError(f"{name}: no samples")
    if not np.isfinite(audio).all():
        raise AudioDecodeError(f"{name}: audio contains NaN or infinite samples")
    return resample(audio, sr, target_sr)


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
