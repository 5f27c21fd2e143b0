"""`WhisperATHeadTrainer` and `make_compute_metrics`: the notebook user's `Trainer` workflow (issue 13 item 3).

Before: `make_compute_metrics` crashed under a plain `Trainer` (predictions `(N, windows, C)`, labels `(N, C)`), the
head trainer was not exported, and Trainer's checkpoints and `push_to_hub()` wrote the full model (185 MB for tiny)
with Trainer's generic card. The README's notebook example is run as written against a loopback Hub.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO_ROOT, SHARED_AUDIO, TINY_EN, tiny_whisper
from hub_server import start_hub_server
from synthetic_tagging_data import make_clip
from transformers import Trainer, TrainingArguments, WhisperFeatureExtractor

from whisper_at_hf import WhisperForAudioTaggingAndASR
from whisper_at_hf.training import LABELS_KEY, WhisperATHeadTrainer, make_compute_metrics
from whisper_at_hf.training.trainer import first_window_scores

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

HEAD_FILE = "audio_tagging_head.safetensors"


def _rows(count: int, num_labels: int = 2, seed: int = 0) -> list[dict]:
    """Random log-mel rows; the label is visible in the features (class 1 rows are louder), so mAP is defined."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for index in range(count):
        label = index % num_labels
        features = torch.randn(80, 3000, generator=generator) * 0.1 + label
        rows.append({"input_features": features, LABELS_KEY: np.eye(num_labels, dtype=np.float32)[label].tolist()})
    return rows


def _collate(rows: list[dict]) -> dict:
    return {
        "input_features": torch.stack([row["input_features"] for row in rows]),
        LABELS_KEY: torch.tensor([row[LABELS_KEY] for row in rows]),
    }


def _tiny_model() -> WhisperForAudioTaggingAndASR:
    torch.manual_seed(0)
    return WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(), id2label={0: "quiet", 1: "loud"})


def test_first_window_scores_fits_every_prediction_layout():
    labels = np.eye(2, dtype=np.float32)[[0, 1, 1]]
    windows = np.random.default_rng(0).standard_normal((3, 3, 2)).astype(np.float32)
    scores, targets = first_window_scores((np.float32(0.4), windows), labels)  # plain Trainer: (tag loss, logits)
    np.testing.assert_array_equal(scores, windows[:, 0]) and np.testing.assert_array_equal(targets, labels)
    scores, targets = first_window_scores(windows[:, 0], labels)  # WhisperATHeadTrainer: (N, C)
    assert scores.shape == (3, 2)
    scores, targets = first_window_scores(windows, np.stack([labels, labels], axis=1))  # (N, W, C) labels
    assert scores.shape == targets.shape == (6, 2)
    with pytest.raises(ValueError, match=r"no prediction of shape \(N, \[windows,\] 2\)"):
        first_window_scores(np.zeros((3, 5)), labels)


def test_compute_metrics_under_a_plain_trainer(tmp_path):
    model = _tiny_model()
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_eval_batch_size=4, report_to="none", label_names=[LABELS_KEY],
        remove_unused_columns=False, use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    trainer = Trainer(
        model=model, args=args, eval_dataset=_rows(6), data_collator=_collate, compute_metrics=make_compute_metrics()
    )
    metrics = trainer.evaluate()
    assert 0.0 < metrics["eval_mAP"] <= 1.0 and "eval_accuracy" in metrics


def test_head_trainer_checkpoints_resume_and_push_are_head_only(tmp_path, monkeypatch):
    server, hub, endpoint = start_hub_server()
    model = _tiny_model()
    whisper_dir = tmp_path / "local-whisper"  # the base is known only as a local path
    model.config.base_model_name_or_path = str(whisper_dir)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=2, learning_rate=5e-3,
        save_strategy="epoch", eval_strategy="epoch", report_to="none", use_cpu=True, disable_tqdm=True,
        hub_model_id="tester/tiny-head", hub_token="test-token",
    )  # fmt: skip
    extractor = WhisperFeatureExtractor.from_pretrained(TINY_EN)
    trainer = WhisperATHeadTrainer(
        model=model, args=args, train_dataset=_rows(4), eval_dataset=_rows(4, seed=1), data_collator=_collate,
        processing_class=extractor, compute_metrics=make_compute_metrics(),
    )  # fmt: skip
    assert trainer.args.label_names == [LABELS_KEY] and trainer.args.remove_unused_columns is False
    # the caller's TrainingArguments are left as given (the trainer's settings go on its own copy)
    given = args.to_dict()
    assert args.label_names is None and args.remove_unused_columns is True
    whisper_before = {k: v.clone() for k, v in model.model.state_dict().items()}
    trainer.train()
    assert args.to_dict() == given
    for key, value in model.model.state_dict().items():
        assert torch.equal(value, whisper_before[key]), key  # Whisper is untouched

    checkpoint = tmp_path / "out" / "checkpoint-4"
    files = {path.name for path in checkpoint.iterdir()}
    assert HEAD_FILE in files and not files & {"model.safetensors", "pytorch_model.bin"}
    assert {"config.json", "README.md", "label_names.json", "preprocessor_config.json", "optimizer.pt"} <= files
    assert (checkpoint / HEAD_FILE).stat().st_size < 2e6
    card = (checkpoint / "README.md").read_text()
    assert "whisper-at" in card and "trained from scratch" not in card and "None dataset" not in card

    # resuming reads the head-only checkpoint
    resumed_model = _tiny_model()
    resumed_model.config.base_model_name_or_path = str(whisper_dir)
    resumed = WhisperATHeadTrainer(
        model=resumed_model, args=args, train_dataset=_rows(4), eval_dataset=_rows(4, seed=1), data_collator=_collate,
        processing_class=extractor,
    )
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for key, value in resumed_model.audio_tagging_head.state_dict().items():
        torch.testing.assert_close(value, model.audio_tagging_head.state_dict()[key])

    # a base known only as a local path is refused, naming the fix
    with pytest.raises(ValueError, match="--base_model_id"):
        trainer.push_to_hub()
    assert "tester/tiny-head" not in hub.repos
    model.config.base_model_name_or_path = "openai/whisper-tiny.en"
    import transformers.utils.hub
    from huggingface_hub import constants

    # The client read HF_ENDPOINT at import, and transformers keeps one HfApi (made by whichever test used it
    # first, with that test's endpoint): both are pointed at this test's server for the push only.
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(transformers.utils.hub, "_hf_api", None)
    try:
        trainer.push_to_hub()
    finally:
        server.shutdown()
    repo = hub.repos["tester/tiny-head"]["files"]
    assert HEAD_FILE in repo and "model.safetensors" not in repo and not any("/" in name for name in repo)
    assert json.loads(repo["config.json"])["base_model_name_or_path"] == "openai/whisper-tiny.en"
    assert "base_model: openai/whisper-tiny.en" in repo["README.md"].decode()
    assert json.loads(repo["eval_results.json"])["eval_mAP"] > 0


def _readme_notebook_example() -> str:
    text = (REPO_ROOT / "training" / "README.md").read_text()
    section = text.split("## In a notebook", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_notebook_example_runs_as_written(tmp_path):
    """The README's ~30-line example, verbatim, in a fresh process: an audiofolder `my_sounds` in the working
    folder, openai/whisper-tiny.en and the pushed head on a loopback Hub."""
    from huggingface_hub import HfApi

    code = _readme_notebook_example()
    assert len(code.splitlines()) <= 32
    rng = np.random.default_rng(0)
    sources = [sf.read(SHARED_AUDIO / "speech_en.wav", dtype="float32")[0]]
    for split, count in (("train", 4), ("test", 2)):
        rows = ["file_name,labels"]
        for index in range(count):
            for labels in (("Beep",), ("White noise",), ("Music",), ("Beep", "White noise")):
                name = f"{'_'.join(labels).replace(' ', '')}_{index}.wav"
                path = tmp_path / "my_sounds" / split / name
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, make_clip(labels, rng, 2.0, sources), 16000)
                rows.append(f"{name},{'|'.join(labels)}")
        (tmp_path / "my_sounds" / split / "metadata.csv").write_text("\n".join(rows) + "\n")
    shutil.copy(SHARED_AUDIO / "speech_en.wav", tmp_path / "clip.wav")  # short decoding

    server, hub, endpoint = start_hub_server()
    try:
        api = HfApi(endpoint=endpoint, token="test-token")
        api.create_repo("openai/whisper-tiny.en")
        api.upload_folder(repo_id="openai/whisper-tiny.en", folder_path=str(TINY_EN))
        env = dict(os.environ)
        env.update(
            PYTHONPATH=f"{REPO_ROOT / 'src'}{os.pathsep}{env.get('PYTHONPATH', '')}", HF_ENDPOINT=endpoint,
            HF_TOKEN="test-token", HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="0",
            TOKENIZERS_PARALLELISM="false",
        )  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200
        )
        assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    finally:
        server.shutdown()
    tags = eval(result.stdout.strip().splitlines()[-1])  # the example's print of the first window's tags
    assert {tag["label"] for tag in tags} == {"Beep", "White noise", "Music"}  # top_k=3 of the 3 classes
    assert all(0 <= tag["score"] <= 1 for tag in tags)
    repo = hub.repos["you/whisper-at-my-sounds"]["files"]
    assert HEAD_FILE in repo and "model.safetensors" not in repo
    assert sum(len(data) for data in repo.values()) < 30e6
    card = repo["README.md"].decode()
    assert "base_model: openai/whisper-tiny.en" in card and "type: audiofolder" in card and "name: mAP" in card
    assert "trained from scratch" not in card
    checkpoints = list((tmp_path / "whisper-at-my-sounds").glob("checkpoint-*"))
    assert checkpoints and all(not (path / "model.safetensors").exists() for path in checkpoints)
