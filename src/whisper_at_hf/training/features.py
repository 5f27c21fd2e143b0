"""Pooled-feature cache: Whisper is frozen, so its pooled per-layer states are computed once and reused.

For each clip the first `at_time_res` seconds (zero-padded) go through one `model.encode()` pass; the pooled states
of that window, `(num_layers, window_frames, d_model)` (`(L, 25, d)` for 10 s), are stored in fp16 as a `datasets`
dataset on disk. The cache folder name is a fingerprint of the Whisper encoder weights, the feature-extractor
settings, the window and the audio bytes of every row: reruns reuse it, any change builds a new one.

Under several processes (`accelerate launch`), each process encodes a contiguous shard, the main process merges the
shards, and the others wait; the cache is built exactly once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..audio import is_torchcodec_decoder
from .data import AudioDecodeError, SkippedRows, crop_or_pad, decode_audio

logger = logging.getLogger(f"transformers.{__name__}")  # under transformers: its verbosity rules ours

POOLED_COLUMN = "pooled_hidden_states"
ROW_COLUMN = "row"
ERROR_COLUMN = "error"
_COMPLETE_MARKER = "cache_complete.json"


# ----------------------------------------------------------------------------------------------------------------------
# Fingerprints
# ----------------------------------------------------------------------------------------------------------------------
def whisper_fingerprint(model: Any, feature_extractor: Any, at_time_res: float) -> str:
    """Hash of what determines the pooled states: encoder weights, pooling/window settings, feature extraction."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.model.encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    settings = {
        "at_pool_stride": model.config.at_pool_stride,
        "window_frames": model.config.at_window_frames(at_time_res),
        "at_time_res": float(at_time_res),
        "feature_extractor": {
            key: value
            for key, value in feature_extractor.to_dict().items()
            if key not in ("mel_filters", "processor_class")
        },
    }
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def audio_fingerprint(cell: Any) -> str:
    """Hash of one undecoded audio cell's content (bytes or file); a missing file hashes by its path."""
    digest = hashlib.blake2b(digest_size=16)
    if is_torchcodec_decoder(cell):  # decoded `datasets` audio: hash what it was read from, else its samples
        encoded = getattr(cell, "_hf_encoded", None)
        if isinstance(encoded, dict) and (encoded.get("bytes") is not None or encoded.get("path")):
            cell = encoded
        else:
            samples = cell.get_all_samples()
            digest.update(np.ascontiguousarray(samples.data.cpu().numpy()).tobytes())
            digest.update(str(samples.sample_rate).encode())
            return digest.hexdigest()
    path = cell.get("path") if isinstance(cell, dict) else cell
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if data is not None:
        digest.update(data)
    elif isinstance(path, str) and os.path.isfile(path):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:
        digest.update(f"unreadable:{path}".encode())
    return digest.hexdigest()


def split_fingerprint(whisper_fp: str, dataset: Any, audio_column: str) -> str:
    digest = hashlib.sha256(whisper_fp.encode())
    for cell in dataset[audio_column]:
        digest.update(audio_fingerprint(cell).encode())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def encode_pooled(model: Any, feature_extractor: Any, audios: list[np.ndarray], at_time_res: float) -> torch.Tensor:
    """Mono 16 kHz clips (each at most 30 s) -> pooled states of their first window `(B, L, window_frames, d)`."""
    window = model.config.at_window_frames(at_time_res)
    features = feature_extractor(
        audios, sampling_rate=feature_extractor.sampling_rate, return_tensors="pt"
    ).input_features
    reference = next(model.parameters())
    pooled = model.encode(features.to(reference.device, reference.dtype)).pooled_hidden_states
    return pooled[:, :, :window]


def _encode_rows(
    model: Any,
    feature_extractor: Any,
    dataset: Any,
    audio_column: str,
    rows: range,
    at_time_res: float,
    batch_size: int,
    show_progress: bool,
) -> Iterator[dict[str, list]]:
    """Yields batches `{"row", "error", "pooled_hidden_states"}`; unreadable rows get zeros and an error message."""
    config = model.config
    shape = (config.at_num_layers, config.at_window_frames(at_time_res), config.d_model)
    bar = tqdm(total=len(rows), desc="Encoding audio (pooled features)", disable=not show_progress)
    for start in range(rows.start, rows.stop, batch_size):
        batch_rows = list(range(start, min(start + batch_size, rows.stop)))
        cells = dataset.select(batch_rows)[audio_column]
        audios, ok_rows, errors = [], [], {}
        for row, cell in zip(batch_rows, cells):
            try:
                audios.append(crop_or_pad(decode_audio(cell), at_time_res))
                ok_rows.append(row)
            except AudioDecodeError as error:
                errors[row] = str(error)
        pooled = encode_pooled(model, feature_extractor, audios, at_time_res).cpu().half() if audios else None
        by_row = {row: pooled[i].numpy() for i, row in enumerate(ok_rows)}
        zeros = np.zeros(shape, dtype=np.float16)
        yield {
            ROW_COLUMN: batch_rows,
            ERROR_COLUMN: [errors.get(row) for row in batch_rows],
            POOLED_COLUMN: [by_row.get(row, zeros) for row in batch_rows],
        }
        bar.update(len(batch_rows))
    bar.close()


def _write_shard(path: Path, batches: Iterator[dict[str, list]], shape: tuple[int, int, int]) -> None:
    import datasets
    from datasets.arrow_writer import ArrowWriter

    features = datasets.Features(
        {
            ROW_COLUMN: datasets.Value("int64"),
            ERROR_COLUMN: datasets.Value("string"),
            POOLED_COLUMN: datasets.Array3D(shape=shape, dtype="float16"),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with ArrowWriter(features=features, path=str(path)) as writer:
        for batch in batches:
            writer.write_batch(batch)
        writer.finalize()


def cached_pooled_features(
    model: Any,
    feature_extractor: Any,
    dataset: Any,
    audio_column: str,
    cache_dir: str | os.PathLike,
    at_time_res: float,
    split: str = "train",
    batch_size: int = 16,
    whisper_fp: str | None = None,
    state: Any = None,
) -> tuple[Any, SkippedRows, bool]:
    """Pooled features for every row of `dataset`, from the on-disk cache when present.

    Returns `(features, skipped, reused)`: `features` is `dataset` without its audio column plus a
    `pooled_hidden_states` column `(L, window_frames, d)` (fp16), restricted to readable rows; `skipped` reports the
    rest; `reused` is True when no encoding was needed. `state` is an `accelerate.PartialState` (created if None).
    """
    import datasets
    from accelerate import PartialState

    state = state or PartialState()
    whisper_fp = whisper_fp or whisper_fingerprint(model, feature_extractor, at_time_res)
    fingerprint = split_fingerprint(whisper_fp, dataset, audio_column)
    final_dir = Path(cache_dir) / f"pooled-{split}-{fingerprint[:20]}"
    reused = (final_dir / _COMPLETE_MARKER).is_file()

    if not reused:
        config = model.config
        shape = (config.at_num_layers, config.at_window_frames(at_time_res), config.d_model)
        shard_dir = Path(str(final_dir) + ".shards")
        # contiguous shard per process
        per_process = -(-len(dataset) // state.num_processes)
        start = min(state.process_index * per_process, len(dataset))
        rows = range(start, min(start + per_process, len(dataset)))
        shard_file = shard_dir / f"shard-{state.process_index:05d}-of-{state.num_processes:05d}.arrow"
        batches = _encode_rows(
            model, feature_extractor, dataset, audio_column, rows, at_time_res, batch_size, state.is_local_main_process
        )
        _write_shard(shard_file, batches, shape)
        state.wait_for_everyone()
        if state.is_main_process:
            shards = [
                datasets.Dataset.from_file(str(shard_dir / f"shard-{i:05d}-of-{state.num_processes:05d}.arrow"))
                for i in range(state.num_processes)
            ]
            merged = datasets.concatenate_datasets(shards)
            if final_dir.exists():
                shutil.rmtree(final_dir)
            merged.save_to_disk(str(final_dir))
            (final_dir / _COMPLETE_MARKER).write_text(
                json.dumps({"fingerprint": fingerprint, "whisper": whisper_fp, "rows": len(merged), "split": split})
            )
            del shards, merged
            shutil.rmtree(shard_dir, ignore_errors=True)
        state.wait_for_everyone()

    cache = datasets.load_from_disk(str(final_dir))
    errors_column = cache[ERROR_COLUMN]
    errors = {row: error for row, error in zip(cache[ROW_COLUMN], errors_column) if error}
    good = [i for i, error in enumerate(errors_column) if not error]
    skipped = SkippedRows(split=split, total=len(dataset), errors=errors)
    rows_kept = dataset.select(good).remove_columns(audio_column)
    pooled = cache.select(good).select_columns([POOLED_COLUMN])
    return datasets.concatenate_datasets([rows_kept, pooled], axis=1), skipped, reused
