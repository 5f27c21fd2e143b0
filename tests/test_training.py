"""Head training: data/labels, metric, feature cache, recipe, resumable Accelerate loop, Trainer, Hub push + pipeline.

The end-to-end tests train real heads on whisper-tiny.en features of a small synthetic AudioSet-named set (built
once per session, features cached once and shared by both scripts) and push/pull through a loopback Hub server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO_ROOT, SHARED_AUDIO, TINY_EN, tiny_whisper
from hub_server import start_hub_server
from synthetic_tagging_data import CLASSES, write_dataset

from whisper_at_hf import WhisperForAudioTaggingAndASR
from whisper_at_hf import audio as audio_module
from whisper_at_hf.audio import resample
from whisper_at_hf.metrics import load_audio_tagging_metric
from whisper_at_hf.training import (
    AudioDecodeError,
    DataArguments,
    LabelSet,
    WeightAverager,
    balanced_sample_weights,
    cached_pooled_features,
    decode_audio,
    load_labelled_splits,
    mixup,
    step_rng,
)
from whisper_at_hf.training.build import head_optimizer

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

SRC = REPO_ROOT / "src"
TRAIN_HEAD = REPO_ROOT / "training" / "train_head.py"
TRAIN_HEAD_TRAINER = REPO_ROOT / "training" / "train_head_trainer.py"


def child_env(tmp: Path, **extra) -> dict:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}",
        HF_HOME=str(tmp / "hf_home"),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"),
    )
    env.update(extra)
    return env


def run(cmd: list[str], env: dict, timeout: int = 600) -> str:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{output[-6000:]}"
    return output


# ----------------------------------------------------------------------------------------------------------------------
# Units
# ----------------------------------------------------------------------------------------------------------------------
def test_metric_map_and_accuracy():
    metric = load_audio_tagging_metric(keep_in_memory=True)
    # class 0: positives ranked 1st and 3rd -> AP = (1/1 + 2/3) / 2; class 1: positive ranked 1st -> 1
    scores = [[0.9, 0.8], [0.8, 0.1], [0.7, 0.2]]
    refs = [[1, 1], [0, 0], [1, 0]]
    result = metric.compute(predictions=scores, references=refs)
    assert result["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    assert "accuracy" not in result  # multi-label references
    single = metric.compute(predictions=[[0.2, 0.9], [0.6, 0.4], [0.3, 0.1]], references=[[0, 1], [0, 1], [1, 0]])
    assert single["accuracy"] == pytest.approx(2 / 3)
    assert single["num_classes_scored"] == 2


def test_label_set_parses_names_ids_lists_and_rejects_unknown():
    labels = LabelSet(["Speech", "Music", "Beep"], separator="|")
    assert labels.encode("Music").tolist() == [0, 1, 0]
    assert labels.encode("Speech|Beep").tolist() == [1, 0, 1]
    assert labels.encode(["Music", 2]).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match=r"Unknown label name 'Dog'.*known labels: \['Speech', 'Music', 'Beep'\]"):
        labels.encode("Dog")
    with pytest.raises(ValueError, match="out of range"):
        labels.encode(3)


def test_unknown_label_in_eval_split_lists_known(tmp_path):
    for split, rows in {"train": ["Speech", "Music"], "test": ["Speech", "Dog"]}.items():
        lines = ["audio,label"] + [f"x{i}.wav,{label}" for i, label in enumerate(rows)]
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n")
    args = DataArguments(train_file=str(tmp_path / "train.csv"), validation_file=str(tmp_path / "test.csv"))
    with pytest.raises(ValueError, match=r"'Dog'.*known labels: \['Music', 'Speech'\]"):
        load_labelled_splits(args)


def test_decode_audio_reports_bad_files_and_resamples(tmp_path):
    # training decodes through the package's audio module and raises its error type
    assert AudioDecodeError is audio_module.AudioDecodeError
    with pytest.raises(AudioDecodeError, match="missing.wav: no such file"):
        decode_audio({"path": str(tmp_path / "missing.wav"), "bytes": None})
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty.wav: file is empty"):
        decode_audio(str(tmp_path / "empty.wav"))
    (tmp_path / "text.wav").write_text("not audio at all")
    with pytest.raises(AudioDecodeError, match="text.wav: not (an audio file|readable by libsndfile)"):
        decode_audio(str(tmp_path / "text.wav"))
    stereo = decode_audio(str(SHARED_AUDIO / "speech_en_stereo_44k.flac"))
    mono, _ = sf.read(SHARED_AUDIO / "speech_en.wav", dtype="float32")
    assert abs(len(stereo) - len(mono)) < 160
    tone = np.sin(2 * np.pi * 440 * np.arange(44100) / 44100).astype(np.float32)
    down = resample(tone, 44100, 16000)
    assert len(down) == 16000
    np.testing.assert_allclose(down[100:-100], np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)[100:-100], atol=2e-3)


def test_recipe_pieces():
    targets = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    weights = balanced_sample_weights(targets)
    assert weights[3] == pytest.approx(3 * weights[0])  # rare class drawn as often as the frequent one overall
    x, y = torch.randn(6, 2, 3, 4), torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2])]
    mx, my = mixup(x, y, 0.5, step_rng(1, 5), probability=1.0)
    mx2, my2 = mixup(x, y, 0.5, step_rng(1, 5), probability=1.0)
    assert torch.equal(mx, mx2) and torch.equal(my, my2)  # depends only on (seed, step)
    assert not torch.equal(mx, x)
    torch.testing.assert_close(my.sum(1), y.sum(1))  # label mass preserved
    module = torch.nn.Linear(2, 2)
    averager = WeightAverager(start_epoch=2)
    seen = []
    for epoch in (1, 2, 3):
        torch.nn.init.constant_(module.weight, float(epoch))
        averager.update(module, epoch)
        seen.append(float(epoch))
    averager.apply(module)
    assert module.weight.detach().mean().item() == pytest.approx(2.5)  # mean of epochs 2 and 3


def test_argument_values_are_checked_when_parsed(tmp_path, monkeypatch, capsys):
    """Negative epochs saved an untrained head, label smoothing 2 and mixup alpha -1 were taken, `--report_to none`
    was a traceback: each is a usage error (exit 2) before any data or model is loaded."""
    import importlib.util

    from whisper_at_hf.training.arguments import LoopArguments, RecipeArguments

    spec = importlib.util.spec_from_file_location("train_head_script", TRAIN_HEAD)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    common = ["train_head.py", "--model_name_or_path", "m", "--train_file", "t.csv",
              "--output_dir", str(tmp_path / "o")]
    for extra, message in (
        (["--num_train_epochs", "-1"], "--num_train_epochs must be a whole number >= 1, got -1"),
        (["--num_train_epochs", "0"], "--num_train_epochs must be a whole number >= 1, got 0"),
        (["--label_smoothing", "2"], "--label_smoothing must be a number >= 0 and < 0.5, got 2.0"),
        (["--mixup_alpha", "-1"], "--mixup_alpha must be a number >= 0, got -1.0"),
        (["--mixup_probability", "1.5"], "--mixup_probability must be a number >= 0 and <= 1"),
        (["--report_to", "nonsense"], "--report_to nonsense: not a tracker; use none or one of all, aim, tensorboard"),
        (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be a whole number >= 1"),
    ):
        monkeypatch.setattr(sys, "argv", common + extra)
        with pytest.raises(SystemExit) as exited:
            script.parse_args()
        stderr = capsys.readouterr().err
        assert exited.value.code == 2 and message in stderr and "Traceback" not in stderr, stderr
    assert not (tmp_path / "o").exists()
    monkeypatch.setattr(sys, "argv", common + ["--report_to", "none"])
    assert script.parse_args()[3].report_to == []  # "none" means no tracker, as in transformers
    assert LoopArguments(output_dir="o", report_to=["tensorboard"]).report_to == ["tensorboard"]
    assert RecipeArguments(label_smoothing=0.1, mixup_alpha=0.5).label_smoothing == 0.1


def test_optimizer_sees_head_params_only_and_whisper_stays_eval():
    from transformers import TrainingArguments

    from whisper_at_hf.training.trainer import WhisperATHeadTrainer

    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(), num_labels=5)
    head_ids = {id(p) for p in model.audio_tagging_head.parameters()}
    optimizer = head_optimizer(model, 1e-3)
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == head_ids

    trainer = WhisperATHeadTrainer(
        model=model, args=TrainingArguments(output_dir="/tmp/unused-whisper-at", report_to=[], use_cpu=True)
    )
    trainer.create_optimizer()
    assert {id(p) for group in trainer.optimizer.param_groups for p in group["params"]} == head_ids
    # Trainer switches the model to train mode every step; compute_loss puts Whisper back in eval mode
    model.train()
    pooled = torch.randn(2, model.config.at_num_layers, 25, model.config.d_model)
    loss = trainer.compute_loss(model, {"pooled_hidden_states": pooled, "audio_labels": torch.ones(2, 5)})
    assert loss.requires_grad and model.audio_tagging_head.training
    assert not any(module.training for module in model.model.modules())

    model.unfreeze_whisper()
    with pytest.raises(ValueError, match="Whisper parameters are trainable"):
        head_optimizer(model, 1e-3)


# ----------------------------------------------------------------------------------------------------------------------
# Tiny random Whisper: feature cache fingerprint and exact resume
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    from transformers import WhisperProcessor

    root = tmp_path_factory.mktemp("tiny_train")
    whisper_dir = root / "whisper"
    tiny_whisper(seed=3).save_pretrained(whisper_dir)
    WhisperProcessor.from_pretrained(TINY_EN).save_pretrained(whisper_dir)
    files = write_dataset(root / "data", SHARED_AUDIO, {"train": 2, "test": 1}, {"train": 1, "test": 0}, seconds=2.0)
    # one missing and one corrupt file in the training split: reported and skipped
    (root / "data" / "train" / "corrupt.wav").write_bytes(b"RIFF0000WAVEjunk")
    with open(files["train"], "a") as handle:
        handle.write("train/does_not_exist.wav,Beep\ntrain/corrupt.wav,Music\n")
    return root, whisper_dir, files


def test_feature_cache_reused_and_invalidated_by_changed_whisper(tiny_setup, tmp_path):
    from transformers import WhisperFeatureExtractor

    root, whisper_dir, files = tiny_setup
    train, _, _ = load_labelled_splits(
        DataArguments(train_file=str(files["train"]), label_separator="|", eval_split_name="none")
    )
    model = WhisperForAudioTaggingAndASR.from_whisper(str(whisper_dir), num_labels=len(CLASSES))
    extractor = WhisperFeatureExtractor.from_pretrained(whisper_dir)
    features, skipped, reused = cached_pooled_features(model, extractor, train, "audio", tmp_path, 10.0)
    assert not reused and len(skipped.errors) == 2 and len(features) == len(train) - 2
    assert "skipped 2 of" in skipped.report() and "no such file" in skipped.report()
    assert np.asarray(features.with_format("numpy")[0]["pooled_hidden_states"]).shape == (3, 25, 64)
    assert features.features["pooled_hidden_states"].dtype == "float16"  # stored in fp16
    _, _, reused = cached_pooled_features(model, extractor, train, "audio", tmp_path, 10.0)
    assert reused
    with torch.no_grad():
        model.model.encoder.layers[0].fc1.weight.mul_(1.5)
    changed, _, reused = cached_pooled_features(model, extractor, train, "audio", tmp_path, 10.0)
    assert not reused and len(list(tmp_path.glob("pooled-train-*"))) == 2
    a = np.asarray(features.with_format("numpy")["pooled_hidden_states"], dtype=np.float32)
    b = np.asarray(changed.with_format("numpy")["pooled_hidden_states"], dtype=np.float32)
    assert np.abs(a - b).max() > 1e-2


def _head_weights(output_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(output_dir / "audio_tagging_head.safetensors")


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_same_head(tiny_setup, tmp_path):
    root, whisper_dir, files = tiny_setup
    common = [
        sys.executable, str(TRAIN_HEAD), "--model_name_or_path", str(whisper_dir),
        "--train_file", str(files["train"]), "--validation_file", str(files["test"]), "--label_separator", "|",
        "--cache_features", "--feature_cache_dir", str(root / "cache"), "--num_train_epochs", "4",
        "--per_device_train_batch_size", "3", "--learning_rate", "3e-3", "--warmup_steps", "2", "--seed", "7",
        "--balanced_sampling", "--mixup_alpha", "0.5", "--label_smoothing", "0.05",
        "--weight_averaging_start_epoch", "3", "--disable_tqdm",
    ]
    env = child_env(tmp_path, OMP_NUM_THREADS="1")  # the tiny head's steps are fastest on one thread
    full = tmp_path / "full"
    log = run(common + ["--output_dir", str(full)], env)
    assert "skipped 2 of 20 examples with unreadable audio" in log, log[-3000:]

    # second run: kill it once a mid-epoch checkpoint exists, then resume from the latest complete checkpoint
    part = tmp_path / "part"
    cmd = common + ["--output_dir", str(part), "--save_steps", "3", "--save_total_limit", "10"]
    process = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (part / "checkpoint-9" / "training_state.json").exists() and process.poll() is None:
        assert time.time() < deadline, "no checkpoint-9 appeared"
        time.sleep(0.05)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()
    # whatever got further than checkpoint-9 is "lost in the crash"
    for path in part.glob("checkpoint-*"):
        if int(path.name.split("-")[1]) > 9:
            shutil.rmtree(path)
    for path in part.glob("audio_tagging_head.safetensors"):
        path.unlink()
    state = json.loads((part / "checkpoint-9" / "training_state.json").read_text())
    assert 0 < state["step_in_epoch"] < 6  # mid-epoch (6 steps per epoch)
    log = run(cmd + ["--resume_from_checkpoint", "latest"], env)
    assert "Resumed from" in log and "checkpoint-9" in log and "Feature cache reused" in log
    full_weights, part_weights = _head_weights(full), _head_weights(part)
    assert full_weights.keys() == part_weights.keys()
    for key in full_weights:
        torch.testing.assert_close(part_weights[key], full_weights[key], rtol=0, atol=1e-6, msg=key)


@pytest.mark.slow
def test_trainer_resume_keeps_the_weight_average(tiny_setup, tmp_path):
    """Trainer script: a run resumed from an epoch checkpoint ends with the same averaged head as an uninterrupted one
    (the running mean of epochs 2-4 travels in the checkpoint)."""
    root, whisper_dir, files = tiny_setup
    common = [
        sys.executable, str(TRAIN_HEAD_TRAINER), "--model_name_or_path", str(whisper_dir),
        "--train_file", str(files["train"]), "--eval_split_name", "none", "--label_separator", "|",
        "--cache_features", "--feature_cache_dir", str(root / "cache"), "--num_train_epochs", "4",
        "--per_device_train_batch_size", "6", "--learning_rate", "3e-3", "--seed", "7",
        "--weight_averaging_start_epoch", "2", "--save_strategy", "epoch", "--report_to", "none",
        "--disable_tqdm", "true", "--use_cpu", "true", "--eval_strategy", "no",
    ]
    env = child_env(tmp_path, OMP_NUM_THREADS="1")
    full, part = tmp_path / "full", tmp_path / "part"
    run(common + ["--output_dir", str(full)], env)
    run(common + ["--output_dir", str(part)], env)
    checkpoints = sorted(part.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    assert len(checkpoints) == 4  # one per epoch (3 steps each)
    for path in checkpoints[3:]:  # the last epoch is "lost": resume after epoch 3
        shutil.rmtree(path)
    (part / "audio_tagging_head.safetensors").unlink()
    assert torch.load(checkpoints[2] / "weight_average.pt", weights_only=True)["count"] == 2  # epochs 2 and 3
    log = run(common + ["--output_dir", str(part), "--resume_from_checkpoint", "latest"], env)
    assert "Weight average restored" in log and checkpoints[2].name in log
    full_weights, part_weights = _head_weights(full), _head_weights(part)
    for key in full_weights:
        torch.testing.assert_close(part_weights[key], full_weights[key], rtol=0, atol=1e-6, msg=key)


# ----------------------------------------------------------------------------------------------------------------------
# Lineage, push settings checked up front, damaged checkpoints (issue 13 item 4, issue 12 item 6)
# ----------------------------------------------------------------------------------------------------------------------
def test_base_model_hub_id_is_found_or_the_push_refused(tmp_path):
    from whisper_at_hf.training import record_base_model, require_hub_base, resolve_base_model_id

    assert resolve_base_model_id("openai/whisper-small") == ("openai/whisper-small", None)
    snapshot = tmp_path / "hub" / "models--openai--whisper-base" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert resolve_base_model_id(str(snapshot)) == ("openai/whisper-base", "abc123")
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    (recorded / "config.json").write_text(json.dumps({"_name_or_path": "openai/whisper-tiny.en"}))
    assert resolve_base_model_id(str(recorded)) == ("openai/whisper-tiny.en", None)
    assert resolve_base_model_id(str(TINY_EN)) == (None, None)  # a plain local folder
    assert resolve_base_model_id(str(TINY_EN), "openai/whisper-tiny.en") == ("openai/whisper-tiny.en", None)
    with pytest.raises(ValueError, match="not a Hub model id"):
        resolve_base_model_id(str(TINY_EN), "/abs/path")
    with pytest.raises(ValueError, match="--base_model_id"):
        require_hub_base(str(TINY_EN))

    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(), num_labels=2)
    record_base_model(model, str(snapshot))
    assert (model.config.base_model_name_or_path, model.config.base_model_revision) == ("openai/whisper-base", "abc123")
    record_base_model(model, str(TINY_EN))
    # the local path, absolute (compared resolved: ../shared may be reached through a link)
    recorded = model.config.base_model_name_or_path
    assert Path(recorded).is_absolute() and Path(recorded).resolve() == TINY_EN.resolve()


@pytest.mark.slow  # two script subprocesses
@pytest.mark.parametrize("script", [TRAIN_HEAD, TRAIN_HEAD_TRAINER])
def test_push_settings_fail_before_any_work(script, tiny_setup, tmp_path):
    root, whisper_dir, files = tiny_setup
    common = [sys.executable, str(script), "--model_name_or_path", str(whisper_dir), "--train_file",
              str(files["train"]), "--label_separator", "|", "--output_dir", str(tmp_path / "out"), "--push_to_hub"]
    for extra, message in (
        ([], "--push_to_hub needs --hub_model_id"),
        (["--hub_model_id", "me/head"], "the base Whisper .* is a local folder with no Hub id on record"),
    ):
        result = subprocess.run(common + extra, env=child_env(tmp_path), capture_output=True, text=True, cwd=REPO_ROOT)
        output = result.stdout + result.stderr
        assert result.returncode != 0 and re.search(message, output), output[-3000:]
        assert "Encoding audio" not in output and "Training" not in output
        assert not (tmp_path / "out" / "feature_cache").exists()


@pytest.mark.slow  # trains, damages, resumes
def test_damaged_newest_checkpoint_falls_back_with_a_warning(tiny_setup, tmp_path):
    """Checkpoints are written under a temporary name and renamed; `latest` skips a damaged newer one."""
    root, whisper_dir, files = tiny_setup
    out = tmp_path / "out"
    common = [
        sys.executable, str(TRAIN_HEAD), "--model_name_or_path", str(whisper_dir), "--train_file", str(files["train"]),
        "--eval_split_name", "none", "--label_separator", "|", "--cache_features", "--feature_cache_dir",
        str(root / "cache"), "--per_device_train_batch_size", "6", "--learning_rate", "3e-3", "--seed", "7",
        "--save_steps", "2", "--save_total_limit", "5", "--disable_tqdm", "--output_dir", str(out),
        "--base_model_id", "openai/whisper-tiny.en",
    ]  # fmt: skip
    env = child_env(tmp_path, OMP_NUM_THREADS="1")
    run(common + ["--num_train_epochs", "2"], env)  # 3 steps per epoch: checkpoints 2, 4, 6
    assert sorted(p.name for p in out.iterdir() if p.name.startswith((".", "checkpoint"))) == [
        "checkpoint-2", "checkpoint-4", "checkpoint-6"
    ]  # no temporary folder left behind  # fmt: skip
    assert json.loads((out / "config.json").read_text())["base_model_name_or_path"] == "openai/whisper-tiny.en"
    (out / "checkpoint-6" / "training_state.json").write_text("")  # e.g. killed while writing
    (out / "checkpoint-4" / "model.safetensors").write_bytes(b"\x00" * 10)  # truncated weights
    log = run(common + ["--num_train_epochs", "3", "--resume_from_checkpoint", "latest"], env)
    assert re.search(r"checkpoint-6 is damaged \(training_state.json is unreadable", log), log[-3000:]
    assert re.search(r"checkpoint-4 is damaged \(model.safetensors is corrupt", log), log[-3000:]
    assert "Resumed from" in log and "checkpoint-2 (step 2" in log


# ----------------------------------------------------------------------------------------------------------------------
# End to end on whisper-tiny.en: 2-process Accelerate (builds the cache once), 1-process Accelerate + push, Trainer,
# then pipeline("whisper-at", model=REPO_ID) from a fresh cache through the loopback Hub.
# The real whisper-tiny.en weights are first uploaded to the loopback Hub as BASE_ID, and the scripts train on that
# Hub id: the pushed head-only config then names a Hub base, which the pipeline must fetch from a fresh cache.
# ----------------------------------------------------------------------------------------------------------------------
BASE_ID = "openai/whisper-tiny.en"
REPO_ID = "tester/whisper-at-synthetic"
E2E_SPLITS = {"per_class": {"train": 5, "test": 2}, "mixtures": {"train": 1, "test": 1}, "seconds": 5.0}
E2E_TRAIN_ROWS = 5 * 7 + 4  # 39 training clips (+ 18 held out): 57 clips of 5 s
E2E_ARGS = [
    "--model_name_or_path", BASE_ID, "--label_separator", "|", "--cache_features",
    "--num_train_epochs", "10", "--per_device_train_batch_size", "8", "--learning_rate", "2e-3",
    "--warmup_steps", "4", "--seed", "0",
]


def _final_map(output_dir: Path) -> float:
    return json.loads((output_dir / "eval_results.json").read_text())["eval_mAP"]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    from huggingface_hub import HfApi

    root = tmp_path_factory.mktemp("e2e")
    files = write_dataset(root / "data", SHARED_AUDIO, **E2E_SPLITS)
    server, hub, endpoint = start_hub_server()
    # upload through the real client (the endpoint is passed explicitly: this process imported huggingface_hub
    # before HF_ENDPOINT could be set)
    api = HfApi(endpoint=endpoint, token="test-token")
    api.create_repo(BASE_ID)
    api.upload_folder(repo_id=BASE_ID, folder_path=str(TINY_EN))
    data = ["--train_file", str(files["train"]), "--validation_file", str(files["test"]),
            "--feature_cache_dir", str(root / "cache")]
    env = child_env(root, HF_HUB_OFFLINE="0", HF_ENDPOINT=endpoint, HF_TOKEN="test-token")
    outputs, logs, seconds = {}, {}, {}

    def timed(name, cmd):
        start = time.perf_counter()
        logs[name] = run(cmd, env)
        seconds[name] = time.perf_counter() - start

    # 1) two processes: the feature cache is built once, sharded over the processes. `accelerate launch --cpu` with
    # several processes needs mpirun; without it, torchrun (`--multi_gpu`) + ACCELERATE_USE_CPU gives MULTI_CPU/gloo.
    outputs["ddp"] = root / "ddp"
    ddp_env = dict(env, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1")
    start = time.perf_counter()
    logs["ddp"] = run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                       "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(TRAIN_HEAD),
                       *E2E_ARGS, *data, "--output_dir", str(outputs["ddp"]), "--disable_tqdm"], ddp_env)
    seconds["ddp"] = time.perf_counter() - start
    # 2) one process, reusing the cache, pushing the head
    outputs["single"] = root / "single"
    timed("single", [sys.executable, str(TRAIN_HEAD), *E2E_ARGS, *data, "--output_dir", str(outputs["single"]),
                     "--disable_tqdm", "--push_to_hub", "--hub_model_id", REPO_ID])
    # 3) Trainer, reusing the cache
    outputs["trainer"] = root / "trainer"
    timed("trainer", [sys.executable, str(TRAIN_HEAD_TRAINER), *E2E_ARGS, *data,
                      "--output_dir", str(outputs["trainer"]), "--eval_strategy", "epoch",
                      "--logging_strategy", "epoch", "--save_strategy", "no", "--report_to", "none",
                      "--disable_tqdm", "true", "--use_cpu", "true"])
    maps = {name: _final_map(path) for name, path in outputs.items()}
    print(f"e2e held-out mAP: {maps}; seconds: { {k: round(v) for k, v in seconds.items()} }")
    yield dict(root=root, files=files, outputs=outputs, logs=logs, hub=hub, endpoint=endpoint)
    server.shutdown()


@pytest.mark.slow
def test_runs_print_no_http_request_lines(e2e):
    """The Hub client's HTTP loggers are quieted (issue 22, item 5: ~20 `HTTP Request: ...` INFO lines per push)."""
    assert "Pushed to" in e2e["logs"]["single"]  # the run did talk to the Hub
    for name, log in e2e["logs"].items():
        assert "HTTP Request" not in log and "urllib3.connectionpool" not in log, name


@pytest.mark.slow
def test_two_process_accelerate_builds_cache_once_and_trains(e2e):
    log = e2e["logs"]["ddp"]
    assert "DistributedType.MULTI_CPU" in log and "Num processes: 2" in log
    assert len(re.findall(r"Feature cache built", log)) == 1  # main process logs; the other waits
    caches = sorted(p.name.split("-")[1] for p in (e2e["root"] / "cache").iterdir())
    assert caches == ["eval", "train"]  # one merged cache per split, no leftover shards
    train_cache = next((e2e["root"] / "cache").glob("pooled-train-*"))
    assert json.loads((train_cache / "cache_complete.json").read_text())["rows"] == E2E_TRAIN_ROWS
    assert _final_map(e2e["outputs"]["ddp"]) >= 0.9


@pytest.mark.slow
def test_single_process_reuses_cache_and_matches_ddp(e2e):
    assert "Feature cache reused" in e2e["logs"]["single"]
    assert "Encoding audio" not in e2e["logs"]["single"]
    single, ddp = _final_map(e2e["outputs"]["single"]), _final_map(e2e["outputs"]["ddp"])
    assert single >= 0.9
    assert abs(single - ddp) <= 0.05, (single, ddp)
    assert re.search(r"epoch 10: .*\"train_loss\".*\"lr\".*\"eval_mAP\"", e2e["logs"]["single"])


@pytest.mark.slow
def test_trainer_script_reaches_map(e2e):
    assert "Encoding audio" not in e2e["logs"]["trainer"]
    assert _final_map(e2e["outputs"]["trainer"]) >= 0.9
    assert "eval_mAP" in e2e["logs"]["trainer"]


@pytest.mark.slow
def test_pushed_head_is_small_and_has_card(e2e):
    repo = e2e["hub"].repos[REPO_ID]["files"]
    assert "audio_tagging_head.safetensors" in repo and "model.safetensors" not in repo
    assert sum(len(data) for data in repo.values()) < 30e6
    assert {"config.json", "README.md", "label_names.json", "modeling_whisper_at.py"} <= set(repo)
    assert {"preprocessor_config.json", "processor_config.json"} & set(repo)
    config = json.loads(repo["config.json"])
    assert [config["id2label"][str(i)] for i in range(7)] == sorted(CLASSES)
    assert config["base_model_name_or_path"] == BASE_ID
    card = repo["README.md"].decode()
    measured = _final_map(e2e["outputs"]["single"])
    assert f"value: {round(100 * measured, 2)}" in card  # the card gives mAP in percent
    assert f"base_model: {BASE_ID}" in card and "type: csv" in card


@pytest.mark.slow
def test_pipeline_tags_held_out_clip_with_pushed_head(e2e, tmp_path):
    import csv

    with open(e2e["files"]["test"]) as handle:
        rows = list(csv.DictReader(handle))
    expected = ["Beep", "Speech"]
    clips = [str(e2e["root"] / "data" / next(r["audio"] for r in rows if r["label"] == name)) for name in expected]
    script = f"""
import json, whisper_at_hf
from transformers import pipeline

tagger = pipeline("whisper-at", model={REPO_ID!r})
print("NAME=" + tagger.model.name_or_path + " BASE=" + tagger.model.config.base_model_name_or_path)
# short greedy transcripts: on non-speech, default decoding can run for minutes (tags do not depend on it)
generate_kwargs = {{"max_new_tokens": 8, "num_beams": 1}}
out = [tagger(path, top_k=3, generate_kwargs=generate_kwargs)["audio_tags"][0]["tags"] for path in {clips!r}]
print("TOP=" + json.dumps(out))
"""
    fresh_home = tmp_path / "fresh_home"
    env = child_env(tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT=e2e["endpoint"], HF_HOME=str(fresh_home))
    seen = len(e2e["hub"].requests)
    out = run([sys.executable, "-c", script], env)
    assert f"NAME={REPO_ID} BASE={BASE_ID}" in out, out[-3000:]
    tags = json.loads(out.split("TOP=")[1].splitlines()[0])
    assert [clip_tags[0]["label"] for clip_tags in tags] == expected, tags
    # the head, its label names and the base Whisper all came over HTTP into the fresh cache
    requests = e2e["hub"].requests[seen:]
    assert any(re.fullmatch(rf"GET /{REPO_ID}/resolve/\w+/audio_tagging_head.safetensors", r) for r in requests)
    assert any(re.fullmatch(rf"GET /{REPO_ID}/resolve/\w+/label_names.json", r) for r in requests), requests
    assert any(re.fullmatch(rf"GET /{BASE_ID}/resolve/\w+/model.safetensors", r) for r in requests), requests
    assert list(fresh_home.rglob("model.safetensors"))


@pytest.mark.slow  # the README's example as written: makes the data, then trains tiny.en's head (~1-3 min on CPU)
def test_readme_example_runs_as_written(tmp_path):
    """training/README.md's first two example commands, run as written from a checkout whose `../shared` holds
    tiny.en: the data step makes what `synthetic_tiny_en.json` reads, and the run leaves a head-only checkpoint."""
    readme = (REPO_ROOT / "training" / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Example", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.startswith("python ")][:2]
    assert commands[0].startswith("python training/make_synthetic_data.py data")
    assert commands[1] == "python training/train_head.py training/configs/synthetic_tiny_en.json"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "training").symlink_to(REPO_ROOT / "training")
    (tmp_path / "shared").symlink_to(REPO_ROOT.parent / "shared")
    env = child_env(tmp_path, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for command in commands:
        done = subprocess.run(command, shell=True, env=env, cwd=checkout, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}:\n{(done.stdout + done.stderr)[-6000:]}"
    assert len((checkout / "data" / "train.csv").read_text().splitlines()) == 1 + 57
    out = checkout / "out" / "whisper-at-tiny.en-custom"
    assert (out / "audio_tagging_head.safetensors").is_file() and (out / "README.md").is_file()
    config = json.loads((out / "config.json").read_text())
    assert sorted(config["id2label"].values()) == sorted(CLASSES)
