"""hub_utils: the one Hub-id rule, finding files locally or on a Hub, uploads; head-only and full checkpoints
pushed to and loaded from a Hub-compatible server on 127.0.0.1 (tests/hub_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT, tiny_whisper
from hub_server import start_hub_server

from whisper_at_hf.hub_utils import find_file, is_hub_id


@pytest.mark.parametrize(
    "name, expected",
    [
        ("openai/whisper-base", True),
        ("whisper-base", True),
        ("./whisper-base", False),
        ("/abs/dir", False),
        ("~/models/x", False),
        ("a/b/c", False),
        ("", False),
        (None, False),
    ],
)
def test_is_hub_id(name, expected):
    assert is_hub_id(name) is expected


def test_an_existing_path_is_local(tmp_path, monkeypatch):
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert not is_hub_id("org/name")


def test_find_file_in_a_local_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.json").write_text("{}")
    assert find_file(tmp_path, "a.json", subfolder="sub") == str(tmp_path / "sub" / "a.json")
    assert find_file(tmp_path, "missing.json") is None
    assert find_file(tmp_path / "nowhere", "a.json") is None


CHILD = textwrap.dedent(
    """
    import json, sys, torch
    from whisper_at_hf import WhisperForAudioTaggingAndASR
    from whisper_at_hf.hub_utils import find_file
    out = sys.argv[1]
    model = WhisperForAudioTaggingAndASR.from_whisper("user/base")
    torch.manual_seed(0)
    features = torch.randn(1, 80, 3000)
    with torch.no_grad():
        expected = model.eval().tag(features)
    model.save_pretrained(out + "/head", head_only=True, push_to_hub=True, repo_id="user/head")
    model.save_pretrained(out + "/full", push_to_hub=True, repo_id="user/full")
    assert find_file("user/head", "audio_tagging_head.safetensors") is not None
    assert find_file("user/head", "model.safetensors") is None
    assert find_file("user/nonexistent", "config.json") is None
    for repo in ("user/head", "user/full"):
        loaded = WhisperForAudioTaggingAndASR.from_pretrained(repo).eval()
        with torch.no_grad():
            torch.testing.assert_close(loaded.tag(features), expected)
    config = json.load(open(find_file("user/full", "config.json")))
    assert "whisper-at" in config["custom_pipelines"], config
    assert find_file("user/full", "pipeline_whisper_at.py") and find_file("user/head", "timeline.py")
    print("OK")
    """
)


@pytest.mark.slow
def test_push_and_load_head_only_and_full_checkpoints_over_a_hub(tmp_path):
    from huggingface_hub import HfApi

    server, hub, endpoint = start_hub_server()
    try:
        base = tmp_path / "base"
        tiny_whisper(seed=0).save_pretrained(base)
        api = HfApi(endpoint=endpoint, token="test-token")
        api.create_repo("user/base")
        api.upload_folder(repo_id="user/base", folder_path=str(base))
        env = dict(
            os.environ,
            PYTHONPATH=f"{REPO_ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            HF_ENDPOINT=endpoint,
            HF_TOKEN="test-token",
            HF_HUB_OFFLINE="0",
            HF_HOME=str(tmp_path / "hf_home"),
        )
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(tmp_path)], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0 and "OK" in done.stdout, done.stdout[-2000:] + done.stderr[-4000:]
        head_files = set(hub.repos["user/head"]["files"])
        assert "audio_tagging_head.safetensors" in head_files and "model.safetensors" not in head_files
    finally:
        server.shutdown()
    saved = json.loads((tmp_path / "head" / "config.json").read_text())
    assert saved["base_model_name_or_path"] == "user/base"
