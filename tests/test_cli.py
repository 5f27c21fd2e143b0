"""`whisper-at` CLI end to end in a subprocess, plus its input expansion, writers and plotting fallback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, SHARED_AUDIO

from whisper_at_hf import plotting
from whisper_at_hf.cli import expand_inputs
from whisper_at_hf.writers import tag_caption, write_result

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cli_run(tiny_en_at_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    empty = work / "empty.wav"
    empty.write_bytes(b"")
    out = work / "out"
    command = [
        sys.executable, "-m", "whisper_at_hf.cli",
        str(SHARED_AUDIO / "speech_en.wav"), str(work / "missing.wav"), str(empty), str(SHARED_AUDIO / "beeps_10s.wav"),
        "--model", str(tiny_en_at_dir), "--output-format", "all", "--output-dir", str(out), "--plot",
        "--top-k", "3", "--batch-size", "2", "--at-time-res", "4", "--num-beams", "1", "--max-new-tokens", "40",
        "--captions", "tags",
    ]
    env = {"PYTHONPATH": str(REPO_ROOT / "src"), "PATH": "/usr/bin:/bin"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    return completed, out


def test_cli_writes_all_formats_and_reports_bad_files(cli_run):
    completed, out = cli_run
    assert completed.returncode == 1, completed.stderr[-3000:]  # some inputs failed
    assert "missing.wav: no such file" in completed.stderr and "empty.wav: file is empty" in completed.stderr
    assert "2 of 4 inputs failed" in completed.stderr
    for name in ("speech_en", "beeps_10s"):
        for suffix in ("txt", "json", "srt", "vtt", "tsv", "events.tsv"):
            assert (out / f"{name}.{suffix}").is_file(), (name, suffix)
        assert (out / f"{name}.tags.png").read_bytes()[:8] == PNG_SIGNATURE
    assert not list(out.glob("missing*")) and not list(out.glob("empty*"))

    result = json.loads((out / "speech_en.json").read_text())
    assert result["text"].strip().startswith("The quick") and "background noise" in result["text"]
    assert len(result["audio_tags"]) == 2 and result["audio_tags"][-1]["timestamp"] == [4.0, 7.68]
    assert all(len(window["tags"]) == 3 for window in result["audio_tags"])
    assert (out / "speech_en.txt").read_text().strip() == result["text"].strip()

    srt = (out / "speech_en.srt").read_text()
    assert "00:00:04,000 --> 00:00:07,680" in srt and tag_caption(result["audio_tags"][1]["tags"]) in srt
    assert result["chunks"][0]["text"].strip() in srt
    vtt = (out / "speech_en.vtt").read_text()
    assert vtt.startswith("WEBVTT") and "00:00:00.000 --> 00:00:04.000" in vtt
    rows = (out / "speech_en.tsv").read_text().strip().splitlines()
    assert rows[0] == "start\tend\tlabel\tscore" and len(rows) == 1 + 2 * 3
    assert rows[1].split("\t")[2] == result["audio_tags"][0]["tags"][0]["label"]
    events = (out / "speech_en.events.tsv").read_text().splitlines()
    assert events[0] == "start\tend\tlabel\tscore" and len(events) == 1 + len(result["events"])
    assert [row.split("\t")[2] for row in events[1:]] == [event["label"] for event in result["events"]]
    # one message per bad input, with its name; no "input N" of the pipeline's batch
    assert completed.stderr.count("missing.wav") == 2 and completed.stderr.count("empty.wav") == 2  # + summary
    assert "input 0" not in completed.stderr and "input 1" not in completed.stderr


def test_cli_all_good_exits_zero(tiny_en_at_dir, tmp_path):
    command = [
        sys.executable, "-m", "whisper_at_hf.cli", str(SHARED_AUDIO / "speech_en.wav"), "--model", str(tiny_en_at_dir),
        "-f", "tsv", "-o", str(tmp_path), "--quiet", "--tag-threshold", "0.99", "--num-beams", "1",
    ]
    env = {"PYTHONPATH": str(REPO_ROOT / "src"), "PATH": "/usr/bin:/bin"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == ["speech_en.tsv"]


def test_expand_inputs(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.wav", "a.flac", "sub/c.mp3", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert expand_inputs([str(tmp_path)]) == [str(tmp_path / n) for n in ("a.flac", "b.wav")] + [
        str(tmp_path / "sub" / "c.mp3")
    ]
    assert expand_inputs([str(tmp_path / "*.wav")]) == [str(tmp_path / "b.wav")]
    assert expand_inputs([str(tmp_path / "nothing*.wav"), "gone.wav"]) == [str(tmp_path / "nothing*.wav"), "gone.wav"]


def test_writers_handle_open_ended_chunks(tmp_path):
    result = {
        "text": " hi there",
        "language": "en",
        "chunks": [{"text": " hi there", "timestamp": (0.5, None)}],
        "audio_tags": [{"timestamp": (0.0, 3.2), "tags": [{"label": "Speech", "score": 0.9}]}],
    }
    paths = write_result(result, tmp_path, "x", ["srt", "vtt", "tsv", "json", "txt"], captions="tags")
    srt = paths[0].read_text()
    assert "00:00:00,500 --> 00:00:03,200\nhi there" in srt and "♪ Speech 0.90" in srt
    assert paths[2].read_text().splitlines()[1] == "0.000\t3.200\tSpeech\t0.9000"


def test_plot_without_matplotlib_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(plotting.PlottingUnavailable, match="needs matplotlib"):
        plotting.plot_tags({"audio_tag_logits": [[0.0]], "audio_tags": []}, ["x"], "unused.png")


def test_version(capsys):
    from whisper_at_hf import __version__
    from whisper_at_hf.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"whisper-at {__version__}"


@pytest.mark.parametrize(
    "options, message",
    [
        (["--event-threshold", "0"], "event_threshold must be a number > 0 and <= 1, got 0"),
        (["--event-threshold", "1.5"], "event_threshold must be a number > 0 and <= 1, got 1.5"),
        (["--event-threshold", "nan"], "event_threshold must be a number > 0 and <= 1, got nan"),
        (["--event-min-duration", "-1"], "event_min_duration must be a number >= 0, got -1"),
        (["--captions", "fancy"], "invalid choice: 'fancy'"),
        (["--revision", "v1"], "--revision applies to a Hub id, not to "),
        (["--revision", "v1", "--model", "tiny.en"], "--revision applies to a Hub id, not to 'tiny.en'"),
    ],
)
def test_bad_options_are_usage_errors_before_the_model_loads(options, message, tmp_path, capsys, monkeypatch):
    from whisper_at_hf import cli

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(cli, "_Run", no_model)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(SHARED_AUDIO / "speech_en.wav"), "-o", str(tmp_path), *options])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_revision_of_a_local_folder_is_refused(tiny_en_at_dir, tmp_path, capsys):
    from whisper_at_hf.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(SHARED_AUDIO / "speech_en.wav"), "--model", str(tiny_en_at_dir), "--revision", "v1",
              "-o", str(tmp_path)])  # fmt: skip
    assert exit_info.value.code == 2
    assert f"--revision applies to a Hub id, not to '{tiny_en_at_dir}'" in capsys.readouterr().err


def test_cli_sdh_captions_quiet_run(tiny_en_at_dir, tmp_path):
    """The default captions (SDH) from a real run, `-q` silent but for the one line per bad input and the summary."""
    import re

    import pysubs2

    from whisper_at_hf.captions import SoundClasses, caption_label

    missing = tmp_path / "missing.wav"
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "whisper_at_hf.cli", str(SHARED_AUDIO / "speech_en_music.wav"), str(missing),
        "--model", str(tiny_en_at_dir), "-o", str(out), "-q", "--num-beams", "1", "--batch-size", "2",
        "--event-threshold", "0.3", "--word-timestamps",
    ]  # fmt: skip
    env = {"PYTHONPATH": str(REPO_ROOT / "src"), "PATH": "/usr/bin:/bin"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert completed.returncode == 1 and completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"whisper-at: skipped {missing}: no such file"), lines
    assert lines[1] == f"whisper-at: 1 of 2 inputs failed: {missing}"

    result = json.loads((out / "speech_en_music.json").read_text())
    assert result["events"] and all(set(e) == {"label", "label_id", "start", "end", "score"} for e in result["events"])
    assert result["segments"] and result["segments"][0]["words"]  # --word-timestamps
    classes = SoundClasses.for_labels([f"LABEL_{i}" for i in range(527)])
    sounds = {caption_label(e["label"]) for e in result["events"] if not classes.is_speech(e["label_id"])}
    subs = pysubs2.load(str(out / "speech_en_music.srt"))
    assert len(subs) >= 2
    marks = {mark for event in subs for mark in re.findall(r"\[[^\]]+\]", event.plaintext)}
    assert marks and marks <= sounds  # every bracket is a non-speech event: never Speech or its children
    for event in subs:
        lines = event.plaintext.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines) and event.end - event.start <= 7000
    words = " ".join(e.plaintext.replace("\n", " ") for e in subs)
    assert all(word in words for word in result["text"].split())
    assert [e.plaintext for e in pysubs2.load(str(out / "speech_en_music.vtt"))] == [e.plaintext for e in subs]


@pytest.mark.slow
def test_revision_of_a_hub_model(tiny_en_at_dir, tmp_path):
    """Issue 22 item 8: `--revision` reaches every download of the run (weights, processor, label names)."""
    import os

    from hub_server import start_hub_server

    server, hub, endpoint = start_hub_server()
    try:
        hub.add_repo("tester/tiny-at", tiny_en_at_dir)
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), HF_HOME=str(tmp_path / "hf_home"),
                   HF_HUB_OFFLINE="0", HF_ENDPOINT=endpoint, TOKENIZERS_PARALLELISM="false")  # fmt: skip
        command = [sys.executable, "-m", "whisper_at_hf.cli", str(SHARED_AUDIO / "speech_en.wav"), "--model",
                   "tester/tiny-at", "--revision", "v1.0", "-o", str(tmp_path / "out"), "-f", "json", "-q",
                   "--num-beams", "1", "--label-language", "de"]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert completed.returncode == 0, completed.stderr[-3000:]
        # the client resolves v1.0 to its commit, then downloads by commit; nothing asks for the default branch
        assert "GET /api/models/tester/tiny-at/revision/v1.0" in hub.requests
        # (the pipeline's own label-name lookup does not take the revision yet: label_names.json is left out here)
        at_main = [r for r in hub.requests if ("/main/" in r or r.endswith("/main")) and "label_names.json" not in r]
        assert not at_main, at_main
        assert any(r.startswith("HEAD /tester/tiny-at/resolve/") and "model.safetensors" in r for r in hub.requests)
        result = json.loads((tmp_path / "out" / "speech_en.json").read_text())
        assert result["audio_tags"][0]["tags"][0]["label"].startswith("DE_")  # names from that revision's file
    finally:
        server.shutdown()
