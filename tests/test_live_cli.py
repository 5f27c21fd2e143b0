"""live_cli: sources through ffmpeg, caption files, option errors before the model loads, end-to-end runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pysubs2
import pytest
from conftest import REPO_ROOT, SHARED_AUDIO

from whisper_at_hf.live_cli import (
    MAX_CUE_SECONDS,
    CaptionFiles,
    FfmpegSource,
    StreamBroken,
    ffmpeg_command,
    main,
)

needs_ffmpeg = pytest.mark.skipif(not __import__("shutil").which("ffmpeg"), reason="ffmpeg is not installed")


@needs_ffmpeg
def test_ffmpeg_command_per_source(tmp_path):
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"")
    command = ffmpeg_command(str(clip), None)
    at = command.index("-re")  # a file plays at real-time pace
    assert command[at + 1 : at + 3] == ["-i", str(clip)]
    assert command[-8:] == ["-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"]
    assert "pipe:0" in ffmpeg_command("-", None)
    url = ffmpeg_command("rtsp://camera/stream", None)
    assert "rtsp://camera/stream" in url and "-re" not in url
    assert ffmpeg_command(None, "alsa")[5:9] == ["-f", "alsa", "-i", "default"]
    with pytest.raises(ValueError, match="no such file"):
        ffmpeg_command(str(tmp_path / "missing.wav"), None)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--step", "0"], "--step"),
        (["--top-k", "0"], "--top-k"),
        (["--tag-threshold", "1.5"], "--tag-threshold must be a number >= 0 and <= 1"),
        (["missing.wav"], "no such file"),
        (["--language", "klingon"], "language"),
        (["-", "--name", "a/b"], "--name"),
    ],
)
@needs_ffmpeg
def test_bad_options_fail_before_the_model_loads(argv, message, capsys, monkeypatch):
    import whisper_at_hf.live_cli as live_cli

    monkeypatch.setattr(live_cli, "_make_stream", lambda args: pytest.fail("the model must not load"))
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_event_threshold_and_step_messages(capsys):
    """`--event-threshold 0.5` parses (it raised KeyError: 'threshold'); a bad value and a bad `--step` are usage
    errors naming the option once (the step's read "----step")."""
    from whisper_at_hf.live_cli import build_parser

    assert build_parser().parse_args(["--event-threshold", "0.5"]).event_threshold == 0.5
    for argv, message in [
        (["--event-threshold", "0"], "argument --event-threshold: --event-threshold must be a number > 0 and <= 1"),
        (["--step", "0"], "argument --step: --step must be a number > 0 and <= 15, got 0."),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


@needs_ffmpeg
def test_output_dir_that_is_a_file_fails_before_the_model_loads(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main(["-", "-o", str(blocker)])
    assert exit_info.value.code == 2 and "not a directory" in capsys.readouterr().err


@needs_ffmpeg
@pytest.mark.needs_shared
def test_ffmpeg_source_decodes_any_rate_and_channels_to_16k_mono():
    command = ffmpeg_command(str(SHARED_AUDIO / "speech_en_stereo_44k.flac"), None)
    command.remove("-re")  # as fast as it decodes
    source = FfmpegSource(command, "flac")
    audio = np.concatenate(list(source))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size / 16000 - 7.7) < 0.1 and 0.01 < np.abs(audio).max() < 1.5  # resampling may ring a little past 1


@needs_ffmpeg
def test_ffmpeg_source_that_cannot_be_read_or_holds_no_audio(tmp_path):
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("this is not audio\n" * 10)
    with pytest.raises(StreamBroken, match="cannot read"):
        list(FfmpegSource(ffmpeg_command(str(not_audio), None), "notes.txt"))
    with pytest.raises(StreamBroken, match="cannot read"):
        list(FfmpegSource(ffmpeg_command("http://127.0.0.1:9/none.mp3", None), "url"))


def _update(words, events=(), audio_time=0.0):
    return {
        "audio_time": audio_time, "new_words": list(words), "committed_text": "", "tentative_text": "",
        "tags": [], "tags_window": None, "events": list(events), "compute_s": 0.1, "skipped_steps": 0,
    }


def test_caption_files_cues_follow_subtitle_conventions(tmp_path):
    english = ["Speech", "Music", "Dog"]
    files = CaptionFiles(str(tmp_path), "talk", english)
    assert pysubs2.load(str(tmp_path / "talk.srt"), format_="srt").events == []  # the files exist from the start
    words = [{"word": w, "start": 0.5 * i, "end": 0.5 * i + 0.4} for i, w in enumerate(
        "This sentence is long enough that it must be split into more than one cue for sure. Short one.".split()
    )]
    files.add(_update(words[:5]))
    files.add(_update(words[5:], events=[
        {"label": "Speech", "label_id": 0, "start": 0.0, "end": 9.0, "score": 0.9},
        {"label": "Music", "label_id": 1, "start": 10.0, "end": None, "score": 0.8},  # ongoing: not yet a cue
        {"label": "Dog", "label_id": 2, "start": 12.0, "end": 13.2, "score": 0.7},
    ]))
    files.finish()
    for suffix in ("srt", "vtt"):
        cues = pysubs2.load(str(tmp_path / f"talk.{suffix}"), format_=suffix).events
        texts = [cue.plaintext for cue in cues]
        assert "[Dog]" in texts and "[Speech]" not in texts and "[Music]" not in texts
        speech = [cue for cue in cues if not cue.plaintext.startswith("[")]
        assert " ".join(cue.plaintext.replace("\n", " ") for cue in speech) == " ".join(w["word"] for w in words)
        for cue in speech:
            lines = cue.plaintext.split("\n")
            assert len(lines) <= 2 and all(len(line) <= 50 for line in lines)
            assert (cue.end - cue.start) / 1000 <= MAX_CUE_SECONDS + 0.5
    lines = (tmp_path / "talk.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["new_words"][0]["word"] == words[5]["word"]


# ----- end to end (real tiny.en, random head; real-time pace) ------------------------------------------------------
@pytest.fixture(scope="module")
def cli_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.slow
@pytest.mark.needs_shared
@needs_ffmpeg
def test_stdin_stream_prints_updates_and_ends_with_exit_0(tiny_en_at_dir, tmp_path, cli_env):
    feeder = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(SHARED_AUDIO / "speech_en.wav"), "-f", "wav",
         "-"], stdout=subprocess.PIPE,
    )
    try:
        run = subprocess.run(
            [sys.executable, "-m", "whisper_at_hf.cli", "--live", "-", "--model", str(tiny_en_at_dir),
             "--output-format", "jsonl", "-o", str(tmp_path), "--name", "talk"],
            stdin=feeder.stdout, capture_output=True, text=True, env=cli_env, timeout=600,
        )
    finally:
        feeder.stdout.close()  # a CLI that stopped reading early then ends ffmpeg with a broken pipe (no hang)
        feeder.wait(timeout=60)
    assert run.returncode == 0, run.stderr
    updates = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(updates) >= 2 and updates[-1]["tentative_text"] == ""
    assert "noise" in updates[-1]["committed_text"].lower()
    cues = pysubs2.load(str(tmp_path / "talk.srt")).events
    assert any("noise" in cue.plaintext.lower() for cue in cues)
    assert len((tmp_path / "talk.jsonl").read_text().splitlines()) == len(updates)


@pytest.mark.slow
@pytest.mark.needs_shared
@needs_ffmpeg
def test_broken_stream_ends_with_a_message_and_complete_files(tiny_en_at_dir, tmp_path, cli_env):
    live = subprocess.Popen(
        [sys.executable, "-m", "whisper_at_hf.cli", "--live", str(SHARED_AUDIO / "long_mix.wav"), "--model",
         str(tiny_en_at_dir), "--output-format", "jsonl", "-o", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env,
    )
    first = live.stdout.readline()  # the first update: ffmpeg is running
    assert json.loads(first)["audio_time"] > 0
    ffmpeg = subprocess.run(["pgrep", "-P", str(live.pid), "ffmpeg"], capture_output=True, text=True).stdout.split()
    assert ffmpeg, "ffmpeg is not a child of the live process"
    os.kill(int(ffmpeg[0]), signal.SIGKILL)
    out, err = live.communicate(timeout=600)
    assert live.returncode == 1
    assert "the stream broke" in err and "Traceback" not in err
    pysubs2.load(str(tmp_path / "long_mix.srt"))  # complete, parseable
    for line in (first + out).splitlines():
        json.loads(line)
