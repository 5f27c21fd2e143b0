"""Every way users hold labelled audio loads without torchcodec (issue 13 item 1), and datasets' decoded audio
objects (torchcodec `AudioDecoder`) are accepted where torchcodec is installed.

Before: `load_dataset("audiofolder", ...)` raised `DatasetGenerationError` (ImportError torchcodec) inside datasets
5.x, and a `save_to_disk` folder raised "use `load_from_disk`". The forms: audiofolder with `metadata.csv`
(multi-label cells), audiofolder with class folders, `"audiofolder"` + `data_dir`, Parquet with an `Audio` feature
(how Hub datasets are stored), a `save_to_disk` folder, CSV and JSON Lines files, a Hub repo of raw audio files.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SHARED_AUDIO

from whisper_at_hf.audio import AudioDecodeError, is_torchcodec_decoder, load_audio
from whisper_at_hf.training import (
    LABELS_KEY,
    AudioFeatureCollator,
    DataArguments,
    decode_audio,
    describe_data_source,
    load_audio_dataset,
    load_labelled_splits,
    load_raw_datasets,
)

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

SR = 16_000
CLIPS = {  # name -> (seconds, labels)
    "beeps": (1.0, ["Beep"]),
    "music": (1.5, ["Music"]),
    "both": (2.0, ["Music", "Beep"]),
}


def _write_clip(path: Path, seconds: float, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR)


@pytest.fixture()
def audiofolder(tmp_path) -> Path:
    """`train/` and `test/` with clips and a `metadata.csv` whose `labels` cells hold lists (as pandas writes them)
    or names joined with "|"."""
    root = tmp_path / "my_sounds"
    for split, names in (("train", ["beeps", "music", "both"]), ("test", ["both", "beeps"])):
        rows = []
        for seed, name in enumerate(names):
            seconds, labels = CLIPS[name]
            _write_clip(root / split / "clips" / f"{name}.wav", seconds, seed)
            cell = json.dumps(labels) if split == "train" else "|".join(labels)
            rows.append({"file_name": f"clips/{name}.wav", "labels": cell, "speaker": "x"})
        with open(root / split / "metadata.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["file_name", "labels", "speaker"])
            writer.writeheader()
            writer.writerows(rows)
    return root


def _check_rows(split, names_and_seconds):
    assert split.features["audio"].decode is False
    for cell, (name, seconds) in zip(split["audio"], names_and_seconds):
        assert cell["path"] is None or cell["path"].endswith(f"{name}.wav")
        assert decode_audio(cell).shape == (int(seconds * SR),)


def test_audiofolder_with_metadata_csv_multi_label(audiofolder):
    raw = load_raw_datasets(dataset_name=str(audiofolder))
    assert set(raw) == {"train", "test"}
    assert set(raw["train"].column_names) == {"audio", "labels", "speaker"}
    _check_rows(raw["train"], [(n, CLIPS[n][0]) for n in ("beeps", "music", "both")])
    args = DataArguments(
        dataset_name=str(audiofolder), label_column_name="labels", label_separator="|", eval_split_name="test"
    )
    train, test, labels = load_labelled_splits(args)
    assert labels.names == ["Beep", "Music"]
    assert np.asarray(train[LABELS_KEY]).tolist() == [[1, 0], [0, 1], [1, 1]]  # list cells
    assert np.asarray(test[LABELS_KEY]).tolist() == [[1, 1], [1, 0]]  # "Music|Beep" cells
    assert describe_data_source(str(audiofolder)) == ("my_sounds", "audiofolder")


def test_audiofolder_class_folders_and_the_audiofolder_builder_name(tmp_path):
    root = tmp_path / "by_class"
    for seed, (label, name) in enumerate([("dog", "a"), ("dog", "b"), ("cat", "c")]):
        _write_clip(root / "train" / label / f"{name}.wav", 0.5, seed)
    _write_clip(root / "validation" / "cat" / "d.wav", 0.5, 9)
    for raw in (load_audio_dataset(str(root)), load_audio_dataset("audiofolder", data_dir=str(root))):
        assert set(raw) == {"train", "validation"}
        assert raw["train"].features["label"].names == ["cat", "dog"]
        assert [raw["train"].features["label"].int2str(i) for i in raw["train"]["label"]] == ["cat", "dog", "dog"]
    train, evaluation, labels = load_labelled_splits(DataArguments(dataset_name=str(root)))
    assert labels.names == ["cat", "dog"] and len(train) == 3 and len(evaluation) == 1
    _check_rows(train, [("c", 0.5), ("a", 0.5), ("b", 0.5)])


def test_parquet_with_audio_feature_and_save_to_disk_folder(audiofolder, tmp_path):
    import datasets

    raw = load_raw_datasets(dataset_name=str(audiofolder))
    # embed the bytes, as Hub datasets (and push_to_hub) store audio in Parquet
    embedded = raw.map(lambda row: {"audio": {"bytes": Path(row["audio"]["path"]).read_bytes(), "path": None}})
    parquet_dir = tmp_path / "hub_like" / "data"
    parquet_dir.mkdir(parents=True)
    for split in embedded:
        embedded[split].cast_column("audio", datasets.Audio(decode=False)).to_parquet(
            str(parquet_dir / f"{split}-00000-of-00001.parquet")
        )
    hub_like = load_audio_dataset(str(tmp_path / "hub_like"))
    assert set(hub_like) == {"train", "test"} and isinstance(hub_like["train"].features["audio"], datasets.Audio)
    _check_rows(hub_like["train"], [(n, CLIPS[n][0]) for n in ("beeps", "music", "both")])
    assert describe_data_source(str(tmp_path / "hub_like")) == ("hub_like", "parquet")

    saved = tmp_path / "saved"
    embedded.save_to_disk(str(saved))
    args = DataArguments(dataset_name=str(saved), label_column_name="labels", label_separator="|")
    train, _, labels = load_labelled_splits(args)
    assert labels.names == ["Beep", "Music"] and len(train) == 3
    _check_rows(train, [(n, CLIPS[n][0]) for n in ("beeps", "music", "both")])
    assert describe_data_source(str(saved)) == ("saved", "arrow")
    single = tmp_path / "saved_single"
    embedded["test"].save_to_disk(str(single))  # a Dataset (not a DatasetDict): it becomes the train split
    assert list(load_audio_dataset(str(single))) == ["train"]


def test_csv_and_json_lines_files(audiofolder, tmp_path):
    rows = [{"audio": f"clips/{name}.wav", "label": "|".join(CLIPS[name][1])} for name in ("beeps", "music", "both")]
    csv_file = audiofolder / "train" / "train.csv"
    with open(csv_file, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["audio", "label"])
        writer.writeheader()
        writer.writerows(rows)
    jsonl_file = audiofolder / "train" / "train.jsonl"
    jsonl_file.write_text("".join(json.dumps({**row, "label": row["label"].split("|")}) + "\n" for row in rows))
    for args in (
        DataArguments(train_file=str(csv_file), label_separator="|"),
        DataArguments(train_file=str(jsonl_file)),
        DataArguments(dataset_name=str(jsonl_file)),
    ):
        train, _, labels = load_labelled_splits(args)
        assert labels.names == ["Beep", "Music"]
        assert np.asarray(train[LABELS_KEY]).tolist() == [[1, 0], [0, 1], [1, 1]]
        _check_rows(train, [(n, CLIPS[n][0]) for n in ("beeps", "music", "both")])


def test_hub_repo_of_audio_files_is_read_from_its_snapshot(audiofolder, monkeypatch):
    """A Hub dataset in the audiofolder layout: datasets' builder needs torchcodec; the loader downloads the files
    (`snapshot_download`) and reads them as a local folder. (The Hub and datasets' builder are stood in for.)"""
    import datasets
    import huggingface_hub
    from datasets.exceptions import DatasetGenerationError

    def needs_torchcodec(*args, **kwargs):
        try:
            raise ImportError("To support encoding audio data, please install 'torchcodec'.")
        except ImportError as error:
            raise DatasetGenerationError("An error occurred while generating the dataset") from error

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", needs_torchcodec)
    monkeypatch.setattr(
        huggingface_hub, "snapshot_download", lambda repo_id, **kwargs: calls.append((repo_id, kwargs)) or audiofolder
    )
    raw = load_audio_dataset("someone/my-sounds")
    assert calls[0][0] == "someone/my-sounds" and calls[0][1]["repo_type"] == "dataset"
    assert set(raw) == {"train", "test"} and len(raw["train"]) == 3
    assert describe_data_source("someone/my-sounds") == ("someone/my-sounds", "someone/my-sounds")


def test_empty_and_duplicated_label_rows_are_reported_with_a_count(audiofolder, caplog):
    """Issue 12 item 6: such rows used to be used silently."""
    meta = audiofolder / "train" / "metadata.csv"
    with open(meta, "a", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clips/beeps.wav", '["Beep"]', "x"])  # duplicate of row 0
        writer.writerow(["clips/music.wav", "[]", "x"])  # empty label
        writer.writerow(["clips/both.wav", "", "x"])  # empty cell
    with open(audiofolder / "test" / "metadata.csv", "a", newline="") as handle:
        csv.writer(handle).writerow(["../train/clips/beeps.wav", "Beep", "x"])  # a training clip in the eval split
    args = DataArguments(
        dataset_name=str(audiofolder), label_column_name="labels", label_separator="|", eval_split_name="test"
    )
    with caplog.at_level(logging.WARNING):
        train, _, _ = load_labelled_splits(args)
    text = caplog.text
    assert "train: 2 of 6 rows have an empty label (rows [4, 5])" in text
    assert "train: 1 of 6 rows duplicate an earlier row's audio and labels (rows [3])" in text
    assert "eval: 1 of 3 rows use audio that is also in the training split (rows [2])" in text
    assert len(train) == 6  # reported, still used


# ----------------------------------------------------------------------------------------------------------------------
# torchcodec AudioDecoder objects (datasets' decoded audio where torchcodec is installed), without torchcodec here
# ----------------------------------------------------------------------------------------------------------------------
class _Samples:
    def __init__(self, data: torch.Tensor, sample_rate: int):
        self.data, self.sample_rate = data, sample_rate


class AudioDecoder:
    """Same name, module and interface as `torchcodec.decoders.AudioDecoder` (`get_all_samples()` -> samples with
    `.data` `(channels, samples)` and `.sample_rate`)."""

    __module__ = "torchcodec.decoders._audio_decoder"

    def __init__(self, path: Path):
        array, self.rate = sf.read(path, dtype="float32", always_2d=True)
        self.array = torch.from_numpy(array.T.copy())
        self._hf_encoded = {"path": str(path), "bytes": None}

    def get_all_samples(self) -> _Samples:
        return _Samples(self.array, self.rate)


def test_audio_decoder_objects_in_load_audio_training_and_the_pipeline(tiny_en_at_dir):
    from transformers import WhisperFeatureExtractor, pipeline

    stereo = AudioDecoder(SHARED_AUDIO / "speech_en_stereo_44k.flac")
    assert is_torchcodec_decoder(stereo) and not is_torchcodec_decoder(object())
    audio = load_audio(stereo)
    reference = load_audio(SHARED_AUDIO / "speech_en_stereo_44k.flac")
    np.testing.assert_allclose(audio.array, reference.array, atol=1e-6)
    assert audio.source.endswith("speech_en_stereo_44k.flac")

    class Broken(AudioDecoder):
        def get_all_samples(self):
            raise RuntimeError("could not decode stream")

    with pytest.raises(AudioDecodeError, match="could not decode stream"):
        load_audio(Broken(SHARED_AUDIO / "speech_en.wav"))

    # training: the collator decodes rows of a decoded (torchcodec) dataset
    extractor = WhisperFeatureExtractor.from_pretrained(tiny_en_at_dir)
    rows = [
        {"audio": AudioDecoder(SHARED_AUDIO / "beeps_10s.wav"), LABELS_KEY: [1.0, 0.0]},
        {"audio": stereo, LABELS_KEY: [0.0, 1.0]},
    ]
    batch = AudioFeatureCollator(extractor)(rows)
    assert batch["input_features"].shape == (2, 80, 3000) and batch[LABELS_KEY].shape == (2, 2)

    # the pipeline, single and in a list beside a path
    tagger = pipeline("whisper-at", model=str(tiny_en_at_dir), dtype=torch.float32)
    fast = {"generate_kwargs": {"num_beams": 1, "max_new_tokens": 24}}
    one = tagger(AudioDecoder(SHARED_AUDIO / "speech_en.wav"), **fast)
    by_path = tagger(str(SHARED_AUDIO / "speech_en.wav"), **fast)
    assert one["text"] == by_path["text"] and one["audio_tags"] == by_path["audio_tags"]
    results = tagger([AudioDecoder(SHARED_AUDIO / "speech_en.wav"), str(SHARED_AUDIO / "beeps_10s.wav")], **fast)
    assert results[0]["text"] == by_path["text"] and "error" not in results[1]
