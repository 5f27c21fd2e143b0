"""`model_sources`: one check of `--model` / `model=` for every entry point, and local checkpoint fingerprints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
from conftest import REPO_ROOT, SHARED_AUDIO, TINY_EN

from whisper_at_hf.model_sources import (
    ModelSourceError,
    ModelSourceNotFoundError,
    check_model_source,
    checkpoint_fingerprint,
)

PLAIN_WHISPER = "plain Whisper checkpoint without an audio-tagging head"
HOW_TO_ADD = "WhisperForAudioTaggingAndASR.from_whisper"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


@pytest.fixture
def other_type_folder(tmp_path) -> Path:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    return folder


@pytest.mark.parametrize("name, closest", [("larg-v2", "large-v2"), ("tiny.en.bogus", "tiny.en"), ("smal", "small")])
def test_mistyped_variant_lists_the_names_and_the_closest(name, closest, offline):
    with pytest.raises(ModelSourceNotFoundError, match=f"Did you mean {closest!r}") as info:
        check_model_source(name)
    assert "The variants are tiny.en, tiny, base.en" in str(info.value) or all(
        variant in str(info.value) for variant in ("tiny.en", "base.en", "large-v2", "small_low"))
    assert isinstance(info.value, FileNotFoundError)


def test_names_that_are_fine(tmp_path, offline):
    assert check_model_source(None) is None
    assert check_model_source("tiny.en") == "variant" and check_model_source("large") == "variant"
    folder = tmp_path / "at"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "whisper_at"}))
    assert check_model_source(folder) == "folder"
    assert check_model_source(TINY_EN, expect="whisper") == "folder"  # whisper-at-convert --whisper
    assert check_model_source(folder, expect="whisper") == "folder"  # a Whisper-AT folder has a Whisper too


@pytest.mark.needs_shared
def test_folder_problems(tmp_path, other_type_folder, offline):
    with pytest.raises(ModelSourceError, match=f"{PLAIN_WHISPER}.*{HOW_TO_ADD}.*whisper-at-convert"):
        check_model_source(TINY_EN)
    with pytest.raises(ModelSourceError, match="is a bert checkpoint, not a whisper_at one"):
        check_model_source(other_type_folder)
    with pytest.raises(ModelSourceError, match="is a bert checkpoint, not a whisper one"):
        check_model_source(other_type_folder, expect="whisper")
    with pytest.raises(ModelSourceError, match="has no config.json"):
        check_model_source(tmp_path)
    with pytest.raises(ModelSourceError, match="--model is empty"):
        check_model_source("")
    for missing in (tmp_path / "missing", "./missing", "~/missing-at", "a/b/c"):
        with pytest.raises(ModelSourceNotFoundError, match="no such local directory"):
            check_model_source(missing)


def test_hub_id_offline_and_not_cached(offline):
    with pytest.raises(ModelSourceNotFoundError, match="nor a Hub model in the cache, and HF_HUB_OFFLINE is set"):
        check_model_source("nobody/no-such-model")


@pytest.mark.needs_shared
def test_hub_ids_on_the_loopback_hub(monkeypatch, tmp_path):
    from hub_server import start_hub_server

    server, hub, endpoint = start_hub_server()
    try:
        hub.add_repo("openai/whisper-tiny.en", TINY_EN)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(huggingface_hub.constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        cache = str(tmp_path / "cache")
        with pytest.raises(ModelSourceNotFoundError, match="neither a local folder nor a model on the Hub"):
            check_model_source("nobody/no-such-model", cache_dir=cache)
        with pytest.raises(ModelSourceError, match=PLAIN_WHISPER):
            check_model_source("openai/whisper-tiny.en", cache_dir=cache)
        assert check_model_source("openai/whisper-tiny.en", expect="whisper", cache_dir=cache) == "hub"
    finally:
        server.shutdown()


# ----------------------------------------------------------------------------------------------------------------------
# Every entry point: the same message, exit code 2 (CLIs) / FileNotFoundError or ValueError (compat)
# ----------------------------------------------------------------------------------------------------------------------
ENTRY_POINT_CASES = [("larg-v2", "Did you mean 'large-v2'"), ("", "is empty"),
                     ("./no/such/dir", "no such local directory"), ("nobody/no-such-model", "HF_HUB_OFFLINE")]


@pytest.mark.needs_shared
@pytest.mark.parametrize("model, message", ENTRY_POINT_CASES + [("PLAIN", PLAIN_WHISPER)])
def test_cli_and_annotate_report_model_problems(model, message, tmp_path, offline, capsys):
    from whisper_at_hf import annotate, cli

    model = str(TINY_EN) if model == "PLAIN" else model
    clip = tmp_path / "clip.wav"
    shutil.copy(SHARED_AUDIO / "speech_en.wav", clip)
    assert cli.main([str(clip), "--model", model, "-o", str(tmp_path / "cli"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "whisper-at: error: " in err and message in err
    assert cli.main(["--live", str(clip), "--model", model, "-o", str(tmp_path / "live"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "whisper-at: error: " in err and message in err
    assert annotate.main([str(clip), "--model", model, "-o", str(tmp_path / "annotate"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "whisper-at-annotate: error: " in err and message in err
    assert not (tmp_path / "annotate" / "manifest.json").exists()


@pytest.mark.needs_shared
@pytest.mark.parametrize("model, message", ENTRY_POINT_CASES[2:] + [("OTHER", "is a bert checkpoint")])
def test_convert_whisper_problems_are_usage_errors(model, message, tmp_path, other_type_folder, offline, capsys):
    from whisper_at_hf.convert_original_whisper_at import main

    model = str(other_type_folder) if model == "OTHER" else model
    with pytest.raises(SystemExit) as exited:
        main(["--whisper", model, "--at-checkpoint", "head.pth", "--output", str(tmp_path / "out")])
    assert exited.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.needs_shared
@pytest.mark.parametrize("model, message", ENTRY_POINT_CASES + [("PLAIN", PLAIN_WHISPER)])
def test_compat_load_model_reports_model_problems(model, message, offline):
    from whisper_at_hf import compat

    model = str(TINY_EN) if model == "PLAIN" else model
    with pytest.raises((FileNotFoundError, ValueError), match=message.replace("(", r"\(")):
        compat.load_model(model, device="cpu")


def test_model_problem_in_a_subprocess_is_no_traceback():
    """A model problem is a message, not a traceback, also in a subprocess (the console scripts' path)."""
    command = [sys.executable, "-m", "whisper_at_hf.cli", str(REPO_ROOT / "README.md"), "--model", "larg-v2", "-q"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2 and "Did you mean 'large-v2'" in done.stderr and "Traceback" not in done.stderr


# ----------------------------------------------------------------------------------------------------------------------
# Fingerprints
# ----------------------------------------------------------------------------------------------------------------------
def test_fingerprint_follows_the_contents_not_the_path(tmp_path, monkeypatch):
    from whisper_at_hf import model_sources

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "whisper_at"}')
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + b"\x01" * 5000)
    (folder / "README.md").write_text("card")
    first = checkpoint_fingerprint(folder)
    assert first.startswith("sha256:") and checkpoint_fingerprint(tmp_path / "missing") is None
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert checkpoint_fingerprint(copy) == first
    (copy / "README.md").write_text("another card")  # not part of the model
    assert checkpoint_fingerprint(copy) == first
    for change in (b"\x02", b"\x01\x01"):  # same size, other bytes; another size
        (copy / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:-1] + change)
        assert checkpoint_fingerprint(copy) != first
    # a large file is sampled: a change in one of its blocks is seen (here with a 1 KiB limit and 1 KiB blocks)
    monkeypatch.setattr(model_sources, "_FULL_HASH_LIMIT", 1024)
    monkeypatch.setattr(model_sources, "_BLOCK", 256)
    shutil.copy(folder / "model.safetensors", copy / "model.safetensors")
    sampled = checkpoint_fingerprint(copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert checkpoint_fingerprint(copy) != sampled
