"""The bad-input corpus: every odd or broken input a user can hand us gets a clear error naming it (or the right
answer), before costly work where it is an option, and never takes the other inputs of a run down.

Each case goes through the pipeline (a list holding every file case: the good items still come back) and through the
CLI (the good files' outputs are all written, exit code 1); option cases are checked before any audio is decoded.
The memory cases (sampling rates that share no factor with 16 kHz) run in a subprocess under an address-space limit.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import REPO_ROOT, SHARED_AUDIO, TINY_EN

import whisper_at_hf.pipeline_whisper_at as pipeline_module
from whisper_at_hf import WhisperForAudioTaggingAndASR
from whisper_at_hf.audio import AudioDecodeError, AudioTruncatedWarning
from whisper_at_hf.cli import _run_group

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

RATE = 16000
FAST = {"num_beams": 1, "max_new_tokens": 8}  # decoding is not what this file tests
ENV = {"PYTHONPATH": str(REPO_ROOT / "src"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}


def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


def _write(path: Path, array: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    soundfile.write(path, array, rate, subtype=subtype, format="WAV")
    return path


# File cases: name -> (how to make it, expected). `expected` is a regex for the error naming the problem, or None
# when the input is fine (the result must come back), or "truncated" (a result plus an AudioTruncatedWarning).
def _make_corpus(root: Path) -> dict[str, tuple[Path, str | None]]:
    cases: dict[str, tuple[Path, str | None]] = {}
    cases["missing"] = (root / "missing.wav", "no such file")
    (root / "empty.wav").write_bytes(b"")
    cases["empty"] = (root / "empty.wav", "file is empty")
    (root / "text.wav").write_text("these are notes, not audio\n" * 40)
    cases["text_as_wav"] = (root / "text.wav", "not an audio file|not readable")
    (root / "folder.wav").mkdir()
    cases["directory"] = (root / "folder.wav", "is a directory")
    nan = _tone(0.5, RATE)
    nan[100] = np.nan
    cases["nan"] = (_write(root / "nan.wav", nan, RATE, "FLOAT"), "NaN/Inf")
    cases["one_sample"] = (_write(root / "one_sample.wav", np.zeros(1, np.float32), RATE), None)
    cases["six_channels"] = (_write(root / "six.wav", _tone(1.0, RATE, 6), RATE), None)
    cases["8khz"] = (_write(root / "8k.wav", _tone(1.0, 8000), 8000), None)
    cases["48khz_stereo"] = (_write(root / "48k_stereo.wav", _tone(1.0, 48000, 2), 48000), None)
    cases["8bit_unsigned"] = (_write(root / "u8.wav", _tone(1.0, RATE), RATE, "PCM_U8"), None)
    whole = io.BytesIO()
    soundfile.write(whole, _tone(2.0, RATE), RATE, format="WAV", subtype="PCM_16")
    (root / "truncated.wav").write_bytes(whole.getvalue()[: 44 + RATE])  # header says 2 s, holds 0.5 s
    cases["truncated_wav"] = (root / "truncated.wav", "truncated")
    whole = io.BytesIO()
    soundfile.write(whole, _tone(2.0, RATE), RATE, format="FLAC")
    (root / "cut.flac").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 3])  # ffmpeg decodes 0.6 s
    cases["truncated_flac"] = (root / "cut.flac", "truncated")  # its own stem: one output name each
    cases["ten_channels"] = (_write(root / "ten.wav", _tone(1.0, RATE, 10), RATE), None)
    cases["huge_peak"] = (_write(root / "huge.wav", np.full(RATE, 1e29, np.float32), RATE, "FLOAT"), "audio peaks at")
    cases["nothing_at_16khz"] = (_write(root / "one_48k.wav", np.zeros(1, np.float32), 48000), "audio is too short")
    # the 244-byte WAV at 16001 Hz, and a rate near 44.1 kHz: no common factor with 16 kHz
    cases["16001hz"] = (_write(root / "r16001.wav", np.zeros(100, np.float32), 16001), None)
    cases["44101hz"] = (_write(root / "r44101.wav", _tone(2.0, 44101), 44101), None)
    return cases


GOOD = [SHARED_AUDIO / "speech_en.wav", SHARED_AUDIO / "beeps_10s.wav"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[Path, str | None]]:
    return _make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def pipe(tiny_en_at_dir):
    from transformers import pipeline

    return pipeline("whisper-at", model=str(tiny_en_at_dir))


# --------------------------------------------------------------------------------------------------------------------
# Files, through the pipeline
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def list_results(pipe, corpus):
    inputs = [str(GOOD[0]), *(str(path) for path, _ in corpus.values()), str(GOOD[1])]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = pipe(inputs, batch_size=2, at_time_res=2, **FAST)
    return dict(zip(["good_first", *corpus, "good_last"], results)), caught


FILE_CASES = [
    "missing", "empty", "text_as_wav", "directory", "nan", "one_sample", "six_channels", "8khz", "48khz_stereo",
    "8bit_unsigned", "truncated_wav", "16001hz", "44101hz", "truncated_flac", "ten_channels", "huge_peak",
    "nothing_at_16khz",
]


def test_file_cases_are_all_listed(corpus):
    assert sorted(corpus) == sorted(FILE_CASES)


@pytest.mark.parametrize("case", FILE_CASES)
def test_pipeline_list_reports_each_case_and_keeps_the_rest(list_results, corpus, case):
    results, caught = list_results
    path, expected = corpus[case]
    result = results[case]
    if expected is None or expected == "truncated":
        assert "error" not in result, result
        assert result["audio_tags"] and result["audio_tags"][0]["timestamp"][0] == 0.0
        if expected == "truncated":
            messages = [str(w.message) for w in caught if issubclass(w.category, AudioTruncatedWarning)]
            assert any(str(path) in message and "2.00 s" in message for message in messages), messages
    else:
        assert result["source"] == str(path) and result["error"].startswith(f"{path}: "), result
        assert re.search(expected, result["error"]), result["error"]
    for good in ("good_first", "good_last"):  # the good inputs around it still come back
        assert "error" not in results[good] and results[good]["audio_tags"]
    assert results["good_first"]["text"].strip().startswith("The quick")


@pytest.mark.parametrize("case", ["missing", "empty", "text_as_wav", "nan"])
def test_pipeline_single_bad_input_raises_audio_decode_error(pipe, corpus, case):
    path, expected = corpus[case]
    with pytest.raises(AudioDecodeError, match=f"{path}: .*({expected})"):
        pipe(str(path), **FAST)


def test_unsigned_8bit_audio_is_centred_not_shifted(corpus):
    from whisper_at_hf.audio import load_audio

    audio = load_audio(corpus["8bit_unsigned"][0])
    assert abs(float(audio.array.mean())) < 0.01 and 0.25 < float(np.abs(audio.array).max()) < 0.35


# --------------------------------------------------------------------------------------------------------------------
# Options: checked before any audio is decoded or the model runs
# --------------------------------------------------------------------------------------------------------------------
OPTION_CASES = {
    "at_time_res_huge": ({"at_time_res": 1e9}, "at_time_res must be at most 30 s"),
    "at_time_res_40000": ({"at_time_res": 40000}, "at_time_res must be at most 30 s"),
    "at_time_res_off_grid": ({"at_time_res": 0.3}, "at_time_res must be a positive multiple of 0.4"),
    "at_time_res_negative": ({"at_time_res": -10}, "at_time_res must be a positive multiple"),
    "at_time_res_text": ({"at_time_res": "10"}, "at_time_res must be a positive multiple"),
    "top_k_float": ({"top_k": 2.5}, "top_k must be a whole number >= 1, got 2.5"),
    "top_k_zero": ({"top_k": 0}, "top_k must be a whole number >= 1"),
    "tag_threshold_above_1": ({"tag_threshold": 1.5}, "tag_threshold must be a number >= 0 and <= 1"),
    "tag_threshold_nan": ({"tag_threshold": math.nan}, "tag_threshold must be a number"),
    "include_unknown_label": ({"include_labels": ["Speach"]}, r"include_labels holds unknown labels \['Speach'\]"),
    "exclude_unknown_label": ({"exclude_labels": "Nope"}, r"exclude_labels holds unknown labels \['Nope'\]"),
    "include_not_text": ({"include_labels": [3]}, "include_labels must hold label names"),
    "sampling_rate_zero": ({"sampling_rate": 0}, "sampling_rate must be a positive whole number"),
    "sampling_rate_negative": ({"sampling_rate": -16000}, "sampling_rate must be a positive whole number"),
    "batch_size_zero": ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
    "num_beams_zero": ({"num_beams": 0}, "num_beams must be a whole number >= 1"),
    "max_new_tokens_in_generate_kwargs": ({"generate_kwargs": {"max_new_tokens": -1}}, "max_new_tokens must be"),
    "chunk_length_too_long": ({"chunk_length_s": 60}, r"chunk_length_s must be 0 \(no chunking\) or a number of "
                              "seconds >= 5 and <= 30"),
    "chunk_length_tiny": ({"chunk_length_s": 0.001}, "chunk_length_s must be 0 .*>= 5 and <= 30 .*got 0.001"),
    "num_beams_huge": ({"num_beams": 3000}, r"num_beams must be a whole number <= 64 \(each beam"),
    "max_new_tokens_huge": ({"max_new_tokens": 100000}, r"max_new_tokens must be a whole number <= 444 \(the decoder"),
    "generate_kwargs_text": ({"generate_kwargs": "fast"}, "generate_kwargs must be a dict of generate"),
    "language_on_english_only": ({"language": "de"}, "is an English-only model: it has no language 'de'"),
    "translate_on_english_only": ({"generate_kwargs": {"task": "translate"}}, "English-only model: it has no task"),
    "task_unknown": ({"task": "summarize"}, 'task must be "transcribe" or "translate"'),
    "return_timestamps_char": ({"return_timestamps": "char"}, 'return_timestamps must be True, False or "word"'),
    "language_unknown": ({"generate_kwargs": {"language": "englsh"}}, r"language must be one of .* 'english'"),
}


@pytest.fixture
def no_decoding(monkeypatch):
    """Any decoding now fails the test: the option must have been refused before."""

    def refuse(*args, **kwargs):
        raise AssertionError("audio was decoded before the options were checked")

    monkeypatch.setattr(pipeline_module, "open_audio", refuse)  # the pipeline's one decoding entry


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_pipeline_options_fail_early_with_named_errors(pipe, no_decoding, case):
    options, message = OPTION_CASES[case]
    waveform = _tone(1.0, RATE)
    for inputs in (str(GOOD[0]), [str(GOOD[0]), str(GOOD[1])], {"raw": waveform, "sampling_rate": RATE}):
        with pytest.raises(ValueError, match=message):
            pipe(inputs, **options)


def test_numpy_scalar_options_and_english_on_english_only_are_accepted(pipe):
    result = pipe(str(GOOD[0]), at_time_res=np.float32(1.2), top_k=np.int64(2), tag_threshold=np.float32(0.0),
                  language="en", task="transcribe", num_beams=np.int64(1), max_new_tokens=np.int64(8))
    first = result["audio_tags"][0]
    assert first["timestamp"] == (0.0, pytest.approx(1.2)) and len(first["tags"]) == 2
    assert result["text"].strip().startswith("The quick")
    chunked = pipe(str(GOOD[0]), chunk_length_s=np.float32(10), stride_length_s=np.float64(1), ignore_warning=True,
                   **FAST)
    assert chunked["text"].strip().startswith("The quick")


def test_plain_list_of_floats_is_one_clear_error(pipe, no_decoding):
    samples = _tone(1.0, RATE).tolist()
    with pytest.raises(ValueError, match=r"list of 16000 numbers: pass a waveform as a numpy array"):
        pipe(samples, sampling_rate=RATE)


def test_labels_of_any_language_are_accepted_early(pipe):
    # the fixture's checkpoint names classes in English (LABEL_i) and German (DE_LABEL_i)
    result = pipe(str(GOOD[0]), include_labels=["DE_LABEL_3", "LABEL_5"], top_k=5, label_language="de", **FAST)
    assert {tag["label"] for tag in result["audio_tags"][0]["tags"]} == {"DE_LABEL_3", "DE_LABEL_5"}


def test_model_tag_bounds_at_time_res():
    from conftest import tiny_whisper

    model = WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper())
    features = torch.zeros(1, 80, 3000)
    with pytest.raises(ValueError, match="at_time_res must be at most 30 s"):
        model.tag(features, at_time_res=1e9)
    assert model.tag(features, at_time_res=30)[0].shape[0] == 1


def test_compat_transcribe_and_parse_at_label_check_options(tiny_en_at_dir):
    from whisper_at_hf import compat

    model = compat.load_model(str(tiny_en_at_dir))
    with pytest.raises(ValueError, match="at_time_res must be at most 30 s"):
        model.transcribe(str(REPO_ROOT / "no-such-file.wav"), at_time_res=1e9)  # refused before the file is read
    with pytest.raises(ValueError, match="beam_size must be a whole number >= 1, got 0"):
        model.transcribe(str(REPO_ROOT / "no-such-file.wav"), beam_size=0)
    for options, message in (  # each refused before the (missing) file is read
        ({"temperature": math.nan}, "temperature must be a number >= 0 or a non-empty list"),
        ({"temperature": -1}, "temperature must be a number >= 0"),
        ({"temperature": (0.0, math.nan)}, "temperature must be a number >= 0"),
        ({"no_speech_threshold": "x"}, "no_speech_threshold must be a number >= 0 and <= 1, got 'x'"),
        ({"logprob_threshold": math.nan}, "logprob_threshold must be a number"),
        ({"compression_ratio_threshold": -2.4}, "compression_ratio_threshold must be a number >= 0"),
        ({"suppress_tokens": "a,b"}, "suppress_tokens must be token ids: .*got 'a,b'"),
        ({"max_initial_timestamp": math.nan}, "max_initial_timestamp must be a number >= 0"),
        ({"beam_size": 3000}, "beam_size must be a whole number <= 64"),
        ({"sample_len": 100000}, "sample_len must be a whole number <= 444"),
        ({"language": "de", "task": "translate"}, "is an English-only model: it has no language 'de' or task"),
    ):
        with pytest.raises(ValueError, match=message):
            model.transcribe(str(REPO_ROOT / "no-such-file.wav"), **options)
    for bad, message in (
        ({}, "result has no 'audio_tag' or 'at_time_res'"),
        (None, "result must be what transcribe\\(\\) returned"),
        ({"language": "en", "at_time_res": 10, "audio_tag": torch.zeros(527)},
         "must be a \\(num_windows, num_labels\\)"),
    ):
        with pytest.raises(ValueError, match=message):
            compat.parse_at_label(bad)
    result = {"language": "en", "at_time_res": 10, "audio_tag": torch.zeros(1, 527), "label_names": None}
    result["label_names"] = model.label_names.names_by_language
    for kwargs, message in (
        ({"include_class_list": [1.7]}, r"include_class_list must hold whole class indices .* got \[1.7\]"),
        ({"include_class_list": ["abc"]}, "include_class_list must hold whole class indices"),
        ({"include_class_list": [527]}, r"in \[0, 527\)"),
        ({"include_class_list": 5}, "include_class_list must be a list"),
        ({"top_k": 2.5}, "top_k must be a whole number >= 1, got 2.5"),
        ({"p_threshold": "low"}, "p_threshold must be a number"),
    ):
        with pytest.raises(ValueError, match=message):
            compat.parse_at_label(result, **kwargs)
    assert len(compat.parse_at_label(result, include_class_list=[1, 2.0], top_k=3)[0]["audio tags"]) == 2


# --------------------------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------------------------
def test_truncated_safetensors_names_the_file(tiny_en_at_dir, tmp_path):
    import shutil

    from transformers import pipeline

    broken = tmp_path / "broken"
    shutil.copytree(tiny_en_at_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(OSError, match=f"cannot read {weights}: the file is truncated or corrupt"):
        WhisperForAudioTaggingAndASR.from_pretrained(broken)
    with pytest.raises(Exception, match=f"cannot read {weights}"):
        pipeline("whisper-at", model=str(broken))


def test_head_only_checkpoint_with_missing_base_says_so(tiny_en_at_dir, tmp_path):
    model = WhisperForAudioTaggingAndASR.from_pretrained(tiny_en_at_dir)
    head_only = tmp_path / "head_only"
    model.save_pretrained(head_only, head_only=True)
    config = json.loads((head_only / "config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone" / "whisper-tiny.en")
    (head_only / "config.json").write_text(json.dumps(config))
    missing = tmp_path / "gone" / "whisper-tiny.en"
    expected = f"the base Whisper `{missing}` recorded in config.json was not found; pass `base_model=`"
    with pytest.raises(OSError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        WhisperForAudioTaggingAndASR.from_pretrained(head_only)


def test_pickled_code_checkpoint_is_refused(tmp_path):
    from whisper_at_hf.convert_original_whisper_at import load_original_head

    evil = tmp_path / "evil.pth"
    torch.save({"at_model.mlp_layer.1.weight": argparse.Namespace(payload="would run on load")}, evil)
    with pytest.raises(ValueError, match="never unpickled"):
        load_original_head(evil)


# --------------------------------------------------------------------------------------------------------------------
# The CLI: bad files never stop the good ones; bad options exit 2 before the model loads
# --------------------------------------------------------------------------------------------------------------------
def test_cli_processes_every_good_file_and_exits_1(tiny_en_at_dir, corpus, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "beeps_10s.txt").mkdir()  # writing one good file's outputs fails: that file fails, the others go on
    files = [str(GOOD[0]), *(str(path) for path, _ in corpus.values()), str(GOOD[1])]
    # the memory cases are in the corpus: the whole run has 1.5 GB of address space beyond what the imports map
    script = textwrap.dedent(
        f"""
        import resource, sys
        import torch, transformers
        from whisper_at_hf import cli
        import whisper_at_hf

        mapped = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (mapped + 1536 * 2**20,) * 2)
        sys.exit(cli.main({[*files, "--model", str(tiny_en_at_dir), "-o", str(out), "-f", "txt", "--batch-size", "3",
                             "--num-beams", "1", "--max-new-tokens", "8", "--at-time-res", "2", "-q"]!r}))
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=ENV)
    assert completed.returncode == 1, completed.stderr[-3000:]
    written = sorted(path.name for path in out.iterdir() if path.is_file())
    good_cases = [case for case, (_, expected) in corpus.items() if expected in (None, "truncated")]
    expected_written = ["speech_en.txt", *(corpus[case][0].stem + ".txt" for case in good_cases)]
    assert written == sorted(expected_written), (written, completed.stderr[-3000:])
    bad_cases = [case for case, (_, expected) in corpus.items() if expected not in (None, "truncated")]
    for case in bad_cases:
        path, expected = corpus[case]
        assert re.search(f"{path}: .*({expected})", completed.stderr), (case, completed.stderr[-3000:])
    assert f"{GOOD[1]}: cannot write its outputs" in completed.stderr
    assert f"{len(bad_cases) + 1} of {len(files)} inputs failed" in completed.stderr


CLI_OPTION_CASES = {
    "batch_size_negative": (["--batch-size", "-1"], "argument --batch-size: --batch-size must be a whole number >= 1"),
    "batch_size_zero": (["--batch-size", "0"], "--batch-size must be a whole number >= 1, got 0"),
    "num_beams_zero": (["--num-beams", "0"], "--num-beams must be a whole number >= 1"),
    "top_k_float": (["--top-k", "2.5"], "--top-k must be a whole number >= 1, got 2.5"),
    "at_time_res_huge": (["--at-time-res", "40000"], "at_time_res must be at most 30 s"),
    "at_time_res_off_grid": (["--at-time-res", "0.3"], "positive multiple of 0.4"),
    "tag_threshold_text": (["--tag-threshold", "high"], "argument --tag-threshold: not a number: 'high'"),
    "chunk_length_zero": (["--chunk-length-s", "0"], "--chunk-length-s must be a number of seconds >= 5 and <= 30"),
    "chunk_length_tiny": (["--chunk-length-s", "0.01"], "--chunk-length-s must be a number of seconds >= 5"),
    "num_beams_huge": (["--num-beams", "3000"], "--num-beams must be a whole number <= 64"),
    "max_new_tokens_huge": (["--max-new-tokens", "100000"], "--max-new-tokens must be a whole number <= 444"),
    "device_unknown": (["--device", "foo"], "--device 'foo' is not a device: use cpu, cuda, cuda:N or mps"),
    "language_unknown": (["--language", "klingon"], "--language must be one of Whisper's languages"),
    "output_dir_is_a_file": (["-o", "{file}"], "output directory '{file}' exists and is not a directory"),
    "output_dir_under_a_file": (["-o", "{file}/sub"], "cannot create output directory '{file}/sub'"),
}


@pytest.mark.parametrize("case", list(CLI_OPTION_CASES))
def test_cli_bad_options_exit_2_before_loading_the_model(tmp_path, monkeypatch, capsys, case):
    import transformers

    from whisper_at_hf import cli

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(transformers, "pipeline", no_model)
    arguments, message = CLI_OPTION_CASES[case]
    file = tmp_path / "a_file"
    file.write_text("x")
    arguments = [argument.format(file=file) for argument in arguments]
    with pytest.raises(SystemExit) as exited:
        cli.main([str(GOOD[0]), "--model", str(tmp_path / "no-model"), *arguments])
    stderr = capsys.readouterr().err
    assert exited.value.code == 2 and "usage: whisper-at" in stderr and message.format(file=file) in stderr, stderr


def test_cli_bad_option_exit_code_from_the_console(tmp_path):
    # a model that does not exist: loading it would fail differently, so the error shows the check came first
    command = [sys.executable, "-m", "whisper_at_hf.cli", str(GOOD[0]), "--model", str(tmp_path), "--batch-size", "-1"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, env=ENV)
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert "--batch-size must be a whole number >= 1, got -1" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_cli_retries_a_failed_batch_file_by_file():
    """A failure that is no decoding error (e.g. in the model) costs only the file that caused it."""

    def flaky_pipe(paths, **kwargs):
        if "bad.wav" in paths:
            raise RuntimeError("the model choked")
        return [{"text": path} for path in paths]

    results = _run_group(flaky_pipe, ["a.wav", "bad.wav", "c.wav"], {})
    assert results[0] == {"text": "a.wav"} and results[2] == {"text": "c.wav"}
    assert results[1]["error"] == "bad.wav: RuntimeError: the model choked"


# --------------------------------------------------------------------------------------------------------------------
# Long audio needs no flag
# --------------------------------------------------------------------------------------------------------------------
def test_long_audio_needs_no_flag_and_matches_the_asr_pipeline(pipe):
    """Over 30 s, Whisper's sequential long-form decoding runs with timestamps internally (as the original does); the
    text is the ASR pipeline's with `return_timestamps=True`, and `chunks` come only when asked for."""
    from transformers import pipeline

    waveform, rate = soundfile.read(SHARED_AUDIO / "long_mix.wav", dtype="float32")
    waveform = waveform[: 35 * rate]
    result = pipe({"raw": waveform, "sampling_rate": rate}, num_beams=1)
    assert "chunks" not in result and [window["timestamp"] for window in result["audio_tags"]][-1] == (30.0, 35.0)
    asr = pipeline("automatic-speech-recognition", model=str(TINY_EN))  # the same Whisper weights as `pipe`
    expected = asr({"raw": waveform, "sampling_rate": rate}, return_timestamps=True, generate_kwargs={"num_beams": 1})
    assert result["text"] == expected["text"] and result["text"].strip().startswith("The quick")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the message on a machine without MPS")
def test_cli_mps_device_without_mps_exits_2(tmp_path, monkeypatch, capsys):
    import transformers

    from whisper_at_hf import cli

    monkeypatch.setattr(transformers, "pipeline", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(SystemExit) as exited:
        cli.main([str(GOOD[0]), "--model", str(tmp_path), "-o", str(tmp_path), "--device", "mps"])
    assert exited.value.code == 2 and "--device mps: MPS is not available" in capsys.readouterr().err


def test_cli_language_or_translate_on_english_only_model_exits_2(tiny_en_at_dir, tmp_path, capsys):
    """The CLI dropped --language/--task for English-only models silently; now options' one rule refuses them."""
    from whisper_at_hf import cli

    for extra, asked in ((["--language", "de", "--task", "translate"], "--language 'de' or --task 'translate'"),
                         (["--task", "translate"], "--task 'translate'")):
        code = cli.main([str(GOOD[0]), "--model", str(tiny_en_at_dir), "-o", str(tmp_path), "-q", *extra])
        stderr = capsys.readouterr().err
        assert code == 2 and f"is an English-only model: it has no {asked}" in stderr, stderr
        assert not list(tmp_path.iterdir())  # nothing was transcribed
    code = cli.main([str(GOOD[0]), "--model", str(tiny_en_at_dir), "-o", str(tmp_path), "-q", "-f", "txt",
                     "--language", "en", "--num-beams", "1", "--max-new-tokens", "8"])
    assert code == 0 and (tmp_path / "speech_en.txt").read_text().strip().startswith("The quick")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cli_cuda_device_without_cuda_exits_2(tmp_path, monkeypatch, capsys):
    import transformers

    from whisper_at_hf import cli

    monkeypatch.setattr(transformers, "pipeline", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(SystemExit) as exited:
        cli.main([str(GOOD[0]), "--model", str(tmp_path), "-o", str(tmp_path), "--device", "cuda"])
    assert exited.value.code == 2 and "--device cuda: CUDA is not available" in capsys.readouterr().err
