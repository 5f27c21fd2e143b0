"""`whisper_at_hf.original_release`: the release table and `released_checkpoint`, against loopback hosts.

No internet here: `tests/hub_server.py` plays both the Hub (a repo `openai/whisper-tiny.en` made from
`../shared/models/whisper-tiny.en`) and the release host (Dropbox-style share links that answer with a 302 redirect to
the file). Behind the tiny.en link sits a synthetic `tiny.en_ori.pth`: a random head of the right shapes in the
original's key format, whose tags the original `whisper_at` package computes on the real tiny.en weights
(`tiny_en_original`, shared with the converter's tests).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch
import whisper_at
from conftest import REPO_ROOT, SHARED_AUDIO, TINY_EN, tiny_reference_whisper_at
from hub_server import start_hub_server
from test_convert_original_whisper_at import (  # noqa: F401  (module fixtures used here)
    ORIGINAL_PREFIX,
    SAMPLING_RATE,
    TOLERANCE,
    converted_run,
    reference_tokens,
    speech,
    tiny_en_original,
)
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from whisper_at_hf import WhisperForAudioTaggingAndASR
from whisper_at_hf import original_release as release
from whisper_at_hf.original_release import (
    HeadMismatchError,
    ReleaseDownloadError,
    ReleaseNotCachedError,
    download_release_head,
    get_variant,
    released_checkpoint,
)

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

TINY_EN_VARIANT = get_variant("tiny.en")
TINY_EN_LINK = urlsplit(TINY_EN_VARIANT.url).path  # /s/atq9so6w0qug5ai/tiny.en_ori.pth
HEAD_NAME = TINY_EN_VARIANT.head_file
WHISPER_WEIGHTS = "/openai/whisper-tiny.en/resolve/"


def serve(head_bytes: bytes):
    """A loopback Hub with openai/whisper-tiny.en and a release host with `head_bytes` behind the tiny.en link."""
    server, state, endpoint = start_hub_server()
    state.add_repo("openai/whisper-tiny.en", TINY_EN)
    state.release[TINY_EN_LINK] = head_bytes
    return server, state, endpoint


def child_env(endpoint: str, home: Path, **extra: str) -> dict[str, str]:
    """Environment of a subprocess that resolves through the loopback hosts into a fresh HF_HOME."""
    env = {
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HF_HOME": str(home / "hf"),
        "HF_ENDPOINT": endpoint,
        "HF_HUB_OFFLINE": "0",
        release.RELEASE_ENDPOINT_ENV: endpoint,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "OMP_NUM_THREADS": "1",
    }
    env.update(extra)
    return env


@pytest.fixture
def online(monkeypatch):
    """In-process resolution through the loopback hosts, whatever the machine's HF settings."""
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", release.RELEASE_MIRROR_ENV, release.CACHE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def point_at(endpoint: str) -> None:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.setenv(release.RELEASE_ENDPOINT_ENV, endpoint)

    return point_at


@pytest.fixture(scope="module")
def hosts(tiny_en_original):
    server, state, endpoint = serve(Path(tiny_en_original["head"]).read_bytes())
    yield dict(state=state, endpoint=endpoint)
    server.shutdown()


@pytest.fixture(scope="module")
def resolved(hosts, tmp_path_factory):
    """The first resolution of tiny.en into a fresh cache, timed; the requests it made."""
    import huggingface_hub.constants

    cache = tmp_path_factory.mktemp("first_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        patch.delenv("HF_HUB_OFFLINE", raising=False)
        patch.setenv("HF_ENDPOINT", hosts["endpoint"])
        patch.setenv(release.RELEASE_ENDPOINT_ENV, hosts["endpoint"])
        before = len(hosts["state"].requests)
        start = time.perf_counter()
        path = released_checkpoint("tiny.en", cache_dir=cache, progress=False)
        seconds = time.perf_counter() - start
    return dict(path=Path(path), cache=cache, seconds=seconds, requests=hosts["state"].requests[before:])


# --------------------------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------------------------
def test_release_table_holds_the_original_links():
    variants = release.ORIGINAL_VARIANTS
    assert len(variants) == 16 and len({v.name for v in variants}) == 16
    # the primary link of each head is the one the original package downloads
    for name, url in whisper_at._MODELS_AT.items():
        assert get_variant(name).url == url, name
    assert {v.name for v in variants} == set(whisper_at._MODELS_AT) - {"large", "large_low"}
    # the repository README's older links differ for 8 heads; those are the fallbacks
    with_fallback = {v.name for v in variants if v.fallback_urls}
    assert with_fallback == {"tiny", "base", "small", "small_low", "medium", "medium_low", "large-v2", "large-v2_low"}
    for variant in variants:
        assert all(url.endswith(f"/{variant.head_file}?dl=1") for url in variant.urls)
        assert variant.url not in variant.fallback_urls
        assert variant.hub_id() == f"whisper-at-hf/{variant.repo_name}"
    assert get_variant("large-v1").base_model == "openai/whisper-large"
    assert get_variant("small.en", low_compute=True).base_model == "openai/whisper-small.en"
    assert get_variant("large", low_compute=True).name == get_variant("large_low").name == "large-v2_low"
    assert release.DEFAULT_VARIANT == "small" and get_variant(release.DEFAULT_VARIANT).audioset_map == 39.8


def test_unknown_variant_lists_the_16(tmp_path):
    with pytest.raises(ValueError) as info:
        released_checkpoint("huge-v3", cache_dir=tmp_path)
    message = str(info.value)
    assert "'huge-v3' is not a released Whisper-AT variant" in message
    assert all(name in message for name in release.variant_names())
    with pytest.raises(ValueError, match="no low-compute .* only for small, small.en, medium"):
        released_checkpoint("base", low_compute=True, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing touched


def test_resolve_model_local_folder_and_hub_id_win(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small").mkdir()
    assert release.resolve_model("small") == "small"  # a local folder of that name
    assert release.resolve_model("org/small") == "org/small"  # a Hub id
    with pytest.raises(ValueError, match="low-compute applies to variant names"):
        release.resolve_model("org/small", low_compute=True)


# --------------------------------------------------------------------------------------------------------------------
# First resolution, second resolution, offline
# --------------------------------------------------------------------------------------------------------------------
def test_first_resolution_downloads_and_converts(resolved, hosts):
    requests = resolved["requests"]
    # Hub first (the converted checkpoint is not published), then the Whisper and the head (through the redirect)
    assert requests[0].startswith("GET /api/models/whisper-at-hf/whisper-at-tiny.en")
    assert sum(f"GET {TINY_EN_LINK}?dl=1" in line for line in requests) == 1
    assert sum(line.startswith(f"GET /dl/{TINY_EN_LINK[3:]}") for line in requests) == 1
    assert sum(line.startswith("GET " + WHISPER_WEIGHTS) and "model.safetensors" in line for line in requests) == 1
    path = resolved["path"]
    assert path.parent == resolved["cache"] / "checkpoints" / "tiny.en"
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "whisper_at" and config["at_low_dim"] is None
    # keyed by the Whisper commit and the head's sha256
    record = json.loads((path.parent / "resolved.json").read_text())
    assert path.name == f"{record['whisper_revision'][:12]}-{record['head_sha256'][:12]}"
    assert record["head_url"].endswith(TINY_EN_LINK + "?dl=1")
    # a head-only checkpoint on the cached Whisper snapshot: no second copy of the Whisper weights
    assert not (path / "model.safetensors").exists()
    assert Path(config["base_model_name_or_path"]).parent.name == "snapshots"
    assert not list(resolved["cache"].rglob("*.incomplete")) and not list(resolved["cache"].rglob(".staged-*"))
    print(f"first resolution (loopback download + convert): {resolved['seconds']:.2f} s")


def test_resolved_folder_is_readable_by_other_users(resolved):
    """The converted folder is renamed into the cache from a staging folder: its mode is mkdir's (0755 for the usual
    umask 022), not mkdtemp's 0700 (issue 22, item 6)."""
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(resolved["path"].stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE((resolved["path"] / "config.json").stat().st_mode) == 0o666 & ~mask


def test_resolved_tags_equal_the_original_package(resolved, tiny_en_original, speech):
    model = WhisperForAudioTaggingAndASR.from_pretrained(resolved["path"], dtype=torch.float32)
    processor = WhisperProcessor.from_pretrained(resolved["path"])
    result = tiny_en_original["result"]
    tags, tokens, text = converted_run(model, processor, speech, 10.0, multilingual=False)
    assert (tags[:1] - result["audio_tag"]).abs().max().item() <= TOLERANCE
    assert tokens == reference_tokens(result)
    # the transcript is plain Whisper's
    plain = WhisperForConditionalGeneration.from_pretrained(TINY_EN, dtype=torch.float32).eval()
    features = processor(speech, sampling_rate=SAMPLING_RATE, return_tensors="pt").input_features
    with torch.no_grad():
        sequences = plain.generate(features, return_timestamps=False, do_sample=False, num_beams=1)
    assert text == processor.batch_decode(sequences, skip_special_tokens=True)[0]
    assert "background noise" in text


def test_second_resolution_touches_no_network(resolved, hosts, online):
    online(hosts["endpoint"])
    before = len(hosts["state"].requests)
    start = time.perf_counter()
    assert released_checkpoint("tiny.en", cache_dir=resolved["cache"]) == str(resolved["path"])
    seconds = time.perf_counter() - start
    assert hosts["state"].requests[before:] == []
    print(f"second (cached) resolution: {seconds * 1000:.1f} ms vs first {resolved['seconds']:.2f} s")


@pytest.mark.slow  # a fresh process
def test_offline_after_the_server_stopped(tiny_en_original, tmp_path, online):
    server, state, endpoint = serve(Path(tiny_en_original["head"]).read_bytes())
    online(endpoint)
    home = tmp_path / "home"
    cache = home / "cache"  # everything: heads, checkpoints and the Whisper (under hub/)
    first = released_checkpoint("tiny.en", cache_dir=cache, progress=False)
    server.shutdown()
    server.server_close()
    # server gone: a call without HF_HUB_OFFLINE must not need it either
    assert released_checkpoint("tiny.en", cache_dir=cache) == first
    # and the cache may move (another HF_HOME, another machine): renamed, the old place is gone
    moved = tmp_path / "elsewhere"
    home.rename(moved)
    first = first.replace(str(home), str(moved))
    cache = moved / "cache"
    script = (
        "import whisper_at_hf.compat as whisper\n"
        "from whisper_at_hf import released_checkpoint\n"
        f"print(released_checkpoint('tiny.en', cache_dir={str(cache)!r}))\n"
        f"model = whisper.load_model('tiny.en', device='cpu', download_root={str(cache)!r})\n"
        f"result = model.transcribe({str(SHARED_AUDIO / 'speech_en.wav')!r})\n"
        "print(result['text'])\n"
        "print(tuple(result['audio_tag'].shape))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=child_env(endpoint, moved, HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == first
    assert "background noise" in lines[1] and lines[2] == "(1, 527)"
    config = json.loads((Path(first) / "config.json").read_text())
    assert config["base_model_name_or_path"].startswith(str(moved))


def test_offline_and_not_cached_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ReleaseNotCachedError) as info:
        released_checkpoint("small", cache_dir=tmp_path)
    message = str(info.value)
    assert "'small' is not in the cache" in message and "whisper-at-convert --variant small --download-only" in message


# --------------------------------------------------------------------------------------------------------------------
# Entry points by variant name
# --------------------------------------------------------------------------------------------------------------------
def test_compat_load_model_by_name(resolved, hosts, online, tiny_en_original, monkeypatch):
    import whisper_at_hf.compat as whisper

    online(hosts["endpoint"])
    monkeypatch.delenv(whisper.CHECKPOINTS_ENV, raising=False)
    before = len(hosts["state"].requests)
    model = whisper.load_model("tiny.en", device="cpu", download_root=resolved["cache"])
    assert hosts["state"].requests[before:] == []  # resolved before: from the cache
    result = model.transcribe(str(SHARED_AUDIO / "speech_en.wav"))
    assert result["text"].strip().startswith("The quick") and "background noise" in result["text"]
    expected = tiny_en_original["result"]["audio_tag"]
    assert (result["audio_tag"][:1] - expected).abs().max().item() <= TOLERANCE
    assert whisper.parse_at_label(result, top_k=3)[0]["audio tags"]


def test_pipeline_without_model_loads_the_published_default(resolved, hosts, tmp_path):
    """Like every task default, a Hub id: the default variant's published checkpoint (here the resolved tiny.en
    checkpoint published under that name on the loopback Hub), downloaded by transformers; unpublished, the error
    names the repository. A subprocess: huggingface_hub reads HF_ENDPOINT at import."""
    from transformers.pipelines import PIPELINE_REGISTRY

    assert PIPELINE_REGISTRY.supported_tasks["whisper-at"]["default"] == {
        "model": ("whisper-at-hf/whisper-at-small", None)
    }
    script = (
        "import sys, whisper_at_hf\n"
        "from transformers import pipeline\n"
        "try:\n"
        "    tagger = pipeline('whisper-at')\n"
        "except OSError as error:\n"
        "    print('ERROR', error); sys.exit(0)\n"
        f"out = tagger({str(SHARED_AUDIO / 'speech_en.wav')!r}, top_k=2, num_beams=1)\n"
        "print('TEXT', out['text']); print('TAGS', len(out['audio_tags'][0]['tags']))\n"
    )
    env = child_env(hosts["endpoint"], tmp_path / "home")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "ERROR" in done.stdout, done.stderr[-3000:]
    assert "whisper-at-hf/whisper-at-small" in done.stdout
    hosts["state"].add_repo("whisper-at-hf/whisper-at-small", resolved["path"])
    try:
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    finally:
        del hosts["state"].repos["whisper-at-hf/whisper-at-small"]
    assert done.returncode == 0 and "ERROR" not in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]
    assert "background noise" in done.stdout and "TAGS 2" in done.stdout


@pytest.mark.slow
def test_cli_by_variant_name_and_default(hosts, tmp_path):
    state, endpoint = hosts["state"], hosts["endpoint"]
    home = tmp_path / "home"
    out = tmp_path / "out"
    audio = str(SHARED_AUDIO / "speech_en.wav")
    cli = [sys.executable, "-m", "whisper_at_hf.cli", audio, "-o", str(out), "--num-beams", "1", "--top-k", "3"]
    before = len(state.requests)
    done = subprocess.run(
        [*cli, "--model", "tiny.en"], env=child_env(endpoint, home), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for suffix in ("txt", "json", "srt", "vtt", "tsv"):
        assert (out / f"speech_en.{suffix}").is_file(), suffix
    result = json.loads((out / "speech_en.json").read_text())
    assert "background noise" in result["text"] and len(result["audio_tags"][0]["tags"]) == 3
    assert state.count(f"/dl/{TINY_EN_LINK[3:]}") >= 1 and len(state.requests) > before

    # no --model: the default variant (here tiny.en), already cached: no request at all
    before = len(state.requests)
    env = child_env(endpoint, home, **{release.DEFAULT_VARIANT_ENV: "tiny.en"})
    done = subprocess.run([*cli, "-o", str(tmp_path / "default"), "-q"], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "default" / "speech_en.json").read_text())["text"] == result["text"]
    assert state.requests[before:] == []

    done = subprocess.run([*cli, "--model", "tiny.en", "--at-low-compute"], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 2 and "no low-compute (TL-TR-512) head for 'tiny.en'" in done.stderr


# --------------------------------------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------------------------------------
def cached_files(cache: Path) -> list[str]:
    """What a later call could trust: head files and converted checkpoints."""
    heads = [p.name for p in (cache / "heads").rglob("*") if p.is_file()] if (cache / "heads").exists() else []
    converted = list((cache / "checkpoints").rglob("*")) if (cache / "checkpoints").exists() else []
    return heads + [p.name for p in converted if p.is_file()]


def test_download_cut_half_way_then_recovered(hosts, tmp_path, online):
    state = hosts["state"]
    online(hosts["endpoint"])
    state.cut[HEAD_NAME] = 100  # every download of the head breaks off half-way
    try:
        with pytest.raises(ReleaseDownloadError) as info:
            released_checkpoint("tiny.en", cache_dir=tmp_path, retries=1, progress=False)
    finally:
        state.cut[HEAD_NAME] = 0
    message = str(info.value)
    assert f"{hosts['endpoint']}{TINY_EN_LINK}?dl=1" in message and str(tmp_path / "heads") in message
    assert cached_files(tmp_path) == []  # no half file, no record, no checkpoint

    # the server recovers; one break, then the retry resumes from where it stopped (HTTP range)
    state.cut[HEAD_NAME] = 1
    before = len(state.requests)
    path = released_checkpoint("tiny.en", cache_dir=tmp_path, retries=2, progress=False)
    resumed = [line for line in state.requests[before:] if line.startswith("GET /dl/") and "[bytes=" in line]
    assert len(resumed) == 1 and (Path(path) / "config.json").is_file()
    head = next((tmp_path / "heads").rglob(HEAD_NAME))
    assert head.read_bytes() == state.release[TINY_EN_LINK]


def test_head_of_the_wrong_size_is_refused(tmp_path, online):
    reference = tiny_reference_whisper_at(n_vocab=51864)  # width 64: not tiny.en's 384
    wrong = {k: v for k, v in reference.state_dict().items() if k.startswith(ORIGINAL_PREFIX)}
    torch.save(wrong, tmp_path / "wrong.pth")
    server, state, endpoint = serve((tmp_path / "wrong.pth").read_bytes())
    online(endpoint)
    cache = tmp_path / "cache"
    try:
        with pytest.raises(HeadMismatchError) as info:
            released_checkpoint("tiny.en", cache_dir=cache, progress=False)
    finally:
        server.shutdown()
    message = str(info.value)
    assert "input width 64" in message and "[64, 64]" in message
    assert "openai/whisper-tiny.en has d_model 384 (4 encoder layers)" in message
    assert cached_files(cache) == []


def test_fallback_link_when_the_first_answers_with_an_error(hosts, tmp_path, online, tiny_en_original):
    state = hosts["state"]
    online(hosts["endpoint"])
    tiny = get_variant("tiny")
    first, fallback = (urlsplit(url).path for url in tiny.urls)
    head_bytes = Path(tiny_en_original["head"]).read_bytes()
    state.release[fallback] = head_bytes
    try:
        before = len(state.requests)
        head = download_release_head("tiny", cache_dir=tmp_path / "a", progress=False)
        assert [line.split("?")[0] for line in state.requests[before:]] == [f"GET {first}", f"GET {fallback}",
                                                                            "GET /dl/" + fallback[3:]]  # fmt: skip
        assert head.url.endswith(fallback + "?dl=1") and head.path.read_bytes() == head_bytes
        # a dead link that answers 200 with a page instead of the file: an error of that link too, nothing kept
        state.release[first] = b"<html><body>This file is no longer available.</body></html>"
        head = download_release_head("tiny", cache_dir=tmp_path / "b", progress=False)
        assert head.url.endswith(fallback + "?dl=1")
        assert [p.name for p in (tmp_path / "b" / "heads").rglob("*.pth")] == ["tiny_ori.pth"]
    finally:
        state.release.pop(fallback)
        state.release.pop(first, None)
    # neither link answers: both named, with the cache folder and the mirror hint
    with pytest.raises(ReleaseDownloadError) as info:
        download_release_head("base", cache_dir=tmp_path, progress=False)
    message = str(info.value)
    assert all(urlsplit(url).path in message for url in get_variant("base").urls) and "HTTP 404" in message
    assert release.RELEASE_MIRROR_ENV in message


def test_unreachable_hub_is_named(tmp_path, online):
    online("http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(ReleaseDownloadError) as info:
        released_checkpoint("tiny.en", cache_dir=tmp_path, progress=False)
    message = str(info.value)
    assert "could not get the Whisper openai/whisper-tiny.en from http://127.0.0.1:9" in message
    assert str(tmp_path / "hub") in message and cached_files(tmp_path) == []


def test_mirror_folder_for_air_gapped_machines(tiny_en_original, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / HEAD_NAME).write_bytes(Path(tiny_en_original["head"]).read_bytes())
    monkeypatch.setenv(release.RELEASE_MIRROR_ENV, str(mirror))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    head = download_release_head("tiny.en", cache_dir=tmp_path / "cache")
    assert head.path == mirror / HEAD_NAME
    with pytest.raises(ReleaseNotCachedError, match="small_ori.pth"):
        download_release_head("small", cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_download_and_convert_once(hosts, tmp_path):
    state, endpoint = hosts["state"], hosts["endpoint"]
    home = tmp_path / "home"
    script = "from whisper_at_hf.original_release import released_checkpoint; print(released_checkpoint('tiny.en'))"
    before = len(state.requests)
    state.delay = 3.0  # the head takes a while: the second process arrives while the first holds the lock
    try:
        processes = [
            subprocess.Popen([sys.executable, "-c", script], env=child_env(endpoint, home), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=600) for process in processes]
    finally:
        state.delay = 0.0
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    paths = {stdout.strip() for stdout, _ in outputs}
    assert len(paths) == 1 and Path(paths.pop()).is_dir()
    requests = state.requests[before:]
    assert sum(line.startswith(f"GET /dl/{TINY_EN_LINK[3:]}") for line in requests) == 1
    assert sum(line.startswith("GET " + WHISPER_WEIGHTS) and "model.safetensors" in line for line in requests) == 1
    assert sum("waiting for another process" in stderr for _, stderr in outputs) == 1
    assert len(list((home / "hf" / "whisper-at-hf" / "checkpoints" / "tiny.en").iterdir())) == 2  # folder + record


# --------------------------------------------------------------------------------------------------------------------
# whisper-at-convert --variant: portable output, push to the Hub, then resolution takes the Hub path
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_convert_variant_push_then_resolution_takes_the_hub(hosts, tmp_path, online, tiny_en_original, speech):
    state, endpoint = hosts["state"], hosts["endpoint"]
    home = tmp_path / "home"
    out = tmp_path / "whisper-at-tiny.en"
    command = [sys.executable, "-m", "whisper_at_hf.convert_original_whisper_at", "--variant", "tiny.en",
               "--output", str(out), "--push-to-hub", "whisper-at-hf"]  # fmt: skip
    done = subprocess.run(command, env=child_env(endpoint, home, HF_TOKEN="test-token"), capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pushed tiny.en to whisper-at-hf/whisper-at-tiny.en" in done.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["base_model_name_or_path"] == "openai/whisper-tiny.en" and len(config["base_model_revision"]) == 40
    assert (out / "model.safetensors").is_file()  # portable: the whole model
    pushed = state.repos["whisper-at-hf/whisper-at-tiny.en"]["files"]
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= set(pushed)
    card = pushed["README.md"].decode()
    assert 'model="whisper-at-hf/whisper-at-tiny.en"' in card and "value: 35.8" in card

    # a fresh cache now resolves from the Hub: the release host is not asked
    online(endpoint)
    before = len(state.requests)
    path = Path(released_checkpoint("tiny.en", cache_dir=tmp_path / "fresh", progress=False))
    assert not any(line.startswith(("GET /s/", "GET /dl/")) for line in state.requests[before:])
    assert "models--whisper-at-hf--whisper-at-tiny.en" in str(path)
    model = WhisperForAudioTaggingAndASR.from_pretrained(path, dtype=torch.float32)
    processor = WhisperProcessor.from_pretrained(path)
    tags, _, _ = converted_run(model, processor, speech, 10.0, multilingual=False, max_new_tokens=4)
    assert (tags[:1] - tiny_en_original["result"]["audio_tag"]).abs().max().item() <= TOLERANCE

    # --download-only prints the cached path; the published repo is left alone afterwards
    del state.repos["whisper-at-hf/whisper-at-tiny.en"]
    done = subprocess.run([*command[:5], "--download-only"], env=child_env(endpoint, home), capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("tiny.en: ") and Path(done.stdout.split(": ", 1)[1].strip()).is_dir()


def test_convert_variant_needs_a_destination(capsys, tmp_path, monkeypatch):
    from whisper_at_hf.convert_original_whisper_at import main

    assert main(["--variant", "tiny.en"]) == 1
    assert "give --output DIR, --push-to-hub ORG or --download-only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:  # all names checked before any download: a usage error
        main(["--variant", "tiny.en,gigantic", "--output", "x"])
    assert exited.value.code == 2
    assert "--variant: 'gigantic' is not a released Whisper-AT variant" in capsys.readouterr().err
    # "all" is the 16 in table order: offline with an empty cache, the first one (tiny) is reported missing
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(release.CACHE_ENV, str(tmp_path))
    assert main(["--variant", "all", "--download-only"]) == 1
    assert "Whisper-AT variant 'tiny' is not in the cache" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--at-checkpoint", "x.pth", "--output", "y"])  # neither --whisper nor --variant
