"""hub_utils: the one Hub-id rule, finding files locally or on a Hub, uploads; head-only and full checkpoints
pushed to and loaded from a Hub-compatible server on 127.0.0.1 (tests/hub_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

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
    assert "whisper-at-remote-code" in config["custom_pipelines"], config
    assert find_file("user/full", "pipeline_whisper_at.py") and find_file("user/head", "timeline.py")
    print("OK")
    """
)


@pytest.mark.slow
def test_push_and_load_head_only_and_full_checkpoints_over_a_hub(tmp_path):
    server, hub, endpoint = start_hub_server()
    try:
        publish_tiny_base(endpoint, tmp_path)
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


def publish_tiny_base(endpoint: str, tmp_path) -> Path:
    """A tiny random Whisper saved under `tmp_path / "base"` and uploaded to the loopback Hub as `user/base`."""
    from huggingface_hub import HfApi

    base = tmp_path / "base"
    tiny_whisper(seed=0).save_pretrained(base)
    api = HfApi(endpoint=endpoint, token="test-token")
    api.create_repo("user/base")
    api.upload_folder(repo_id="user/base", folder_path=str(base))
    return base


def hub_env(endpoint: str, tmp_path) -> dict:
    return dict(
        os.environ,
        PYTHONPATH=f"{REPO_ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        HF_ENDPOINT=endpoint,
        HF_TOKEN="test-token",
        HF_HUB_OFFLINE="0",
        HF_HOME=str(tmp_path / "hf_home"),
    )


def requests_of(hub, repo: str) -> list[str]:
    """The requests made for `repo`, with the repo name and any revision taken out (what is asked, not where)."""
    import re

    lines = [line.replace(repo, "REPO") for line in hub.requests if f"/{repo}/" in line or line.endswith(f"/{repo}")]
    return sorted(re.sub(r"/(resolve|revision)/[^/ ]+", r"/\1/REV", line) for line in lines)


LOADS = textwrap.dedent(
    """
    import sys
    from transformers import WhisperForConditionalGeneration
    from whisper_at_hf import WhisperForAudioTaggingAndASR
    cache = sys.argv[1]
    WhisperForConditionalGeneration.from_pretrained("user/base", cache_dir=cache + "/plain")
    WhisperForAudioTaggingAndASR.from_pretrained("user/full", cache_dir=cache + "/full")
    WhisperForAudioTaggingAndASR.from_pretrained("user/head", cache_dir=cache + "/head")
    print("OK")
    """
)


@pytest.mark.slow
def test_checkpoint_kind_costs_no_requests_and_a_broken_connection_is_an_error(tmp_path):
    """Loading a full checkpoint makes exactly the requests plain Whisper's loading makes; a head-only one asks its
    repo for its config and head weights only; a download that breaks off is an error, not "a full checkpoint"."""
    from huggingface_hub import HfApi

    from whisper_at_hf import WhisperForAudioTaggingAndASR

    server, hub, endpoint = start_hub_server()
    try:
        api = HfApi(endpoint=endpoint, token="test-token")
        tiny_whisper(seed=0).save_pretrained(tmp_path / "base")
        model = WhisperForAudioTaggingAndASR.from_whisper(str(tmp_path / "base"), base_model_name_or_path="user/base2")
        model.save_pretrained(tmp_path / "full")
        model.save_pretrained(tmp_path / "head", head_only=True)
        for repo, folder in (("base", "base"), ("base2", "base"), ("full", "full"), ("head", "head")):
            api.create_repo(f"user/{repo}")
            api.upload_folder(repo_id=f"user/{repo}", folder_path=str(tmp_path / folder))
        hub.requests.clear()
        env = hub_env(endpoint, tmp_path)
        done = subprocess.run(
            [sys.executable, "-c", LOADS, str(tmp_path / "cache")], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-4000:]
        plain = requests_of(hub, "user/base")
        assert requests_of(hub, "user/full") == plain
        assert requests_of(hub, "user/base2") == plain  # the head's base Whisper: loaded as plain Whisper is
        head = requests_of(hub, "user/head")
        assert not any("model.safetensors" in line for line in head), head
        assert any("audio_tagging_head.safetensors" in line for line in head)

        hub.cut["audio_tagging_head.safetensors"] = 1000  # every download of the head breaks off half-way
        broken = subprocess.run(
            [sys.executable, "-c",
             "import sys; from whisper_at_hf import WhisperForAudioTaggingAndASR as M; "
             "M.from_pretrained('user/head', cache_dir=sys.argv[1])", str(tmp_path / "cache2")],
            env=env, capture_output=True, text=True, timeout=600,
        )
        assert broken.returncode != 0
        assert "does not hold a matching Whisper-AT head" not in broken.stderr
        assert "model.safetensors" not in broken.stderr, broken.stderr[-3000:]
    finally:
        server.shutdown()


FIND = textwrap.dedent(
    """
    import socket, sys
    from whisper_at_hf.hub_utils import find_file
    assert find_file("user/base", "missing.json") is None
    assert find_file("user/nonexistent", "config.json") is None
    assert find_file("user/base", "config.json").endswith("config.json")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        find_file("user/base", "generation_config.json", endpoint=dead)
    except OSError as error:
        print("RAISED", type(error).__name__)
    assert find_file("user/base", "generation_config.json", endpoint=dead, local_files_only=True) is None
    print("OK")
    """
)


@pytest.mark.slow
def test_find_file_tells_a_missing_file_from_an_unreachable_hub(tmp_path):
    server, _, endpoint = start_hub_server()
    try:
        publish_tiny_base(endpoint, tmp_path)
        done = subprocess.run(
            [sys.executable, "-c", FIND], env=hub_env(endpoint, tmp_path), capture_output=True, text=True, timeout=300
        )
    finally:
        server.shutdown()
    assert done.returncode == 0 and "OK" in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]
    assert "RAISED" in done.stdout


PUSHES = textwrap.dedent(
    """
    import torch
    from whisper_at_hf import WhisperForAudioTaggingAndASR
    model = WhisperForAudioTaggingAndASR.from_whisper("user/base")
    features = torch.randn(1, 80, 3000)
    with torch.no_grad():
        expected = model.eval().tag(features)
    model.push_to_hub("user/pushed-head", head_only=True)
    model.save_pretrained(__import__("sys").argv[1], head_only=True, push_to_hub=True, repo_id="user/saved-head")
    for repo in ("user/pushed-head", "user/saved-head"):
        with torch.no_grad():
            loaded = WhisperForAudioTaggingAndASR.from_pretrained(repo).eval()
            torch.testing.assert_close(loaded.tag(features), expected)
    print("OK")
    """
)


@pytest.mark.slow
def test_head_only_pushes_carry_a_card(tmp_path):
    """`push_to_hub(repo, head_only=True)` and `save_pretrained(dir, head_only=True, push_to_hub=True)` push the
    head-only checkpoint with a card, as a full push has one."""
    from huggingface_hub import ModelCard

    server, hub, endpoint = start_hub_server()
    try:
        publish_tiny_base(endpoint, tmp_path)
        done = subprocess.run(
            [sys.executable, "-c", PUSHES, str(tmp_path / "saved")], env=hub_env(endpoint, tmp_path),
            capture_output=True, text=True, timeout=600,
        )
        assert done.returncode == 0 and "OK" in done.stdout, done.stdout[-2000:] + done.stderr[-4000:]
        for repo in ("user/pushed-head", "user/saved-head"):
            files = hub.repos[repo]["files"]
            assert "audio_tagging_head.safetensors" in files and "model.safetensors" not in files, sorted(files)
            card = ModelCard(files["README.md"].decode())
            assert card.data.library_name == "transformers"
            # the package's card of this head, not transformers' generic one (issue 22, item 3)
            assert card.data.base_model == "user/base" and card.data.base_model_relation == "adapter"
            for name in ("WhisperForAudioTaggingAndASR", "WhisperATConfig", "head-only checkpoint"):
                assert name in card.text, name
            assert f'pipeline("whisper-at-remote-code", model="{repo}", trust_remote_code=True)' in card.text
    finally:
        server.shutdown()


TRAIN_AND_PUSH = textwrap.dedent(
    """
    import sys
    import torch
    from whisper_at_hf import WhisperForAudioTaggingAndASR
    model = WhisperForAudioTaggingAndASR.from_whisper(sys.argv[1], id2label={0: "Knock", 1: "Kettle", 2: "Speech"})
    model.unfreeze_whisper()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    model.train()
    for step in range(3):
        logits = model.tag(features).mean(dim=1)  # (2, windows, 3) -> clip level
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert model.proj_out.weight is model.get_input_embeddings().weight
    model.push_to_hub("user/round-trip", head_only=True)
    print("OK")
    """
)

# run in a fresh venv whose site-packages reach the test venv's packages but not this package (no editable finder)
LOAD_WITHOUT_PACKAGE = textwrap.dedent(
    """
    import importlib.util, sys
    assert importlib.util.find_spec("whisper_at_hf") is None, "the package is importable"
    from huggingface_hub import ModelCard
    from transformers import pipeline
    tagger = pipeline("whisper-at-remote-code", model="user/round-trip", trust_remote_code=True)
    assert "whisper_at_hf" not in type(tagger).__module__
    result = tagger(sys.argv[1], top_k=3)
    print("TEXT", result["text"])
    labels = {tag["label"] for window in result["audio_tags"] for tag in window["tags"]}
    assert labels == {"Knock", "Kettle", "Speech"}, labels
    card = ModelCard.load("user/round-trip")
    assert card.data.library_name == "transformers" and "3 custom classes (Knock, Kettle, Speech)" in card.text
    for name in ("WhisperForAudioTaggingAndASR", "WhisperATConfig", 'pipeline("whisper-at-remote-code"'):
        assert name in card.text, name
    print("OK")
    """
)


def fresh_venv_without_the_package(root) -> str:
    """A new venv (no pip, no network) whose one `.pth` line adds this venv's site-packages as a plain path: torch,
    transformers, soundfile ... import, the package's editable install (a `.pth` finder there) does not."""
    import site
    import venv

    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    target = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (Path(target) / "test_venv_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return str(python)


@pytest.mark.slow
@pytest.mark.needs_shared
def test_round_trip_train_push_head_only_and_load_without_the_package(tmp_path):
    """Issue 22's done-when: from_whisper(tiny.en) -> a few steps with unfreeze_whisper() -> push_to_hub(head_only)
    to the loopback Hub -> pipeline("whisper-at-remote-code", trust_remote_code=True) in a fresh venv without the package gives
    text and the custom tags; the pushed card parses and names the custom classes. The base Whisper is the local
    tiny.en path (the same machine), which the head-only repo names."""
    from conftest import SHARED_AUDIO, TINY_EN

    server, hub, endpoint = start_hub_server()
    try:
        env = hub_env(endpoint, tmp_path)
        done = subprocess.run([sys.executable, "-c", TRAIN_AND_PUSH, str(TINY_EN)], env=env, capture_output=True,
                              text=True, timeout=900)  # fmt: skip
        assert done.returncode == 0 and "OK" in done.stdout, done.stdout[-2000:] + done.stderr[-4000:]
        assert "README.md" in hub.repos["user/round-trip"]["files"]
        python = fresh_venv_without_the_package(tmp_path / "venv")
        bare_env = {key: value for key, value in env.items() if key != "PYTHONPATH"}
        done = subprocess.run([python, "-c", LOAD_WITHOUT_PACKAGE, str(SHARED_AUDIO / "speech_en.wav")],
                              env=bare_env, capture_output=True, text=True, timeout=900, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0 and "OK" in done.stdout, done.stdout[-2000:] + done.stderr[-4000:]
        assert "TEXT " in done.stdout and len(done.stdout.split("TEXT ", 1)[1].split("\n")[0].strip()) > 10
        assert f"using the one of its base Whisper {TINY_EN}" in done.stderr
    finally:
        server.shutdown()
