"""`whisper-at-annotate`: input kinds, the work split, resumable shards, errors, tags-only, 2 processes, Hub push.

The end-to-end tests (`slow`) run the real command (`python -m whisper_at_hf.annotate`, and `accelerate launch -m`
with 2 CPU processes over gloo) on clips from ../shared/audio with whisper-tiny.en + a random seeded head.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO_ROOT, SHARED_AUDIO

from whisper_at_hf_cli import annotate as annotate_arguments

from whisper_at_hf import annotate
from whisper_at_hf.annotate import compatibility_problems, open_input, shard_owner

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

SRC = REPO_ROOT / "src"
GOOD_CLIPS = sorted(p.name for p in SHARED_AUDIO.glob("*") if p.suffix in (".wav", ".flac"))  # mp3 needs ffmpeg
# Greedy decoding keeps the full runs short; the tags do not depend on it.
FAST_DECODING = ["--num-beams", "1"]


def child_env(tmp: Path, **extra) -> dict:
    env = dict(os.environ)
    env.update(PYTHONPATH=f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}", HF_HOME=str(tmp / "hf_home"),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def run_annotate(args: list, env: dict, launcher: list | None = None, expect: int = 0, timeout: int = 900) -> str:
    command = [*(launcher or [sys.executable, "-m"]), "whisper_at_hf.annotate", *map(str, args)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == expect, f"exit {result.returncode} (expected {expect}):\n{output[-6000:]}"
    return output


def read_rows(out: Path) -> dict[int, dict]:
    from datasets import load_dataset

    rows = load_dataset("parquet", data_dir=str(out), split="train", cache_dir=str(out.parent / "read_cache"))
    by_index = {row["index"]: row for row in rows}
    assert len(by_index) == len(rows), "duplicated rows"
    return by_index


def assert_same_tags(a: dict, b: dict, tolerance: float = 1e-5) -> None:
    assert [w["labels"] for w in a["audio_tags"]] == [w["labels"] for w in b["audio_tags"]], (a["id"], b["id"])
    assert [(w["start"], w["end"]) for w in a["audio_tags"]] == [(w["start"], w["end"]) for w in b["audio_tags"]]
    scores_a = np.array([s for w in a["audio_tags"] for s in w["scores"]])
    scores_b = np.array([s for w in b["audio_tags"] for s in w["scores"]])
    np.testing.assert_allclose(scores_a, scores_b, atol=tolerance, rtol=0)


# ----------------------------------------------------------------------------------------------------------------------
# Units
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("done", [[], [0], [1, 2], [0, 3, 4, 9]])
def test_unfinished_shards_are_dealt_disjointly_and_evenly(world, done):
    shards = range(10)
    owners = {shard: shard_owner(shard, done, world) for shard in shards}
    assert [shard for shard, owner in owners.items() if owner is None] == done
    per_process = [[s for s, owner in owners.items() if owner == rank] for rank in range(world)]
    assert sorted(s for part in per_process for s in part) == [s for s in shards if s not in done]
    sizes = [len(part) for part in per_process]
    assert max(sizes) - min(sizes) <= 1  # a rerun spreads what is left evenly


def test_compatibility_problems_name_what_changed():
    old = {"model": "a", "model_revision": None, "shard_size": 4, "input": {"kind": "files"},
           "options": {"top_k": 5, "tags_only": False}}
    assert compatibility_problems(old, json.loads(json.dumps(old))) == []
    new = {**old, "model": "b", "options": {"top_k": 3, "tags_only": False}}
    assert compatibility_problems(old, new) == ["model: 'a' -> 'b'", "options.top_k: 5 -> 3"]


def _args(*argv: str):
    return annotate_arguments.parse_args([*argv, "--model", "unused", "-o", "unused"])


def test_inputs_files_folders_globs_keep_missing_paths(tmp_path):
    for name in ("b.wav", "a.flac", "sub/c.wav", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    corpus = open_input(_args(str(tmp_path), str(tmp_path / "*.wav"), str(tmp_path / "missing.wav")))
    paths = [str(tmp_path / p) for p in ("a.flac", "b.wav", "sub/c.wav", "missing.wav")]
    assert corpus.dataset["audio"] == paths and corpus.num_rows == 4 and not corpus.streaming
    items = [annotate.make_item(corpus, i, row) for i, row in enumerate(corpus.dataset)]
    assert [item.id for item in items] == paths
    with pytest.raises(annotate.AudioDecodeError, match="no such file"):
        annotate.decode(items[-1])


def test_inputs_csv_list_relative_paths_and_streaming(tmp_path):
    shutil.copy(SHARED_AUDIO / "speech_de.wav", tmp_path / "clip.wav")
    (tmp_path / "list.csv").write_text("key,file\nfirst,clip.wav\nsecond,/absolute/missing.wav\n")
    for streaming in (False, True):
        args = _args(str(tmp_path / "list.csv"), "--audio-column", "file", "--id-column", "key",
                     *(["--streaming"] if streaming else []))
        corpus = open_input(args)
        assert corpus.streaming is streaming
        items = [annotate.make_item(corpus, i, row) for i, row in enumerate(corpus.dataset)]
        assert [item.id for item in items] == ["first", "second"]
        assert items[0].audio == str(tmp_path / "clip.wav") and items[0].path == "clip.wav"
        assert annotate.decode(items[0]).duration == pytest.approx(sf.info(tmp_path / "clip.wav").duration)
    with pytest.raises(ValueError, match=r"no audio column 'audio'.*\['key', 'file'\]"):
        open_input(_args(str(tmp_path / "list.csv")))


def test_inputs_saved_dataset_audio_is_read_undecoded(tmp_path):
    from datasets import Audio, Dataset

    files = [str(SHARED_AUDIO / name) for name in ("speech_en.wav", "speech_en_stereo_44k.flac")]
    Dataset.from_dict({"audio": files, "id": ["en", "stereo"]}).cast_column("audio", Audio()).save_to_disk(
        tmp_path / "saved")
    corpus = open_input(_args(str(tmp_path / "saved")))
    assert corpus.description["kind"] == "saved" and corpus.id_column == "id"
    items = [annotate.make_item(corpus, i, row) for i, row in enumerate(corpus.dataset)]
    assert isinstance(items[1].audio, dict) and items[1].audio["bytes"]  # embedded bytes, not decoded by datasets
    audio = annotate.decode(items[1])
    assert audio.sampling_rate == 16000 and audio.array.ndim == 1 and audio.duration == pytest.approx(7.7, abs=0.05)


def test_tags_only_rejects_decoder_options():
    with pytest.raises(SystemExit):
        _args("x.wav", "--tags-only", "--num-beams", "2")
    assert _args("x.wav", "--tags-only").label_language == "en"
    assert _args("x.wav").label_language == "follow_asr"


@pytest.mark.parametrize("flags, message", [
    (["--num-beams", "0"], "--num-beams must be a whole number >= 1, got 0"),
    (["--num-beams", "3000"], "--num-beams must be a whole number <= 64"),
    (["--max-new-tokens", "-5"], "--max-new-tokens must be a whole number >= 1, got -5"),
    (["--max-new-tokens", "100000"], "--max-new-tokens must be a whole number <= 444"),
])
def test_decoder_option_bounds_are_usage_errors(flags, message, capsys):
    with pytest.raises(SystemExit) as exited:
        _args("x.wav", *flags)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_language_and_task_follow_the_one_rule_of_options():
    """Annotate, the CLI, the pipeline and compat share `options.check_language_and_task`."""
    from types import SimpleNamespace

    def call_kwargs(multilingual: bool, *flags: str) -> dict:
        model = SimpleNamespace(generation_config=SimpleNamespace(is_multilingual=multilingual))
        fake = SimpleNamespace(args=_args("x.wav", *flags), model=model, model_name="tiny.en")
        return annotate.Annotator._call_kwargs(fake)

    assert "language" not in call_kwargs(False, "--language", "<|en|>", "--task", "transcribe")
    assert call_kwargs(True, "--language", "de", "--task", "translate")["task"] == "translate"
    for flags, asked in ((["--language", "de"], "--language 'de'"), (["--task", "translate"], "--task 'translate'")):
        with pytest.raises(ValueError, match=f"tiny.en is an English-only model: it has no {asked}"):
            call_kwargs(False, *flags)


def test_output_features_follow_options():
    full = annotate.build_features(_args("x.wav", "--segments", "--save-probs"))
    assert {"text", "language", "segments", "tag_probs", "audio_tags", "model", "model_revision"} <= set(full)
    assert str(full["tag_probs"].feature.feature.dtype) == "float16"
    tags_only = annotate.build_features(_args("x.wav", "--tags-only"))
    assert not {"segments", "tag_probs"} & set(tags_only)
    # the documented columns in both kinds of output (null text/language with --tags-only): one dataset
    assert {"text", "language"} <= set(tags_only) and list(tags_only) == [
        name for name in annotate.build_features(_args("x.wav")) if name in tags_only]
    assert annotate.build_features(_args("x.wav", "--tags-only")) == annotate.build_features(_args("x.wav"))


@pytest.mark.parametrize("name", ["./clipz", "~/clipz", "data/clips/typo", "clips.d", "clipz/", "a\\b"])
def test_mistyped_input_folder_is_no_such_folder_not_a_hub_id(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        open_input(_args(name))


def test_missing_input_while_offline_is_no_such_folder(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="no such folder: 'someone/clipz'.*HF_HUB_OFFLINE"):
        open_input(_args("someone/clipz"))


def test_missing_hub_dataset_is_a_clear_error_not_a_traceback(tmp_path):
    """Online, a name like org/name is tried on the Hub (here the loopback server, which has no such dataset)."""
    from hub_server import start_hub_server

    server, _, endpoint = start_hub_server()
    try:
        env = child_env(tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT=endpoint)
        output = run_annotate(["someone/clipz", "--model", "tiny.en", "-o", tmp_path / "out"], env, expect=2,
                              timeout=300)
    finally:
        server.shutdown()
    assert "no such folder 'someone/clipz', and no Hub dataset of that name" in output
    assert "Traceback" not in output and not (tmp_path / "out" / "manifest.json").exists()


def test_progress_shows_audio_speed_readably():
    assert annotate.audio_speed(30.0, 60.0) == "audio 0.5 min, 0.5x real time"
    assert annotate.audio_speed(0.9, 60.0) == "audio 0.0 min, 0.015x real time"  # was "0.000 h/s"
    assert annotate.audio_speed(7200.0, 10.0) == "audio 2.0 h, 720x real time"


def test_version_answers(capsys):
    from whisper_at_hf import __version__

    with pytest.raises(SystemExit) as exited:
        annotate_arguments.build_parser().parse_args(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"whisper-at-annotate {__version__}"


def test_tags_only_run_errors_resume_and_refusal_in_process(tiny_en_at_dir, tmp_path, capsys):
    """The whole command in this process on 4 short clips (one unreadable), tags only: fast enough for every run."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("speech_de.wav", "speech_fr.wav", "beeps_10s.wav"):
        shutil.copy(SHARED_AUDIO / name, folder / name)
    (folder / "broken.wav").write_bytes(b"RIFF not really")
    out = tmp_path / "out"
    argv = [str(folder), "--model", str(tiny_en_at_dir), "-o", str(out), "--tags-only", "--shard-size", "2",
            "--batch-size", "2", "--top-k", "3"]
    assert annotate.main(argv) == 1  # one input failed
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["index"], e["id"]) for e in errors] == [(1, str(folder / "broken.wav"))]
    rows = read_rows(out)
    assert sorted(rows) == [0, 2, 3]
    seconds = {name: sf.info(SHARED_AUDIO / name).duration
               for name in ("speech_de.wav", "speech_fr.wav", "beeps_10s.wav")}
    german = rows[2]
    assert german["duration"] == pytest.approx(seconds["speech_de.wav"], abs=1e-4)
    assert [len(w["labels"]) for w in german["audio_tags"]] == [3]
    assert german["audio_tags"][0]["end"] == pytest.approx(round(seconds["speech_de.wav"], 2))
    first = json.loads((out / "manifest.json").read_text())
    assert first["totals"] == {"shards": 2, "inputs": 4, "rows": 3, "errors": 1,
                               "audio_seconds": pytest.approx(sum(seconds.values()), abs=0.01)}

    assert annotate.main(argv) == 1  # resumed: nothing left to do, the failure is still reported
    assert json.loads((out / "manifest.json").read_text())["runs"][-1]["shards_computed"] == 0
    assert annotate.main([*argv, "--at-time-res", "4"]) == 2
    assert "options.at_time_res: None -> 4.0" in capsys.readouterr().err
    assert annotate.main([*argv, "--at-time-res", "4", "--overwrite"]) == 1
    rows = read_rows(out)
    assert [(w["start"], w["end"]) for w in rows[2]["audio_tags"]] == [
        (0.0, 4.0), (4.0, pytest.approx(round(seconds["speech_de.wav"], 2)))]
    assert len(json.loads((out / "manifest.json").read_text())["runs"]) == 1  # --overwrite starts afresh


def test_model_goes_through_the_variant_resolver(tiny_en_at_dir, tmp_path, capsys):
    """`--model` is resolved as everywhere else (`resolve_model`): a folder is itself, so --at-low-compute (for
    variant names) is refused before anything is loaded or written."""
    shutil.copy(SHARED_AUDIO / "speech_de.wav", tmp_path / "clip.wav")
    out = tmp_path / "out"
    argv = [str(tmp_path / "clip.wav"), "--model", str(tiny_en_at_dir), "-o", str(out), "--tags-only"]
    assert annotate.main([*argv, "--at-low-compute"]) == 2
    assert "low-compute applies to variant names" in capsys.readouterr().err
    assert not out.exists()


def _tags_only_argv(tmp_path: Path, model: Path, out: Path) -> list[str]:
    folder = tmp_path / "clips"
    folder.mkdir(exist_ok=True)
    for name in ("speech_de.wav", "speech_fr.wav", "beeps_10s.wav"):
        shutil.copy(SHARED_AUDIO / name, folder / name)
    return [str(folder), "--model", str(model), "-o", str(out), "--tags-only", "--shard-size", "1", "--top-k", "2",
            "-q"]


def test_truncated_or_deleted_shards_are_done_again(tiny_en_at_dir, tmp_path, capsys):
    """Each shard record holds its file's size and sha256; a resumed run checks them and redoes what differs."""
    from datasets import load_dataset

    out = tmp_path / "out"
    argv = _tags_only_argv(tmp_path, tiny_en_at_dir, out)
    assert annotate.main(argv) == 0
    first = read_rows(out)
    record = json.loads((out / "manifests/shard-00001.json").read_text())
    payload = (out / "data/train-00001.parquet").read_bytes()
    import hashlib

    assert record["file"] == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    (out / "data/train-00001.parquet").write_bytes(payload[: len(payload) // 3])  # truncated
    (out / "data/train-00002.parquet").unlink()  # deleted
    capsys.readouterr()
    assert annotate.main(argv) == 0
    err = capsys.readouterr().err
    assert "shard 1 is done again: data/train-00001.parquet has" in err
    assert "shard 2 is done again: data/train-00002.parquet is missing" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["runs"][-1]["shards_computed"] == 2
    assert manifest["runs"][-1]["shards_done_before"] == 1
    files = sorted(str(path) for path in (out / "data").glob("*.parquet"))
    rows = load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "cache"))
    assert sorted(rows["index"]) == [0, 1, 2]
    again = read_rows(out)
    assert [again[i]["audio_tags"][0]["labels"] for i in range(3)] == [first[i]["audio_tags"][0]["labels"]
                                                                      for i in range(3)]


def test_changed_local_model_is_refused_without_overwrite(tiny_en_at_dir, tmp_path, capsys):
    """A local checkpoint is identified by its contents (`model_sources.checkpoint_fingerprint`), not its path."""
    from safetensors.numpy import load_file, save_file

    model = tmp_path / "model"
    shutil.copytree(tiny_en_at_dir, model)
    out = tmp_path / "out"
    argv = _tags_only_argv(tmp_path, model, out)
    assert annotate.main([*argv, "--max-inputs", "1"]) == 0
    fingerprint = json.loads((out / "manifest.json").read_text())["model_fingerprint"]
    assert fingerprint.startswith("sha256:")
    weights = load_file(model / "model.safetensors")
    key = next(name for name in weights if "head" in name or "at_" in name)
    weights[key] = weights[key] + 1
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    capsys.readouterr()
    assert annotate.main([*argv, "--max-inputs", "1"]) == 2
    err = capsys.readouterr().err
    assert "model_fingerprint: " in err and "--overwrite" in err
    assert annotate.main([*argv, "--max-inputs", "1", "--overwrite"]) == 0
    assert json.loads((out / "manifest.json").read_text())["model_fingerprint"] not in (None, fingerprint)


def test_failed_start_writes_no_manifest(tiny_en_at_dir, tmp_path, capsys):
    """Every option is checked before the first manifest: the corrected rerun is not refused."""
    out = tmp_path / "out"
    argv = _tags_only_argv(tmp_path, tiny_en_at_dir, out)
    full = [arg for arg in argv if arg != "--tags-only"]
    for flags, message in ((["--language", "de"], "is an English-only model: it has no --language 'de'"),
                           (["--task", "translate"], "it has no --task 'translate'")):
        assert annotate.main([*full, *flags]) == 2
        assert message in capsys.readouterr().err
        assert not (out / "manifest.json").exists()
    for flags, message in ((["--num-beams", "0"], "--num-beams must be a whole number >= 1"),
                           (["--max-new-tokens", "-5"], "--max-new-tokens must be a whole number >= 1")):
        with pytest.raises(SystemExit) as exited:
            annotate.main([*full, *flags])
        assert exited.value.code == 2 and message in capsys.readouterr().err
        assert not (out / "manifest.json").exists()
    csv = tmp_path / "list.csv"
    csv.write_text(f"file\n{SHARED_AUDIO / 'speech_de.wav'}\n")
    assert annotate.main([str(csv), *argv[1:], "--audio-column", "file", "--id-column", "key"]) == 2
    assert "no id column 'key' in the input; its columns are ['file']" in capsys.readouterr().err
    assert not (out / "manifest.json").exists()
    assert annotate.main([*argv, "--max-inputs", "1"]) == 0


def test_corrupt_manifest_needs_overwrite(tiny_en_at_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = _tags_only_argv(tmp_path, tiny_en_at_dir, out)
    out.mkdir()
    (out / "manifest.json").write_text('{"tool": "whisper-at-annotate", "mod')
    assert annotate.main([*argv, "--max-inputs", "1"]) == 2
    err = capsys.readouterr().err
    assert "manifest.json is unreadable" in err and "Rerun with --overwrite" in err and "Traceback" not in err
    assert annotate.main([*argv, "--max-inputs", "1", "--overwrite"]) == 0
    assert json.loads((out / "manifest.json").read_text())["complete"]


# ----------------------------------------------------------------------------------------------------------------------
# End to end (real whisper-tiny.en, subprocesses)
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """24 clips: the shared WAV/FLAC clips (long_mix is 89 s: long-form) and copies under other names."""
    folder = tmp_path_factory.mktemp("corpus")
    names = []
    for index in range(24):
        source = SHARED_AUDIO / GOOD_CLIPS[index % len(GOOD_CLIPS)]
        target = folder / (f"copy{index // len(GOOD_CLIPS)}" if index >= len(GOOD_CLIPS) else ".") / source.name
        target.parent.mkdir(exist_ok=True)
        shutil.copy(source, target)
        names.append(target)
    assert len(set(names)) == 24
    return folder


@pytest.fixture(scope="module")
def single_full(corpus, tiny_en_at_dir, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("single_full")
    out = root / "out"
    log = run_annotate([corpus, "--model", tiny_en_at_dir, "-o", out, "--shard-size", 3, "--batch-size", 2,
                        "--segments", "--save-probs", *FAST_DECODING], child_env(root))
    return {"out": out, "rows": read_rows(out), "log": log}


@pytest.mark.slow
def test_single_process_rows(single_full, corpus):
    rows = single_full["rows"]
    assert sorted(rows) == list(range(24))
    manifest = json.loads((single_full["out"] / "manifest.json").read_text())
    assert manifest["complete"] and manifest["totals"] == {**manifest["totals"], "inputs": 24, "rows": 24, "errors": 0}
    assert manifest["options"]["num_beams"] == 1 and manifest["model"] == rows[0]["model"]
    assert (single_full["out"] / "errors.jsonl").read_text() == ""
    speech = next(row for row in rows.values() if row["id"].endswith("/speech_en.wav"))
    assert "quick" in speech["text"] and "background noise" in speech["text"] and speech["language"] == "english"
    assert speech["segments"] and speech["segments"][0]["start"] == 0.0
    assert len(speech["audio_tags"]) == 1 and len(speech["audio_tags"][0]["labels"]) == 5
    long = next(row for row in rows.values() if row["id"].endswith("long_mix.wav"))
    assert long["duration"] == pytest.approx(89.0, abs=0.01)
    assert [w["start"] for w in long["audio_tags"]] == [10.0 * k for k in range(9)]
    assert long["audio_tags"][-1]["end"] == pytest.approx(89.0, abs=0.01)
    probs = np.array(long["tag_probs"], dtype=np.float32)
    assert probs.shape == (9, 527)
    top = long["audio_tags"][3]
    np.testing.assert_allclose(probs[3, top["label_ids"]], top["scores"], atol=1e-3)
    assert json.loads(speech["options"])["segments"] is True


@pytest.mark.slow
def test_two_processes_give_the_single_process_rows(single_full, corpus, tiny_en_at_dir, tmp_path):
    out = tmp_path / "out"
    # `accelerate launch --cpu` with several processes needs mpirun; torchrun (`--multi_gpu`) + ACCELERATE_USE_CPU
    # gives MULTI_CPU over gloo.
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m"]
    run_annotate([corpus, "--model", tiny_en_at_dir, "-o", out, "--shard-size", 3, "--batch-size", 2,
                  "--segments", "--save-probs", *FAST_DECODING], child_env(tmp_path, ACCELERATE_USE_CPU="true"),
                 launcher=launcher)
    records = [json.loads(p.read_text()) for p in sorted((out / "manifests").glob("shard-*.json"))]
    assert {record["process"] for record in records} == {0, 1}
    assert [record["process"] for record in records] == [0, 1] * 4  # shards dealt round-robin
    two, one = read_rows(out), single_full["rows"]
    assert sorted(two) == sorted(one) == list(range(24))
    for index, row in one.items():
        other = two[index]
        assert (other["id"], other["text"], other["language"]) == (row["id"], row["text"], row["language"])
        assert_same_tags(row, other)
        np.testing.assert_allclose(np.array(other["tag_probs"], np.float32), np.array(row["tag_probs"], np.float32),
                                   atol=1e-3)


@pytest.mark.slow
def test_torchrun_without_gpus_runs_on_cpu_processes(tiny_en_at_dir, tmp_path):
    """Issue 21: `torchrun --nproc-per-node 2 -m whisper_at_hf.annotate` on a machine without GPUs (here, or with
    CUDA hidden) runs two CPU processes by itself, saying so, instead of asking for --cpu."""
    out = tmp_path / "out"
    argv = _tags_only_argv(tmp_path, tiny_en_at_dir, out)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m"]
    output = run_annotate(argv, child_env(tmp_path, CUDA_VISIBLE_DEVICES=""), launcher=launcher, timeout=600)
    assert output.count("no GPU found: running the 2 processes on CPUs.") == 1
    records = [json.loads(p.read_text()) for p in sorted((out / "manifests").glob("shard-*.json"))]
    assert [record["process"] for record in records] == [0, 1, 0]
    assert sorted(read_rows(out)) == [0, 1, 2]


@pytest.mark.slow
def test_tags_only_rows_carry_the_full_runs_tags(single_full, corpus, tiny_en_at_dir, tmp_path):
    out = tmp_path / "out"
    run_annotate([corpus, "--model", tiny_en_at_dir, "-o", out, "--shard-size", 5, "--batch-size", 4, "--tags-only"],
                 child_env(tmp_path))
    tags_only, full = read_rows(out), single_full["rows"]
    assert sorted(tags_only) == sorted(full)
    for index, row in full.items():
        assert tags_only[index]["text"] is None and tags_only[index]["language"] is None  # documented columns, null
        assert tags_only[index]["duration"] == row["duration"]
        assert_same_tags(row, tags_only[index])


@pytest.mark.slow
def test_killed_run_resumes_without_recomputing_finished_shards(corpus, tiny_en_at_dir, tmp_path):
    out = tmp_path / "out"
    args = [corpus, "--model", tiny_en_at_dir, "-o", out, "--shard-size", 2, "--batch-size", 2, "--tags-only", "-q"]
    env = child_env(tmp_path)
    command = [sys.executable, "-m", "whisper_at_hf.annotate", *map(str, args)]
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not list((out / "manifests").glob("shard-*.json")):
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    finished = {p.name: p.read_text() for p in (out / "manifests").glob("shard-*.json")}
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "data").glob("train-*.parquet")}
    assert 1 <= len(finished) < 12, "the run was not killed part-way"
    assert not json.loads((out / "manifest.json").read_text())["complete"]

    run_annotate(args, env)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["runs"]) == 1  # the killed run never finished
    run = manifest["runs"][0]
    assert run["shards_done_before"] == len(finished) and run["shards_computed"] == 12 - len(finished)
    assert run["inputs_computed"] == 24 - 2 * len(finished)
    for name, text in finished.items():  # untouched: same record (run id, time) and same Parquet file
        assert (out / "manifests" / name).read_text() == text
        parquet = out / "data" / name.replace("shard-", "train-").replace(".json", ".parquet")
        assert parquet.stat().st_mtime_ns == mtimes[parquet.name]
    assert sorted(read_rows(out)) == list(range(24))
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

    # A finished run: nothing to do. Other options: refused unless --overwrite.
    run_annotate(args, env)
    assert json.loads((out / "manifest.json").read_text())["runs"][-1]["shards_computed"] == 0
    refused = run_annotate([*args, "--top-k", "3"], env, expect=2)
    assert "options.top_k: 5 -> 3" in refused and "--overwrite" in refused
    assert len(read_rows(out)) == 24


@pytest.mark.slow
def test_bad_files_go_to_errors_and_the_run_goes_on(tiny_en_at_dir, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    good = ["speech_en.wav", "beeps_10s.wav", "speech_en_stereo_44k.flac", "music_10s.wav", "speech_fr.wav"]
    for name in good:
        shutil.copy(SHARED_AUDIO / name, folder / name)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("not audio at all")
    listed = ["speech_en.wav", "empty.wav", "beeps_10s.wav", "missing.wav", "speech_en_stereo_44k.flac",
              "notes.wav", "music_10s.wav", "speech_fr.wav"]
    (folder / "list.jsonl").write_text("".join(json.dumps({"file": name}) + "\n" for name in listed))
    out = tmp_path / "out"
    log = run_annotate([folder / "list.jsonl", "--audio-column", "file", "--streaming", "--model", tiny_en_at_dir,
                        "-o", out, "--shard-size", 3, "--tags-only"], child_env(tmp_path), expect=1)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["index"], e["id"]) for e in errors] == [(1, "empty.wav"), (3, "missing.wav"), (5, "notes.wav")]
    assert "empty" in errors[0]["error"] and "no such file" in errors[1]["error"]
    assert all(e["id"] in log for e in errors)
    rows = read_rows(out)
    assert sorted(rows) == [0, 2, 4, 6, 7] and [rows[i]["id"] for i in sorted(rows)] == good
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["totals"]["errors"] == 3 and manifest["totals"]["inputs"] == 8


@pytest.mark.slow
def test_push_to_hub_and_load_dataset_back(tiny_en_at_dir, tmp_path):
    from datasets import Audio, Dataset
    from hub_server import start_hub_server

    names = ["speech_en.wav", "music_10s.wav", "beeps_10s.wav"]
    Dataset.from_dict({"audio": [str(SHARED_AUDIO / n) for n in names], "id": names}).cast_column(
        "audio", Audio()).save_to_disk(tmp_path / "saved")
    server, hub, endpoint = start_hub_server()
    try:
        env = child_env(tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT=endpoint, HF_TOKEN="test-token")
        out = tmp_path / "out"
        run_annotate([tmp_path / "saved", "--model", tiny_en_at_dir, "-o", out, "--tags-only", "--save-probs",
                      "--push-to-hub", "tester/annotations"], env)
        files = hub.repos["datasets/tester/annotations"]["files"]
        assert {"README.md", "manifest.json", "errors.jsonl", "data/train-00000.parquet"} <= set(files)
        card = files["README.md"].decode()
        assert "tester/annotations" in card and str(tiny_en_at_dir) in card and "| rows | 3 |" in card
        script = ("import json; from datasets import load_dataset; rows = load_dataset('tester/annotations', "
                  "split='train'); print('ROWS=' + json.dumps([[r['id'], r['audio_tags']] for r in rows]))")
        result = subprocess.run([sys.executable, "-c", script], env=dict(env, HF_HOME=str(tmp_path / "fresh")),
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        pulled = json.loads(result.stdout.split("ROWS=")[1])
        local = read_rows(out)
        assert pulled == [[local[i]["id"], local[i]["audio_tags"]] for i in range(3)]
        assert any(r.startswith("GET /datasets/tester/annotations/resolve/") for r in hub.requests)
    finally:
        server.shutdown()


def test_events_column_is_the_pipelines_events_in_the_rows_label_language(tiny_en_at_dir, tmp_path):
    """`--events`: each row's `events` are the pipeline's (`tags` module), named in the row's label language."""
    import torch
    from transformers import pipeline

    with pytest.raises(SystemExit):
        _args("x.wav", "--tags-only", "--events")
    assert "events" in annotate.build_features(_args("x.wav", "--events"))
    assert "events" not in annotate.build_features(_args("x.wav"))
    shutil.copy(SHARED_AUDIO / "beeps_10s.wav", tmp_path / "clip.wav")
    out = tmp_path / "out"
    argv = [str(tmp_path / "clip.wav"), "--model", str(tiny_en_at_dir), "-o", str(out), "--events",
            "--label-language", "de", "--num-beams", "1", "--max-new-tokens", "2"]
    assert annotate.main(argv) == 0
    row = read_rows(out)[0]
    pipe = pipeline("whisper-at", model=str(tiny_en_at_dir), dtype=torch.float32)
    expected = pipe(str(tmp_path / "clip.wav"), return_events=True, label_language="de",
                    generate_kwargs={"num_beams": 1, "max_new_tokens": 2})["events"]
    assert expected and [e["label"] for e in row["events"]] == [e["label"] for e in expected]
    assert all(e["label"].startswith("DE_") for e in row["events"])
    for ours, theirs in zip(row["events"], expected):
        assert ours["label_id"] == theirs["label_id"]
        np.testing.assert_allclose([ours["start"], ours["end"], ours["score"]],
                                   [theirs["start"], theirs["end"], theirs["score"]], rtol=1e-5, atol=1e-6)
