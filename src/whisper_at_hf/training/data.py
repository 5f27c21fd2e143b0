"""Datasets for head training: loading (Hub id, folder, CSV/JSON), label parsing and audio decoding.

Audio columns are cast with `decode=False` (datasets' own decoder needs torchcodec) and decoded by the package's
`whisper_at_hf.audio` (soundfile, ffmpeg for MP3 and other containers), so a missing or corrupt file becomes a
reported, skipped row instead of a crash.
"""

from __future__ import annotations

import ast
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import AudioDecodeError, load_audio
from ..file_utils import AUDIO_EXTENSIONS, DATA_FILE_BUILDERS, is_saved_dataset

logger = logging.getLogger(f"transformers.{__name__}")  # under transformers: its verbosity rules ours

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
            stripped = cell.strip()
            if stripped.startswith("[") and stripped.endswith("]"):  # a list written into a CSV cell
                try:
                    parsed = ast.literal_eval(stripped)
                except (ValueError, SyntaxError):
                    parsed = None
                if isinstance(parsed, list):
                    return parsed
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


# ----------------------------------------------------------------------------------------------------------------------
# Loading: every way users hold labelled audio, none of which needs torchcodec
# ----------------------------------------------------------------------------------------------------------------------
# folder names the `audiofolder` convention maps to splits
SPLIT_FOLDERS = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
    "test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}  # fmt: skip
METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.parquet")


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def is_audiofolder(folder: str | os.PathLike) -> bool:
    """`folder` holds audio files (the `audiofolder` layout: split folders, class folders or a `metadata` file)."""
    folder = Path(folder)
    return folder.is_dir() and not is_saved_dataset(folder) and any(True for _ in _audio_files(folder)[:1])


def _read_metadata(path: Path) -> Any:
    import datasets

    if path.suffix == ".csv":
        return datasets.Dataset.from_csv(str(path))
    if path.suffix == ".jsonl":
        return datasets.Dataset.from_json(str(path))
    return datasets.Dataset.from_parquet(str(path))


def _audiofolder_split(folder: Path, audio_column: str) -> Any:
    """One split of an audiofolder: rows from `metadata.{csv,jsonl,parquet}` files (a `file_name` column, relative
    to the metadata file; every other column kept as is), else one row per audio file labelled by its folder."""
    import datasets

    metadata_files = sorted(p for p in folder.rglob("*") if p.name in METADATA_FILES)
    if metadata_files:
        parts = []
        for meta in metadata_files:
            table = _read_metadata(meta)
            file_column = next(
                (c for c in table.column_names if c == "file_name" or c.endswith("_file_name")), None
            )
            if file_column is None:
                raise ValueError(f"{meta} has no file_name column (columns: {table.column_names}).")
            cells = [
                {"path": str((meta.parent / name).resolve()) if name else None, "bytes": None}
                for name in table[file_column]
            ]
            table = table.remove_columns(file_column).add_column(audio_column, cells)
            parts.append(table)
        split = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    else:
        files = _audio_files(folder)
        columns: dict[str, Any] = {audio_column: [{"path": str(p.resolve()), "bytes": None} for p in files]}
        # the plain struct first: building with an Audio feature would encode every row through torchcodec
        features = {audio_column: {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}}
        parents = [p.parent.relative_to(folder) for p in files]
        if files and all(parent != Path(".") for parent in parents):  # class folders: label = folder name
            names = sorted({p.parent.name for p in files})
            columns["label"] = [names.index(p.parent.name) for p in files]
            features["label"] = datasets.ClassLabel(names=names)
        split = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
    return split.cast_column(audio_column, datasets.Audio(decode=False))


def load_audiofolder(root: str | os.PathLike, audio_column: str = "audio") -> Any:
    """An `audiofolder`-layout folder as a `DatasetDict` with undecoded audio, without datasets' `audiofolder` builder
    (which encodes every row through torchcodec in datasets 5.x).

    Splits are `train/`, `validation/` (`valid`, `val`, `dev`), `test/` (`testing`, `eval`) sub-folders, or the
    whole folder as `train`. Per split: `metadata.csv` / `metadata.jsonl` / `metadata.parquet` rows (a `file_name`
    column relative to the metadata file; label columns as written, e.g. a multi-label cell `"Speech|Music"` or
    `["Speech", "Music"]`), else a `label` `ClassLabel` from the class folders the files sit in.
    """
    import datasets

    root = Path(root)
    splits = {}
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        split = SPLIT_FOLDERS.get(child.name.lower())
        if split is not None and _audio_files(child):
            if split in splits:
                raise ValueError(f"{root} has two folders for the {split!r} split.")
            splits[split] = child
    if not splits:
        splits = {"train": root}
    return datasets.DatasetDict({name: _audiofolder_split(folder, audio_column) for name, folder in splits.items()})


def _needs_torchcodec(error: BaseException) -> bool:
    while error is not None:
        if isinstance(error, ImportError) and "torchcodec" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def load_audio_dataset(
    name_or_path: str | os.PathLike,
    config_name: str | None = None,
    data_dir: str | None = None,
    audio_column: str = "audio",
    cache_dir: str | None = None,
    token: str | None = None,
    revision: str | None = None,
) -> Any:
    """A `DatasetDict` with an undecoded audio column (`Audio(decode=False)`: `{"path", "bytes"}` cells decoded by
    [`decode_audio`]) from any of: an `audiofolder` layout (local, or `"audiofolder"` with `data_dir`), a
    `save_to_disk` folder, a folder of Parquet/CSV/JSON files, a Parquet/CSV/JSON file, or a Hub dataset id (Parquet
    with an `Audio` feature; a Hub repo in the audiofolder layout is downloaded and read as a local folder).

    None of these needs torchcodec, which datasets 5.x uses to encode and decode audio.
    """
    import datasets

    name = os.fspath(name_or_path)
    if name == "audiofolder":
        if not data_dir:
            raise ValueError('dataset "audiofolder" needs data_dir (the folder holding the audio).')
        name, data_dir = data_dir, None
    local = Path(name) / data_dir if data_dir and Path(name).is_dir() else Path(name)
    if local.is_dir():
        if is_saved_dataset(local):
            raw = datasets.load_from_disk(str(local))
            raw = raw if isinstance(raw, datasets.DatasetDict) else datasets.DatasetDict({"train": raw})
        elif is_audiofolder(local):
            raw = load_audiofolder(local, audio_column)
        else:
            raw = datasets.load_dataset(str(local), config_name, cache_dir=cache_dir)
    elif local.is_file():
        builder = DATA_FILE_BUILDERS.get(local.suffix.lower())
        if builder is None:
            raise ValueError(f"{local}: unsupported data file (use .parquet, .csv, .tsv, .json or .jsonl).")
        kwargs = {"delimiter": "\t"} if local.suffix.lower() == ".tsv" else {}
        raw = datasets.load_dataset(builder, data_files={"train": str(local)}, cache_dir=cache_dir, **kwargs)
        raw = _resolve_relative_paths(raw, audio_column, str(local.parent))
    else:
        try:
            raw = datasets.load_dataset(
                name, config_name, data_dir=data_dir, cache_dir=cache_dir, token=token, revision=revision
            )
        except Exception as error:  # noqa: BLE001 - only the torchcodec case is handled, the rest re-raised
            if not _needs_torchcodec(error):
                raise
            # a Hub repo of raw audio files (audiofolder layout): fetch the files, read them as a local folder
            from huggingface_hub import snapshot_download

            logger.info("%s is an audio-file repo; reading its files directly (no torchcodec needed).", name)
            folder = snapshot_download(name, repo_type="dataset", revision=revision, token=token, cache_dir=cache_dir)
            raw = load_audiofolder(Path(folder) / data_dir if data_dir else folder, audio_column)
    for split in raw:
        if audio_column in raw[split].column_names:
            raw[split] = raw[split].cast_column(audio_column, datasets.Audio(decode=False))
    return raw


def _resolve_relative_paths(raw: Any, audio_column: str, base: str) -> Any:
    """CSV/JSON path cells of every split -> `{"path", "bytes"}`, relative paths resolved against `base`."""
    for split in raw:
        raw[split] = _resolve_split_paths(raw[split], audio_column, base, split)
    return raw


def _resolve_split_paths(split: Any, audio_column: str, base: str, name: str = "data") -> Any:
    import datasets

    if audio_column not in split.column_names or isinstance(split.features[audio_column], datasets.Audio):
        return split
    features = split.features.copy()
    features[audio_column] = datasets.Audio(decode=False)
    return split.map(
        lambda row: {audio_column: _resolve(row[audio_column], base)}, features=features, desc=f"resolving {name} paths"
    )


def describe_data_source(
    dataset_name: str | None = None, train_file: str | None = None, data_dir: str | None = None
) -> tuple[str, str]:
    """`(name, type)` of the training data for the model card: a Hub dataset is `(id, id)`; local data is named by
    its folder or file and typed by its loader (`audiofolder`, `arrow` for `save_to_disk`, `parquet`, `csv`,
    `json`)."""
    if dataset_name and dataset_name != "audiofolder" and not Path(dataset_name).exists():
        return dataset_name, dataset_name
    if dataset_name:
        folder = Path(data_dir) if dataset_name == "audiofolder" else Path(dataset_name)
        if folder.is_file():
            return folder.stem, DATA_FILE_BUILDERS.get(folder.suffix.lower(), "data")
        kind = "arrow" if is_saved_dataset(folder) else "audiofolder" if is_audiofolder(folder) else "parquet"
        if kind == "parquet" and not any(folder.rglob("*.parquet")):
            kind = next((b for s, b in DATA_FILE_BUILDERS.items() if any(folder.rglob(f"*{s}"))), "data")
        return folder.resolve().name, kind
    if train_file:
        path = Path(train_file)
        return path.resolve().parent.name or path.stem, DATA_FILE_BUILDERS.get(path.suffix.lower(), "data")
    return "held-out data", "data"


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
    """A `DatasetDict` from a Hub id / local folder (`dataset_name`, see [`load_audio_dataset`]) or CSV/JSON files.

    Audio columns are cast with `decode=False`: rows keep `{"path", "bytes"}` and are decoded by [`decode_audio`].
    Relative paths in CSV/JSON files are resolved against the file's folder.
    """
    import datasets

    if dataset_name:
        raw = load_audio_dataset(
            dataset_name, dataset_config_name, data_dir=data_dir, audio_column=audio_column, cache_dir=cache_dir,
            token=token,
        )  # fmt: skip
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
            raw[split] = _resolve_split_paths(raw[split], audio_column, os.path.dirname(os.path.abspath(path)), split)
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


def _audio_key(cell: Any) -> str:
    """What identifies a row's audio: its path, else a hash of its bytes."""
    import hashlib

    if isinstance(cell, dict):
        if cell.get("path"):
            return os.path.abspath(str(cell["path"])) if "://" not in str(cell["path"]) else str(cell["path"])
        if cell.get("bytes") is not None:
            return hashlib.blake2b(cell["bytes"], digest_size=16).hexdigest()
    return repr(cell)


def label_problems(
    split: Any, name: str, targets: np.ndarray, audio_column: str, seen_elsewhere: set[str] | None = None
) -> tuple[list[str], set[str]]:
    """Reports on one split's rows, each with a count and the first row numbers: rows without any label (kept, as
    clips where no class is present), rows repeating an earlier row's audio and labels (kept), and rows whose audio
    is also in `seen_elsewhere` (e.g. evaluation clips that are training clips). Returns `(reports, audio keys)`."""
    reports = []
    targets = np.asarray(targets)
    empty = np.flatnonzero(targets.sum(axis=1) == 0) if len(targets) else np.array([], dtype=int)
    if len(empty):
        reports.append(
            f"{name}: {len(empty)} of {len(targets)} rows have an empty label (rows {empty[:5].tolist()}); they are "
            "used as clips where none of the classes is present"
        )
    keys = [_audio_key(cell) for cell in split[audio_column]]
    first_seen: dict[tuple[str, bytes], int] = {}
    duplicates = []
    for row, (key, target) in enumerate(zip(keys, targets)):
        signature = (key, np.asarray(target).tobytes())
        if signature in first_seen:
            duplicates.append(row)
        else:
            first_seen[signature] = row
    if duplicates:
        reports.append(
            f"{name}: {len(duplicates)} of {len(targets)} rows duplicate an earlier row's audio and labels "
            f"(rows {duplicates[:5]}); each copy is used, which weights those clips more"
        )
    if seen_elsewhere:
        shared = [row for row, key in enumerate(keys) if key in seen_elsewhere]
        if shared:
            reports.append(
                f"{name}: {len(shared)} of {len(targets)} rows use audio that is also in the training split (rows "
                f"{shared[:5]}); metrics on them are not held-out"
            )
    return reports, set(keys)

