"""`whisper-at-annotate`: transcribe and tag a whole corpus into Parquet shards, over any number of Accelerate
processes, resumable, with failures recorded.

    whisper-at-annotate clips/ "more/*.flac" --model DIR_OR_ID --output-dir out
    whisper-at-annotate corpus.csv --audio-column file --model DIR_OR_ID --output-dir out --tags-only
    accelerate launch -m whisper_at_hf.annotate user/dataset --split train --streaming --model ... --output-dir out

Input: audio files, folders and globs; one CSV / JSON / JSON Lines / Parquet list (`--audio-column` holds paths,
relative to the list's folder); or a `datasets` dataset: a `save_to_disk` folder, a folder of data files, or a Hub
id (`--streaming` reads it without downloading it first). `datasets` `Audio` columns are read undecoded and
decoded by [`whisper_at_hf.audio.load_audio`].

Output, readable with `load_dataset("parquet", data_dir=OUT)`:

    OUT/data/train-00000.parquet   one row per readable input of input shard 0 (see `build_features` for columns)
    OUT/manifests/shard-00000.json that shard's record (rows, errors, timing, the Parquet file's size and sha256);
                                   written last, it marks the shard done (once its file matches it)
    OUT/manifest.json              model, revision, options and input; totals once the run is complete
    OUT/errors.jsonl               one line per input that could not be annotated: index, id, error

Work split: the input is cut into shards of `--shard-size` consecutive rows. The shards not yet done are dealt
round-robin to the processes (a deterministic, disjoint split that every process computes alike from the shard
records), so a rerun of the same command only does the shards that are missing, whatever the number of processes;
a killed run loses at most the shards in progress. Each shard is written to a temporary file and renamed into
place. The output folder must be one folder that every process sees (a local disk, or a shared file system across
nodes).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import glob
import hashlib
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from whisper_at_hf_cli.annotate import TOOL, parse_args

from .audio import Audio, AudioDecodeError, load_audio
from .file_utils import AUDIO_EXTENSIONS, DATA_FILE_BUILDERS, atomic_write, expand_audio_paths, is_saved_dataset
from .hub_upload import upload_folder
from .labels import model_label_names
from .model_sources import checkpoint_fingerprint, resolve_checked_model
from .options import check_language_and_task
from .original_variants import default_variant
from .tags import name_events, top_tags, window_bounds, windows_for_duration

SAMPLING_RATE = 16000
DATA_DIR = "data"
SHARD_RECORDS_DIR = "manifests"
MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"
# Settings that change the rows: a rerun into the same folder must use the same ones (or pass --overwrite).
_RESULT_OPTIONS = (
    "tags_only", "top_k", "tag_threshold", "at_time_res", "label_language", "save_probs", "segments", "language",
    "task", "num_beams", "max_new_tokens", "dtype", "at_low_compute", "events",
)


def shard_file(index: int) -> str:
    return f"{DATA_DIR}/train-{index:05d}.parquet"


def shard_record_file(index: int) -> str:
    return f"{SHARD_RECORDS_DIR}/shard-{index:05d}.json"


# --------------------------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------------------------
def result_options(args: argparse.Namespace) -> dict[str, Any]:
    """The settings that shape the rows (recorded in the manifest and in every row)."""
    return {name: getattr(args, name) for name in _RESULT_OPTIONS}


# --------------------------------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class CorpusInput:
    """The input as a `datasets` dataset with an audio column (paths, or undecoded `Audio` dicts).

    `num_rows` is `None` for a stream of unknown length. `base_dir` resolves relative paths of a list file.
    """

    dataset: Any
    audio_column: str
    id_column: str | None
    num_rows: int | None
    description: dict[str, Any]
    base_dir: str | None = None
    streaming: bool = False


def _looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return (1 <= len(parts) <= 2 and all(part and not part.startswith((".", "~")) for part in parts)
            and not glob.has_magic(text) and not text.lower().endswith(AUDIO_EXTENSIONS)
            and not any(character in text for character in " \\"))


def _missing_input_kind(name: str) -> str:
    """What a single input that does not exist locally is: `"hub"` (a dataset id, tried on the Hub) or `"files"`
    (a missing audio file, reported per input); [`FileNotFoundError`] "no such folder" when it looks like a path
    (a path separator beyond `org/name`, a leading `.` / `~`, a file extension) or the Hub is off (HF_HUB_OFFLINE)."""
    if name.lower().endswith(AUDIO_EXTENSIONS):
        return "files"
    if not _looks_like_repo_id(name) or os.path.splitext(name)[1]:
        raise FileNotFoundError(f"no such file or folder: {name!r}")
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise FileNotFoundError(f"no such folder: {name!r} (nor, with HF_HUB_OFFLINE set, a Hub dataset to read)")
    return "hub"


def _has_audio_files(path: str) -> bool:
    return any(name.lower().endswith(AUDIO_EXTENSIONS) for _, _, names in os.walk(path) for name in names)


def open_input(args: argparse.Namespace) -> CorpusInput:
    """Turns the `inputs` arguments into a [`CorpusInput`]."""
    import datasets

    inputs = args.inputs
    single = inputs[0] if len(inputs) == 1 else None
    kind, base_dir = "files", None
    if single is not None:
        extension = os.path.splitext(single)[1].lower()
        if os.path.isfile(single) and extension in DATA_FILE_BUILDERS:
            kind, base_dir = "list", os.path.dirname(os.path.abspath(single))
        elif os.path.isdir(single) and is_saved_dataset(single):
            kind = "saved"
        elif os.path.isdir(single) and not _has_audio_files(single):
            kind = "data_folder"
        elif not os.path.exists(single) and not glob.has_magic(single):
            kind = _missing_input_kind(single)

    if kind == "files":
        files = expand_audio_paths(inputs)
        if not files:
            raise ValueError("no audio files found in " + " ".join(inputs))
        dataset = datasets.Dataset.from_dict({"id": files, "audio": files})
        listing = hashlib.sha1("\n".join(files).encode()).hexdigest()
        return _finish_input(args, dataset, "audio", "id", {"kind": "files", "files": len(files), "first": files[0],
                                                              "last": files[-1], "sha1": listing}, None)
    if kind == "list":
        builder = DATA_FILE_BUILDERS[os.path.splitext(single)[1].lower()]
        kwargs = {"delimiter": "\t"} if single.lower().endswith(".tsv") else {}
        dataset = datasets.load_dataset(builder, data_files=os.path.abspath(single), split="train",
                                        streaming=args.streaming, **kwargs)
        description = {"kind": "list", "path": os.path.abspath(single)}
    elif kind == "saved":
        dataset = datasets.load_from_disk(single)
        if isinstance(dataset, datasets.DatasetDict):
            dataset = dataset[args.split]
        if args.streaming:
            dataset = dataset.to_iterable_dataset()
        description = {"kind": "saved", "path": os.path.abspath(single), "split": args.split}
    else:
        try:
            dataset = datasets.load_dataset(single, args.dataset_config, split=args.split, streaming=args.streaming,
                                            revision=args.dataset_revision)
        except (ConnectionError, FileNotFoundError) as error:  # datasets' DatasetNotFoundError is a FileNotFoundError
            if kind != "hub":
                raise
            raise FileNotFoundError(f"no such folder {single!r}, and no Hub dataset of that name could be read "
                                    f"({type(error).__name__}: {str(error).splitlines()[0][:300]})") from error
        description = {"kind": "hub" if kind == "hub" else "data_folder",
                       "path": single if kind == "hub" else os.path.abspath(single), "config": args.dataset_config,
                       "split": args.split, "revision": args.dataset_revision}
    return _finish_input(args, dataset, args.audio_column, args.id_column, description, base_dir)


def _finish_input(args, dataset, audio_column, id_column, description, base_dir) -> CorpusInput:
    import datasets

    columns = dataset.column_names or list((dataset.features or {}).keys())
    if columns and audio_column not in columns:
        raise ValueError(f"no audio column {audio_column!r} in the input; its columns are {columns}. "
                         "Name it with --audio-column.")
    if id_column is not None and columns and id_column not in columns:
        raise ValueError(f"no id column {id_column!r} in the input; its columns are {columns}.")
    if id_column is None and "id" in (columns or []):
        id_column = "id"
    features = dataset.features or {}
    if isinstance(features.get(audio_column), datasets.Audio):
        # Undecoded: `datasets` would decode through torchcodec; `load_audio` reads the bytes / path instead.
        dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))
    streaming = isinstance(dataset, datasets.IterableDataset)
    if streaming:
        num_rows = None
        split_info = (dataset.info.splits or {}).get(args.split) if dataset.info else None
        if split_info is not None and split_info.num_examples:
            num_rows = split_info.num_examples
    else:
        num_rows = len(dataset)
    if args.max_inputs is not None:
        dataset = dataset.take(args.max_inputs) if streaming else dataset.select(range(min(args.max_inputs, num_rows)))
        num_rows = args.max_inputs if num_rows is None else min(args.max_inputs, num_rows)
        description = {**description, "max_inputs": args.max_inputs}
    description = {**description, "audio_column": audio_column, "id_column": id_column}
    return CorpusInput(dataset, audio_column, id_column, num_rows, description, base_dir, streaming)


@dataclass
class Item:
    """One input: its row number in the input, its id, its audio value and (if any) its path."""

    index: int
    id: str
    audio: Any
    path: str | None


def make_item(corpus: CorpusInput, index: int, row: dict) -> Item:
    audio = row[corpus.audio_column]
    path = audio if isinstance(audio, str) else (audio.get("path") if isinstance(audio, dict) else None)
    if isinstance(audio, str) and corpus.base_dir and not os.path.isabs(audio):
        audio = os.path.join(corpus.base_dir, audio)
    elif isinstance(audio, dict) and not audio.get("bytes") and audio.get("array") is None and audio.get("path"):
        if corpus.base_dir and not os.path.isabs(audio["path"]):
            audio = {**audio, "path": os.path.join(corpus.base_dir, audio["path"])}
    if corpus.id_column is not None:
        name = str(row[corpus.id_column])
    else:
        name = path or str(index)
    return Item(index=index, id=name, audio=audio, path=path)


def decoded_batches(items: list[Item], batch_size: int, pool: ThreadPoolExecutor | None
                    ) -> Iterator[tuple[list[Item], list[Audio | AudioDecodeError]]]:
    """Batches of items with their audio (or why it could not be read). With a pool, the next batch is decoded
    while the caller runs the model on this one (one batch ahead: memory stays bounded)."""
    batches = [items[begin : begin + batch_size] for begin in range(0, len(items), batch_size)]

    def attempt(item: Item) -> Audio | AudioDecodeError:
        try:
            return decode(item)
        except AudioDecodeError as error:
            return error

    if pool is None:
        for batch in batches:
            yield batch, [attempt(item) for item in batch]
        return
    ahead = [pool.submit(attempt, item) for item in batches[0]] if batches else []
    for position, batch in enumerate(batches):
        current = ahead
        if position + 1 < len(batches):
            ahead = [pool.submit(attempt, item) for item in batches[position + 1]]
        yield batch, [future.result() for future in current]


def decode(item: Item) -> Audio:
    """The item's audio as 16 kHz mono float32; [`AudioDecodeError`] naming the input otherwise."""
    if item.audio is None:
        raise AudioDecodeError(item.id, "no audio in this row")
    audio = load_audio(item.audio, SAMPLING_RATE)
    audio.source = item.id
    return audio


# --------------------------------------------------------------------------------------------------------------------
# Annotation
# --------------------------------------------------------------------------------------------------------------------
def build_features(args: argparse.Namespace):
    """The `datasets` features of an output row.

    - `index` (int64): row number in the input; `id` (string); `path` (string, or null for in-memory audio);
    - `duration` (float32): seconds of decoded audio;
    - `text`, `language` (strings; null with `--tags-only`); `segments` (with `--segments`): `[{start, end, text}]`;
    - `audio_tags`: per `at_time_res` window `{start, end, labels, label_ids, scores}`, the top-k labels by sigmoid
      probability (at least `--tag-threshold`);
    - `tag_probs` (with `--save-probs`): `(num_windows, num_labels)` probabilities as float16;
    - `events` (with `--events`): the pipeline's sound events `[{label, label_id, start, end, score}]`, sorted by start;
    - `model`, `model_revision`, `options` (JSON of the settings): how the row was made.
    """
    from datasets import Features, List, Value

    columns: dict[str, Any] = {"index": Value("int64"), "id": Value("string"), "path": Value("string"),
                               "duration": Value("float32")}
    # with --tags-only too (null): both kinds of output load into one dataset
    columns["text"] = Value("string")
    columns["language"] = Value("string")
    if not args.tags_only:
        if args.segments:
            columns["segments"] = List({"start": Value("float32"), "end": Value("float32"), "text": Value("string")})
    columns["audio_tags"] = List({
        "start": Value("float32"), "end": Value("float32"), "labels": List(Value("string")),
        "label_ids": List(Value("int32")), "scores": List(Value("float32")),
    })
    if args.save_probs:
        columns["tag_probs"] = List(List(Value("float16")))
    if getattr(args, "events", False):
        columns["events"] = List({"label": Value("string"), "label_id": Value("int32"), "start": Value("float32"),
                                  "end": Value("float32"), "score": Value("float32")})
    columns.update(model=Value("string"), model_revision=Value("string"), options=Value("string"))
    return Features(columns)


def model_revision(model: str, revision: str | None) -> str | None:
    """The commit of a Hub model (from its config, without loading weights); the given revision, or `None`, for a
    local folder."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model, revision=revision)
    return getattr(config, "_commit_hash", None) or revision


class Annotator:
    """Turns decoded clips into output rows with `pipeline("whisper-at")` (full) or the model's `tag` (tags only).

    Both paths format tags from the same per-window logits, so `--tags-only` rows carry the full run's tags.
    """

    def __init__(self, args: argparse.Namespace, model_path: str, model_name: str, device: Any, revision: str | None):
        import torch
        from transformers import pipeline

        dtype = args.dtype
        if dtype == "auto":
            dtype = "float16" if getattr(device, "type", str(device)).startswith("cuda") else "float32"
        self.args = args
        self.pipe = pipeline("whisper-at", model=model_path, revision=args.revision, device=device,
                             dtype=getattr(torch, dtype))
        self.model = self.pipe.model
        config = self.model.config
        self.resolution = float(args.at_time_res if args.at_time_res is not None else config.at_time_res)
        config.at_window_frames(self.resolution)  # validates: a positive multiple of 0.4 s
        self.label_names = model_label_names(self.model, revision=args.revision)
        self.revision = revision
        self.model_name = model_name
        self.call_kwargs = None if args.tags_only else self._call_kwargs()

    def _call_kwargs(self) -> dict[str, Any]:
        args = self.args
        # Timestamps always: Whisper's long-form decoding needs them, and short clips then decode the same way.
        kwargs: dict[str, Any] = {"return_timestamps": True, "return_tag_logits": True, "top_k": 1,
                                  "batch_size": args.batch_size}
        generate_kwargs = {}
        if args.num_beams is not None:
            generate_kwargs["num_beams"] = args.num_beams
        if args.max_new_tokens is not None:
            generate_kwargs["max_new_tokens"] = args.max_new_tokens
        if generate_kwargs:
            kwargs["generate_kwargs"] = generate_kwargs
        if args.at_time_res is not None:
            kwargs["at_time_res"] = args.at_time_res
        if args.events:
            kwargs["return_events"] = True
        # options' one rule: English / transcribe on an English-only model are dropped, the rest refused
        multilingual = getattr(self.model.generation_config, "is_multilingual", True)
        kwargs.update(check_language_and_task(args.language or None, args.task, multilingual, self.model_name,
                                              ("--language", "--task")))
        return kwargs

    # ----- one batch ------------------------------------------------------------------------------------------------
    def annotate(self, audios: list[Audio]) -> list[dict | Exception]:
        """Per clip its annotation `{text, language, segments, logits}` (no text with `--tags-only`) or the error."""
        try:
            return self._tags_only(audios) if self.args.tags_only else self._full(audios)
        except Exception as error:  # noqa: BLE001 - isolate the clip that fails, keep the others
            if len(audios) == 1:
                return [error]
            return [result for audio in audios for result in self.annotate([audio])]

    def _full(self, audios: list[Audio]) -> list[dict | Exception]:
        inputs = [{"raw": audio.array, "sampling_rate": audio.sampling_rate} for audio in audios]
        results = self.pipe(inputs, **self.call_kwargs)
        out: list[dict | Exception] = []
        for audio, result in zip(audios, results):
            if "error" in result:
                out.append(AudioDecodeError(audio.source, result["error"]))
                continue
            segments = [{"start": chunk["timestamp"][0], "end": chunk["timestamp"][1], "text": chunk["text"]}
                        for chunk in result.get("chunks") or []]
            out.append({"text": result["text"], "language": result.get("language"), "segments": segments,
                        "logits": np.asarray(result["audio_tag_logits"], dtype=np.float32),
                        "events": result.get("events")})
        return out

    def _tags_only(self, audios: list[Audio]) -> list[dict]:
        """Encoder + head on the same features the pipeline computes (30 s padded; longer clips unpadded)."""
        import torch

        extractor = self.pipe.feature_extractor
        results: list[dict | None] = [None] * len(audios)
        short = [i for i, audio in enumerate(audios) if audio.array.shape[0] <= extractor.n_samples]
        long = [i for i, audio in enumerate(audios) if audio.array.shape[0] > extractor.n_samples]
        # Up to 30 s: one batch, each padded to 30 s. Longer: one at a time, unpadded (`tag` runs its 30 s passes).
        groups = [(short, {})] if short else []
        groups += [([i], {"truncation": False, "padding": "longest"}) for i in long]
        for group, kwargs in groups:
            waveforms = [audios[i].array for i in group]
            features = extractor(waveforms, sampling_rate=SAMPLING_RATE, return_tensors="pt", **kwargs).input_features
            features = features.to(device=self.model.device, dtype=self.model.dtype)
            with torch.inference_mode():
                logits = self.model.tag(features, at_time_res=self.resolution).float().cpu().numpy()
            for row, i in enumerate(group):
                results[i] = {"logits": logits[row]}
        return results

    # ----- rows -----------------------------------------------------------------------------------------------------
    def row(self, item: Item, audio: Audio, annotation: dict, options_json: str) -> dict:
        args = self.args
        seconds = audio.duration
        logits = annotation["logits"][: windows_for_duration(seconds, self.resolution)]
        probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        language = annotation.get("language")
        names = self.label_names.get(language if args.label_language == "follow_asr" else args.label_language)
        windows = []
        for window, top in enumerate(top_tags(probs, top_k=args.top_k, threshold=args.tag_threshold)):
            start, end = window_bounds(window, self.resolution, seconds)
            windows.append({"start": start, "end": end, "labels": [names[i] for i in top], "label_ids": top,
                            "scores": [float(probs[window, i]) for i in top]})
        row: dict[str, Any] = {"index": item.index, "id": item.id, "path": item.path, "duration": seconds,
                               "text": annotation.get("text"), "language": language}
        if not args.tags_only:
            if args.segments:
                row["segments"] = annotation["segments"]
        row["audio_tags"] = windows
        if args.save_probs:
            row["tag_probs"] = probs.astype(np.float16).tolist()
        if args.events:  # named in this row's label language
            row["events"] = name_events(annotation["events"], names)
        row.update(model=self.model_name, model_revision=self.revision, options=options_json)
        return row


# --------------------------------------------------------------------------------------------------------------------
# Output folder
# --------------------------------------------------------------------------------------------------------------------
def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB."""
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, payload: Any) -> None:
    atomic_write(path, (json.dumps(payload, indent=1, ensure_ascii=False) + "\n").encode())


class CorruptManifestError(ValueError):
    """`OUT/manifest.json` exists but cannot be read as a manifest."""


class OutputFolder:
    """`OUT`: the manifest, the shard records that mark finished shards, Parquet shards and errors.jsonl."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def read_manifest(self) -> dict | None:
        """The manifest, `None` if there is none; [`CorruptManifestError`] if it is not a JSON object."""
        if not self.manifest_path.is_file():
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CorruptManifestError(f"{self.manifest_path} is unreadable ({error})") from error
        if not isinstance(manifest, dict):
            raise CorruptManifestError(f"{self.manifest_path} is not a JSON object")
        return manifest

    def done_shards(self) -> list[int]:
        records = (self.root / SHARD_RECORDS_DIR).glob("shard-*.json")
        return sorted(int(path.stem.split("-")[1]) for path in records)

    def shard_records(self) -> list[dict]:
        return [json.loads((self.root / shard_record_file(index)).read_text()) for index in self.done_shards()]

    def clear(self) -> None:
        """Removes what this tool wrote (and nothing else)."""
        for pattern in (f"{DATA_DIR}/train-*.parquet", f"{DATA_DIR}/.*.tmp", f"{SHARD_RECORDS_DIR}/shard-*.json",
                        f"{SHARD_RECORDS_DIR}/.*.tmp", ERRORS, MANIFEST, "README.md"):
            for path in self.root.glob(pattern):
                path.unlink()

    def remove_temporary_files(self) -> None:
        for pattern in (f"{DATA_DIR}/.*.tmp", f"{SHARD_RECORDS_DIR}/.*.tmp", ".*.tmp"):
            for path in self.root.glob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def write_shard(self, index: int, rows: list[dict], features, record: dict) -> None:
        """The shard's Parquet file, then its record (the record marks the shard done)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        payload = sink.getvalue().to_pybytes()
        atomic_write(self.root / shard_file(index), payload)
        # what a resumed run checks the file against before trusting the shard as done
        record = {**record, "file": {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}}
        write_json(self.root / shard_record_file(index), record)

    def shard_problem(self, index: int) -> str | None:
        """Why shard `index`'s record cannot be trusted (unreadable, no checksum, Parquet file missing, of another
        size or checksum), or `None` when its file is the one the record describes."""
        try:
            record = json.loads((self.root / shard_record_file(index)).read_text())
            expected = record["file"]
        except (OSError, ValueError, KeyError, TypeError):
            return "its record is unreadable or has no checksum"
        path = self.root / shard_file(index)
        if not path.is_file():
            return f"{shard_file(index)} is missing"
        if path.stat().st_size != expected.get("bytes"):
            return f"{shard_file(index)} has {path.stat().st_size} bytes, not {expected.get('bytes')}"
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected.get("sha256"):
            return f"{shard_file(index)} does not match its checksum"
        return None

    def forget_bad_shards(self) -> list[tuple[int, str]]:
        """Removes the record (and file) of every shard whose file does not match its record, so that it is done
        again; returns `[(shard, why)]`."""
        bad = [(index, why) for index in self.done_shards() if (why := self.shard_problem(index)) is not None]
        for index, _ in bad:
            for path in (self.root / shard_record_file(index), self.root / shard_file(index)):
                path.unlink(missing_ok=True)
        return bad


def compatibility_problems(old: dict, new: dict) -> list[str]:
    """What differs between an existing manifest and this run's settings (model, revision, options, input)."""
    problems = []
    for key in ("model", "model_revision", "model_fingerprint", "shard_size", "input"):
        if old.get(key) != new.get(key):
            problems.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    old_options, new_options = old.get("options", {}), new.get("options", {})
    for key in sorted(set(old_options) | set(new_options)):
        if old_options.get(key) != new_options.get(key):
            problems.append(f"options.{key}: {old_options.get(key)!r} -> {new_options.get(key)!r}")
    return problems


# --------------------------------------------------------------------------------------------------------------------
# Work split
# --------------------------------------------------------------------------------------------------------------------
def shard_owner(shard: int, done: list[int], num_processes: int) -> int | None:
    """The process that does `shard`: unfinished shards, in order, are dealt round-robin; `None` if it is done.

    `done` is sorted. Every process computes this alike from the same shard records, so the split is disjoint and
    complete, and on a rerun the remaining work is spread evenly whatever was finished before.
    """
    position = bisect.bisect_left(done, shard)
    if position < len(done) and done[position] == shard:
        return None
    return (shard - position) % num_processes


def my_shards(corpus: CorpusInput, shard_size: int, done: list[int], rank: int, world: int, seen: list[int]
              ) -> Iterator[tuple[int, list[Item]]]:
    """This process's `(shard index, items)`, in order; rows of other shards are not decoded. `seen[0]` ends as
    the number of input rows."""
    if not corpus.streaming:
        seen[0] = corpus.num_rows
        for shard in range(math.ceil(corpus.num_rows / shard_size)):
            if shard_owner(shard, done, world) != rank:
                continue
            start, stop = shard * shard_size, min((shard + 1) * shard_size, corpus.num_rows)
            rows = corpus.dataset.select(range(start, stop))
            yield shard, [make_item(corpus, start + offset, row) for offset, row in enumerate(rows)]
        return
    # A stream is read in order by every process; each keeps the rows of its own shards (undecoded until then).
    current, items = None, []
    for index, row in enumerate(corpus.dataset):
        seen[0] = index + 1
        shard = index // shard_size
        if shard != current:
            if items:
                yield current, items
            current, items = shard, []
        if shard_owner(shard, done, world) == rank:
            items.append(make_item(corpus, index, row))
    if items:
        yield current, items


# --------------------------------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------------------------------
class Progress:
    """One bar on the main process (clips, clips/s, ETA, audio seconds per second): its own clips as they finish
    plus the other processes' finished shards, read from their records every few seconds."""

    def __init__(self, folder: OutputFolder, total: int | None, done_before: set[int], enabled: bool):
        from tqdm.auto import tqdm

        self.folder, self.done_before = folder, done_before
        self.base = sum(record["inputs"] for record in folder.shard_records())  # finished by earlier runs
        self.bar = tqdm(total=total, initial=self.base, unit="clip", disable=not enabled, dynamic_ncols=True,
                        desc="annotate")
        self.own_inputs, self.own_seconds, self.own_shards = 0, 0.0, set()
        self.others, self.others_seconds = 0, 0.0
        self.start = self.last_scan = time.perf_counter()

    def shard_done(self, shard: int) -> None:
        self.own_shards.add(shard)

    def update(self, inputs: int, seconds: float) -> None:
        self.own_inputs += inputs
        self.own_seconds += seconds
        if self.bar.disable:
            return
        now = time.perf_counter()
        if now - self.last_scan > 2.0:
            self.last_scan = now
            others = [record for record in self.folder.shard_records()
                      if record["shard"] not in self.done_before and record["shard"] not in self.own_shards]
            self.others = sum(record["inputs"] for record in others)
            self.others_seconds = sum(record["audio_seconds"] for record in others)
        audio_seconds = self.own_seconds + self.others_seconds
        self.bar.update(self.base + self.own_inputs + self.others - self.bar.n)
        self.bar.set_postfix_str(audio_speed(audio_seconds, now - self.start))

    def close(self) -> None:
        self.bar.close()


def audio_speed(audio_seconds: float, wall_seconds: float) -> str:
    """The bar's postfix: audio done this run and its speed as a multiple of real time (`"audio 1.2 h, 37x real
    time"`), readable from a CPU's fractions of real time to a GPU cluster's thousands."""
    speed = audio_seconds / max(wall_seconds, 1e-9)
    done = f"{audio_seconds / 3600:.1f} h" if audio_seconds >= 360 else f"{audio_seconds / 60:.1f} min"
    return f"audio {done}, {speed:.3g}x real time"


# --------------------------------------------------------------------------------------------------------------------
# Hub
# --------------------------------------------------------------------------------------------------------------------
def dataset_card(manifest: dict, repo_id: str) -> str:
    """A dataset card: YAML metadata pointing at the shards, then the model, options and counts."""
    from huggingface_hub import DatasetCardData

    data = DatasetCardData(
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": f"{DATA_DIR}/train-*.parquet"}]}],
        tags=["whisper-at", "audio-tagging", "audioset", "transcription", TOOL],
        task_categories=["audio-classification"] + ([] if manifest["options"]["tags_only"]
                                                    else ["automatic-speech-recognition"]),
    )
    totals = manifest.get("totals", {})
    options = "\n".join(f"| `{key}` | `{value}` |" for key, value in manifest["options"].items())
    return f"""---
{data.to_yaml()}
---

# {repo_id.split("/")[-1]}

Annotations made by `{TOOL}` (whisper-at-hf) with the Whisper-AT model
`{manifest["model"]}` (revision `{manifest.get("model_revision")}`): {"AudioSet tags per window" if
manifest["options"]["tags_only"] else "Whisper transcripts and AudioSet tags per window"}.

| | |
|---|---|
| inputs | {totals.get("inputs", "?")} |
| rows | {totals.get("rows", "?")} |
| failed inputs (`errors.jsonl`) | {totals.get("errors", "?")} |
| audio | {totals.get("audio_seconds", 0) / 3600:.2f} h |

```python
from datasets import load_dataset

rows = load_dataset("{repo_id}", split="train")
```

Each row: `index` and `id` of the input, `duration` (s){", `text`, `language`" if not manifest["options"]["tags_only"]
else ""}, `audio_tags` (per window: `start`, `end`, `labels`, `label_ids`, `scores`), and the `model`,
`model_revision` and `options` it was made with. `manifest.json` records the run.

## Options

| option | value |
|---|---|
{options}
"""


def push_to_hub(folder: OutputFolder, manifest: dict, repo_id: str, private: bool, token: str | None) -> str:
    """Writes the dataset card (`README.md`) into the folder and uploads the shards, manifest, errors and card in one
    commit; returns the commit URL."""
    atomic_write(folder.root / "README.md", dataset_card(manifest, repo_id))
    info = upload_folder(folder.root, repo_id, token=token, private=private, repo_type="dataset",
                         allow_patterns=[f"{DATA_DIR}/train-*.parquet", MANIFEST, ERRORS, "README.md"],
                         commit_message=f"{TOOL}: {manifest.get('totals', {}).get('rows', 0)} rows")  # fmt: skip
    return info.commit_url


# --------------------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One invocation's shared state: the processes, the output folder, the model and the settings it records."""

    args: argparse.Namespace
    state: Any  # accelerate's PartialState
    folder: OutputFolder
    corpus: CorpusInput
    model_path: str
    model_name: str
    revision: str | None
    fingerprint: str | None  # of a local checkpoint folder (`model_sources.checkpoint_fingerprint`)
    options: dict[str, Any]


def main(argv: list[str] | None = None) -> int:
    """`whisper-at-annotate ARGS` from Python and as a module (`torchrun -m whisper_at_hf.annotate`); the console
    script parses in `whisper_at_hf_cli` first, then calls [`run`]."""
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Annotates the input of the parsed `args` (`whisper_at_hf_cli.annotate.parse_args`) in this process's share."""
    state = start_processes(args)
    if state is None:
        return 2
    # Everything that can be wrong with the input, the model or the options is reported here, before the first
    # manifest is written: a corrected rerun is then not refused as "other settings".
    try:
        with state.main_process_first():  # datasets prepares / caches the input once
            corpus = open_input(args)
        with state.main_process_first():  # a released variant is downloaded (and converted) once
            model = resolve_checked_model(args.model, args.at_low_compute, revision=args.revision,
                                          progress=state.is_main_process and not args.quiet)
        model_name = args.model or default_variant()
        check_decoder_options(args, model, model_name)
    except (OSError, ValueError) as error:
        print(f"{TOOL}: error: {error}", file=sys.stderr)
        return 2
    run = Run(args, state, OutputFolder(args.output_dir), corpus, model, model_name,
              model_revision(model, args.revision), checkpoint_fingerprint(model), result_options(args))  # fmt: skip
    started = begin_run(run)
    if started is None:
        return 2
    record, done_before = started
    seen, work_started = annotate_my_shards(run, record, done_before)
    state.wait_for_everyone()
    return finish_run(run, record, done_before, seen, time.perf_counter() - work_started)


def check_decoder_options(args: argparse.Namespace, model: str, model_name: str) -> None:
    """`--language` / `--task` against the model's generation config (read alone, before the weights load): the
    rule the [`Annotator`] applies again once the model is there. A config that cannot be read is left to it."""
    if args.tags_only:
        return
    from transformers import GenerationConfig

    try:
        generation_config = GenerationConfig.from_pretrained(model, revision=args.revision)
    except OSError:
        return
    multilingual = getattr(generation_config, "is_multilingual", True)
    check_language_and_task(args.language or None, args.task, multilingual, model_name, ("--language", "--task"))


def start_processes(args: argparse.Namespace) -> Any:
    """Accelerate's `PartialState` for this process (logging quiet off the main one), or `None` (reported) when the
    launcher's process count is not what Accelerate set up."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env
    from transformers.utils import logging as hf_logging

    # `PartialState` (unlike `Accelerator`) does not read ACCELERATE_USE_CPU (`accelerate launch --cpu`); without
    # it, processes launched on a machine without GPUs would each run alone. Long timeout: processes meet at the
    # end, and their shares of the work may take hours to differ.
    cpu = args.cpu or parse_flag_from_env("ACCELERATE_USE_CPU")
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and not cpu and not has_accelerator():  # e.g. torchrun --nproc-per-node 2 on a CPU machine
        cpu = True
        if os.environ.get("RANK", "0") == "0":
            print(f"{TOOL}: no GPU found: running the {launched} processes on CPUs.", file=sys.stderr)
    state = PartialState(cpu=cpu, timeout=timedelta(hours=48))
    if launched != state.num_processes:
        print(f"{TOOL}: launched as {launched} processes, but Accelerate set up {state.num_processes} (no GPU for "
              "each?). On CPUs pass --cpu (or ACCELERATE_USE_CPU=true, as `accelerate launch --cpu` does).",
              file=sys.stderr)  # fmt: skip
        return None
    if args.quiet or not state.is_main_process:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        import datasets

        datasets.disable_progress_bars()
    return state


def has_accelerator() -> bool:
    """Whether a device other than the CPU is there for Accelerate to give each process (CUDA, XPU, NPU, ...)."""
    from accelerate import utils

    checks = ("is_cuda_available", "is_xpu_available", "is_npu_available", "is_mlu_available", "is_musa_available",
              "is_hpu_available", "is_sdaa_available")  # fmt: skip
    return any(getattr(utils, name, lambda: False)() for name in checks)


def begin_run(run: Run) -> tuple[dict[str, Any], list[int]] | None:
    """Checks an existing output folder fits these settings, records this run in the manifest (main process);
    returns `(run record, shards done before, sorted)`, or `None` (reported) for a folder made with other settings
    or a corrupt manifest (both: without --overwrite). Shards whose file does not match its record are done again."""
    args, folder, state = run.args, run.folder, run.state
    settings = {"model": run.model_name, "model_revision": run.revision, "model_fingerprint": run.fingerprint,
                "shard_size": args.shard_size, "input": run.corpus.description, "options": run.options}  # fmt: skip
    try:
        existing = None if args.overwrite else folder.read_manifest()
    except CorruptManifestError as error:
        print(f"{TOOL}: {error}. Rerun with --overwrite to start {args.output_dir} afresh.", file=sys.stderr)
        return None
    if existing is not None:
        problems = compatibility_problems(existing, settings)
        if problems:
            print(f"{TOOL}: {args.output_dir} holds annotations made with other settings ("
                  + "; ".join(problems) + "). Rerun with --overwrite to replace them, or use another --output-dir.",
                  file=sys.stderr)
            return None
    record = {"id": uuid.uuid4().hex[:12], "started_at": _now(), "processes": state.num_processes}
    if state.is_main_process:
        if args.overwrite:
            folder.clear()
        folder.remove_temporary_files()
        for shard, why in folder.forget_bad_shards():
            print(f"{TOOL}: shard {shard} is done again: {why}", file=sys.stderr)
        manifest = {"tool": TOOL, **settings, "created_at": (existing or {}).get("created_at", _now()),
                    "complete": False, "runs": (existing or {}).get("runs", []), "current_run": record}
        write_json(folder.manifest_path, manifest)
    state.wait_for_everyone()
    record = folder.read_manifest()["current_run"]  # every process tags its shards with the main process's run id
    return record, folder.done_shards()


def annotate_my_shards(run: Run, record: dict[str, Any], done_before: list[int]) -> tuple[list[int], float]:
    """Annotates this process's share of the shards not done yet; returns `([inputs seen], start time)`."""
    args, state, folder = run.args, run.state, run.folder
    annotator = None  # the model loads once this process has a shard to do (a finished run resumes in seconds)
    features = build_features(args)
    options_json = json.dumps(run.options, sort_keys=True)
    progress = Progress(folder, run.corpus.num_rows, set(done_before), enabled=state.is_main_process and not args.quiet)
    seen, work_started = [0], time.perf_counter()
    pool = ThreadPoolExecutor(args.decode_workers, thread_name_prefix="decode") if args.decode_workers else None
    shards = my_shards(run.corpus, args.shard_size, done_before, state.process_index, state.num_processes, seen)
    for shard, items in shards:
        if annotator is None:
            annotator = Annotator(args, run.model_path, run.model_name, state.device, run.revision)
        started, rows, errors, seconds = time.perf_counter(), [], [], 0.0
        for batch, audios in decoded_batches(items, args.batch_size, pool):
            decoded: list[tuple[Item, Audio]] = []
            for item, audio in zip(batch, audios):
                if isinstance(audio, AudioDecodeError):
                    errors.append({"index": item.index, "id": item.id, "error": str(audio)})
                else:
                    decoded.append((item, audio))
            annotations = annotator.annotate([audio for _, audio in decoded]) if decoded else []
            for (item, audio), annotation in zip(decoded, annotations):
                if isinstance(annotation, Exception):
                    errors.append({"index": item.index, "id": item.id,
                                   "error": f"{item.id}: annotation failed: {type(annotation).__name__}: {annotation}"})
                    continue
                rows.append(annotator.row(item, audio, annotation, options_json))
                seconds += audio.duration
            progress.update(len(batch), sum(audio.duration for _, audio in decoded))
        compute_seconds = round(time.perf_counter() - started, 3)
        shard_record = {"shard": shard, "first_index": items[0].index, "inputs": len(items), "rows": len(rows),
                        "errors": errors, "audio_seconds": seconds, "compute_seconds": compute_seconds,
                        "process": state.process_index, "run": record["id"], "finished_at": _now(),
                        "peak_rss_mib": peak_rss_mib()}  # fmt: skip
        folder.write_shard(shard, rows, features, shard_record)
        progress.shard_done(shard)
        for error in errors:
            progress.bar.write(f"{TOOL}: skipped {error['error']}", file=sys.stderr)
    progress.close()
    if pool is not None:
        pool.shutdown()
    return seen, work_started


def finish_run(run: Run, record: dict[str, Any], done_before: list[int], seen: list[int], work_seconds: float) -> int:
    """Everyone reads the same shard records; the main process completes the manifest and errors.jsonl, reports and
    pushes. Returns the exit code (1 when an input failed or a shard is missing)."""
    args, state, folder = run.args, run.state, run.folder
    records = folder.shard_records()
    expected = math.ceil(seen[0] / args.shard_size)
    missing = sorted(set(range(expected)) - {shard["shard"] for shard in records})
    errors = [error for shard in records for error in shard["errors"]]
    if state.is_main_process:
        atomic_write(folder.root / ERRORS, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors).encode())
        manifest = folder.read_manifest()
        this_run = [shard for shard in records if shard["run"] == record["id"]]
        record.update(finished_at=_now(), work_seconds=round(work_seconds, 3), shards_done_before=len(done_before),
                      shards_computed=len(this_run), inputs_computed=sum(shard["inputs"] for shard in this_run))
        manifest.pop("current_run", None)
        manifest["runs"] = [*manifest.get("runs", []), record]
        manifest["complete"] = not missing
        manifest["totals"] = {"shards": len(records), "inputs": sum(r["inputs"] for r in records),
                              "rows": sum(r["rows"] for r in records), "errors": len(errors),
                              "audio_seconds": round(sum(r["audio_seconds"] for r in records), 3)}
        write_json(folder.manifest_path, manifest)
        totals = manifest["totals"]
        if not args.quiet:
            print(f"{TOOL}: {totals['rows']} rows in {len(records)} shards ({len(done_before)} done before, "
                  f"{len(this_run)} now); {totals['errors']} failed inputs -> {folder.root}", file=sys.stderr)
        if missing:
            print(f"{TOOL}: shards {missing[:10]} are missing: rerun the same command to finish them.", file=sys.stderr)
        if args.push_to_hub and not missing:
            url = push_to_hub(folder, manifest, args.push_to_hub, args.hub_private, args.hub_token)
            print(f"{TOOL}: pushed to {url}", file=sys.stderr)
    state.wait_for_everyone()
    return 1 if errors or missing else 0


if __name__ == "__main__":
    sys.exit(main())
