"""`whisper_at_hf.compat`: the original package's six lines, on our model and pipeline.

(a) a converted synthetic checkpoint (a tiny random reference `whisper_at` model, saved as the original release ships
files and converted), served through the variant table; (b) the real `../shared/models/whisper-base` with a random
head. Tags must equal the pipeline's logits (and the reference's), and `parse_at_label` must equal the original
package's function on the same result wherever its top-k-first filtering does not change the answer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import whisper_at
from conftest import BASE, SHARED_AUDIO, TINY_EN, tiny_reference_whisper_at
from test_convert_original_whisper_at import save_original_files

import whisper_at_hf.compat as whisper
from whisper_at_hf import WhisperForAudioTaggingAndASR
from whisper_at_hf.convert_original_whisper_at import convert_whisper_at_checkpoint, export_original_checkpoint
from whisper_at_hf.original_format import read_original_label_names

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

SPEECH = SHARED_AUDIO / "speech_en.wav"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    audio, _ = sf.read(SPEECH, dtype="float32")
    return audio


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A tiny reference `whisper_at` model (English-only) converted from original-format files."""
    folder = tmp_path_factory.mktemp("original")
    reference = tiny_reference_whisper_at(n_vocab=51864)
    whisper_path, head_path = save_original_files(reference, folder)
    output = folder / "converted"
    convert_whisper_at_checkpoint(whisper_path, head_path, output, processor=TINY_EN)
    return reference, output


@pytest.fixture(scope="module")
def converted_model(converted):
    _, output = converted
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(whisper.CHECKPOINTS_ENV, json.dumps({"tiny.en": str(output)}))
        return whisper.load_model("tiny.en", device="cpu")


def original_parse(result, **kwargs):
    return whisper_at.parse_at_label(result, **kwargs)


def assert_same_tags(ours, theirs):
    assert len(ours) == len(theirs)
    for mine, original in zip(ours, theirs):
        assert mine["time"] == original["time"]
        assert [name for name, _ in mine["audio tags"]] == [name for name, _ in original["audio tags"]]
        np.testing.assert_allclose(
            [v for _, v in mine["audio tags"]], [v for _, v in original["audio tags"]], rtol=0, atol=1e-4
        )


# ----------------------------------------------------------------------------------------------------------------------
# (a) converted synthetic checkpoint, through the variant table
# ----------------------------------------------------------------------------------------------------------------------
FAST = dict(  # greedy, one segment, no fallback checks, few tokens: for tests of the options, not of decoding
    temperature=0.0,
    without_timestamps=True,
    compression_ratio_threshold=None,
    logprob_threshold=None,
    no_speech_threshold=None,
    sample_len=4,
)


@pytest.fixture(scope="module")
def six_lines_result(converted_model):
    # the lines with at_time_res=2 (4 windows on the 7.7 s clip) and greedy decoding without fallback checks:
    # a random decoder fails every check, and six fallback temperatures of timestamped decoding take minutes. The
    # unchanged lines run on whisper-base below.
    model = converted_model
    result = model.transcribe(
        str(SPEECH),
        at_time_res=2,
        temperature=0.0,
        compression_ratio_threshold=None,
        logprob_threshold=None,
        no_speech_threshold=None,
    )
    tags = whisper.parse_at_label(
        result, language="follow_asr", top_k=5, p_threshold=-1, include_class_list=list(range(527))
    )
    return result, tags


def test_six_lines_on_converted_checkpoint(converted_model, six_lines_result, speech):
    model = converted_model
    result, tags = six_lines_result
    assert model.name_or_path.endswith("converted")
    assert set(result) >= {"text", "segments", "language", "at_time_res", "audio_tag"}
    assert result["language"] == "en" and result["at_time_res"] == 2
    duration = len(speech) / 16000
    assert result["audio_tag"].shape == (math.ceil(duration / 2), 527)  # 4 windows of 2 s for 7.7 s
    assert result["segments"] and all(
        set(segment) == {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                         "compression_ratio", "no_speech_prob"}
        for segment in result["segments"]
    )
    assert "".join(segment["text"] for segment in result["segments"]).strip() == result["text"].strip()

    # the pipeline's logits, bit for bit (short-form tags do not depend on decoding: decode one token)
    piped = model.pipeline(str(SPEECH), at_time_res=2, return_tag_logits=True, generate_kwargs={"max_new_tokens": 1})
    torch.testing.assert_close(result["audio_tag"], torch.from_numpy(piped["audio_tag_logits"]), rtol=0, atol=0)

    # names come from the checkpoint's label_names.json; the original reads the same names from its own assets
    assert_same_tags(tags, original_parse(result, language="follow_asr", top_k=5, p_threshold=-1))
    for options in (
        dict(language="zh", top_k=3),
        dict(language="en", top_k=10, p_threshold=0.05),
        dict(language="xx-unknown", top_k=2),  # both fall back to English with a warning
    ):
        with pytest.warns(UserWarning) if options["language"] == "xx-unknown" else _no_op():
            ours = whisper.parse_at_label(result, **options)
        with pytest.warns(UserWarning) if options["language"] == "xx-unknown" else _no_op():
            theirs = original_parse(result, **options)
        assert_same_tags(ours, theirs)


class _no_op:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_class_filter_before_top_k(six_lines_result):
    result, _ = six_lines_result
    logits = result["audio_tag"]
    # Same answer where the original's top-k already holds the listed classes: list exactly their top-5 union.
    union = sorted({int(i) for row in logits.topk(5, dim=-1).indices for i in row})
    assert_same_tags(
        whisper.parse_at_label(result, top_k=5, include_class_list=union),
        original_parse(result, top_k=5, include_class_list=union),
    )
    # The intended difference: a listed class outside the overall top-5 is kept by us, lost by the original.
    lowest = int(logits[0].argmin())
    ours = whisper.parse_at_label(result, top_k=5, p_threshold=-math.inf, include_class_list=[lowest])
    theirs = original_parse(result, top_k=5, p_threshold=-math.inf, include_class_list=[lowest])
    assert theirs[0]["audio tags"] == []
    names = result["label_names"]["en"]
    assert ours[0]["audio tags"] == [(names[lowest], pytest.approx(float(logits[0, lowest])))]


def test_decode_options(converted_model):
    model = converted_model
    with pytest.warns(UserWarning) as caught:
        result = model.transcribe(
            str(SPEECH), best_of=5, language="en", beam_size=2, initial_prompt="hello", **FAST
        )
    messages = " ".join(str(warning.message) for warning in caught)
    assert "best_of" in messages
    # options' one rule (as the pipeline, CLI and annotate): an English-only model refuses another language or
    # translating (the original warned and transcribed English), before any audio is read
    for options in ({"language": "de"}, {"task": "translate"}):
        with pytest.raises(ValueError, match="is an English-only model: it has no"):
            model.transcribe(str(SPEECH.parent / "no-such-file.wav"), **options)
    assert len(result["segments"]) == 1 and result["segments"][0]["temperature"] == 0.0
    assert result["segments"][0]["seek"] == 0 and result["segments"][0]["avg_logprob"] is None
    with pytest.raises(TypeError, match="no_such_option"):
        model.transcribe(str(SPEECH), no_such_option=1)
    with pytest.raises(ValueError, match="multiple of 0.4"):
        model.transcribe(str(SPEECH), at_time_res=0.5, **FAST)


def test_print_helpers_match_the_original(converted_model, capsys):
    whisper_at.print_label_name(language="zh")
    theirs = capsys.readouterr().out
    whisper.print_label_name(language="zh", label_names=converted_model)
    assert capsys.readouterr().out == theirs
    whisper.print_label_name(language="zh")  # default: the original release's names
    assert capsys.readouterr().out == theirs
    whisper_at.print_support_language()
    theirs = capsys.readouterr().out
    whisper.print_support_language(converted_model)
    assert capsys.readouterr().out.lower() == theirs.lower()


# ----------------------------------------------------------------------------------------------------------------------
# (b) real whisper-base with a random head
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    from transformers import WhisperProcessor

    folder = tmp_path_factory.mktemp("whisper-base-at")
    torch.manual_seed(0)
    model = WhisperForAudioTaggingAndASR.from_whisper(BASE, dtype=torch.float16)
    model.save_pretrained(folder)
    WhisperProcessor.from_pretrained(BASE).save_pretrained(folder)
    read_original_label_names().save(folder)  # as the converter writes them
    return folder


@pytest.fixture(scope="module")
def base_model(base_dir):
    return whisper.load_model(str(base_dir), device="cpu")


def test_checkpoint_overrides_do_not_leak_between_threads(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.delenv(whisper.CHECKPOINTS_ENV, raising=False)
    tables = [{"small": f"/models/small-{i}", "large_low": f"/models/low-{i}"} for i in range(8)]

    def resolve(table: dict) -> tuple:
        return tuple(whisper.checkpoint_for(*args, checkpoints=table) for args in [("small",), ("large-v2", True)])

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(resolve, tables * 4))
    assert results == [(t["small"], t["large_low"]) for t in tables * 4]
    assert whisper.checkpoint_for("small") == "whisper-at-hf/whisper-at-small"


@pytest.mark.slow
def test_six_lines_on_whisper_base(base_model):
    model = base_model
    # the lines unchanged: the original's default decoding (temperature fallback, thresholds, timestamps)
    result = model.transcribe(str(SPEECH), at_time_res=10)
    tags = whisper.parse_at_label(
        result, language="follow_asr", top_k=5, p_threshold=-1, include_class_list=list(range(527))
    )
    assert model.model.dtype == torch.float32
    assert "lazy dog" in result["text"].lower() and result["language"] == "en"
    assert result["audio_tag"].shape == (1, 527)
    assert 0.0 <= result["segments"][0]["start"] < result["segments"][-1]["end"] <= 7.8
    piped = model.pipeline(str(SPEECH), at_time_res=10, return_tag_logits=True, generate_kwargs={"max_new_tokens": 1})
    torch.testing.assert_close(result["audio_tag"], torch.from_numpy(piped["audio_tag_logits"]), rtol=0, atol=0)
    assert_same_tags(tags, original_parse(result, language="follow_asr", top_k=5, p_threshold=-1))
    assert_same_tags(whisper.parse_at_label(result, top_k=527), original_parse(result, top_k=527))


# ----------------------------------------------------------------------------------------------------------------------
# The variant table and its errors
# ----------------------------------------------------------------------------------------------------------------------
def test_variant_table(monkeypatch):
    monkeypatch.delenv(whisper.CHECKPOINTS_ENV, raising=False)
    assert len(whisper.CHECKPOINTS) == 16
    assert set(whisper.available_models()) == {
        "tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en", "large-v1", "large-v2",
        "large",
    }
    assert whisper.checkpoint_for("large") == whisper.CHECKPOINTS["large-v2"] == "whisper-at-hf/whisper-at-large-v2"
    assert whisper.checkpoint_for("large", at_low_compute=True) == "whisper-at-hf/whisper-at-large-v2-low"
    assert whisper.checkpoint_for("small.en", at_low_compute=True) == whisper.CHECKPOINTS["small.en_low"]
    assert whisper.checkpoint_for("/models/mine") is None and whisper.checkpoint_for("org/repo") is None
    for name in ("tiny", "tiny.en", "base", "base.en"):
        with pytest.raises(ValueError, match="no low-dim .*small, small.en, medium, medium.en, large-v1, large-v2"):
            whisper.checkpoint_for(name, at_low_compute=True)
    with pytest.raises(ValueError, match="no low-dim"):
        whisper.load_model("base", at_low_compute=True)

    with pytest.raises(TypeError):  # the published table is read-only: overrides are arguments or the env var
        whisper.CHECKPOINTS["medium"] = "x"
    mine = {"medium": Path("/models/medium-at")}
    assert whisper.checkpoint_for("medium", checkpoints=mine) == "/models/medium-at"
    assert whisper.checkpoint_for("medium") == "whisper-at-hf/whisper-at-medium"  # nothing leaked
    monkeypatch.setenv(whisper.CHECKPOINTS_ENV, json.dumps({"large_low": "/env/large-low", "medium": "/env/m"}))
    assert whisper.checkpoint_for("large-v2", at_low_compute=True) == "/env/large-low"  # env wins, alias accepted
    assert whisper.checkpoint_for("medium") == "/env/m"
    assert whisper.checkpoint_for("medium", checkpoints=mine) == "/models/medium-at"  # the argument wins
    assert whisper.checkpoint_for("large", True, {"large_low": "/arg/low"}) == "/arg/low"
    monkeypatch.setenv(whisper.CHECKPOINTS_ENV, "large-v2=/x")
    with pytest.raises(ValueError, match="JSON object"):
        whisper.checkpoint_for("large-v2")


def test_unavailable_checkpoint_message(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.delenv(whisper.CHECKPOINTS_ENV, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never wait on the network in tests
    with pytest.raises(whisper.CheckpointNotAvailableError) as info:
        whisper.load_model("large-v2", at_low_compute=True, download_root=tmp_path)
    message = str(info.value)
    assert "'large-v2_low'" in message and "whisper-at-hf/whisper-at-large-v2-low" in message
    assert "not in the cache" in message and "HF_HUB_OFFLINE=1" in message
    assert "whisper-at-convert --variant large-v2_low --download-only" in message
    assert not list(tmp_path.rglob("*.safetensors")) and not list(tmp_path.rglob("*.pth"))
    assert "checkpoints={'large-v2_low': DIR}" in message and whisper.CHECKPOINTS_ENV in message
    assert "whisper-at-convert" in message
    with pytest.raises(whisper.CheckpointNotAvailableError, match="no such local directory"):
        whisper.load_model(str(tmp_path / "missing"))
    assert issubclass(whisper.CheckpointNotAvailableError, OSError)


@pytest.mark.slow
def test_word_timestamps_on_whisper_base(base_model):
    result = base_model.transcribe(str(SPEECH), word_timestamps=True)
    words = [word for segment in result["segments"] for word in segment["words"]]
    assert len(result["segments"]) >= 2 and all(segment["words"] for segment in result["segments"])
    for segment in result["segments"]:
        assert "".join(word["word"] for word in segment["words"]).split() == segment["text"].split()
    assert all(set(word) == {"word", "start", "end", "probability"} for word in words)
    assert words[0]["start"] < 0.1 and all(w["start"] <= w["end"] for w in words)  # speech starts at 0.04 s
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    # the same words and times as the pipeline's word chunks (temperature 0 is the first fallback step and passes)
    piped = base_model.pipeline(str(SPEECH), return_timestamps="word", generate_kwargs={"num_beams": 1})
    assert [(w["word"], (w["start"], w["end"])) for w in words] == [
        (chunk["text"], chunk["timestamp"]) for chunk in piped["chunks"]
    ]


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["speech_en.wav", "speech_de.wav", "music_10s.wav"])
def test_transcribe_equals_the_original_package(base_model, clip):
    """Both packages' `transcribe` with their defaults on the very same weights (whisper-base + the random head, put
    into the original's model by export_original_checkpoint): same text, language, segments and tags. music_10s is
    skipped by the no-speech check in both (no segments), and both still report the detected language."""
    from whisper_at.model import ModelDimensions, Whisper

    whisper_checkpoint, head_state = export_original_checkpoint(base_model.model)
    original = Whisper(ModelDimensions(**whisper_checkpoint["dims"]))
    original.load_state_dict({**whisper_checkpoint["model_state_dict"], **head_state})
    path = str(SHARED_AUDIO / clip)
    ours = base_model.transcribe(path)
    theirs = whisper_at.transcribe(original.eval(), path, fp16=False, verbose=None)
    assert ours["text"] == theirs["text"] and ours["language"] == theirs["language"]
    assert [(s["start"], s["end"], s["text"]) for s in ours["segments"]] == [
        (pytest.approx(s["start"]), pytest.approx(s["end"]), s["text"]) for s in theirs["segments"]
    ]
    torch.testing.assert_close(ours["audio_tag"], theirs["audio_tag"], rtol=0, atol=1e-4)
    assert_same_tags(whisper.parse_at_label(ours), original_parse(theirs))


# ----------------------------------------------------------------------------------------------------------------------
# One model, many threads: each call's precision is its own
# ----------------------------------------------------------------------------------------------------------------------
def test_threads_with_different_fp16_get_their_own_results(tmp_path, speech):
    """`fp16` is per call (autocast, thread-local): the shared model's weights are never cast. On CUDA the two
    precisions give measurably different tags, so a call running in the other thread's precision is caught."""
    from concurrent.futures import ThreadPoolExecutor

    torch.manual_seed(0)
    WhisperForAudioTaggingAndASR.from_whisper(str(TINY_EN), num_labels=527).save_pretrained(tmp_path / "ckpt")
    from transformers import WhisperProcessor

    WhisperProcessor.from_pretrained(TINY_EN).save_pretrained(tmp_path / "ckpt")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = whisper.load_model(str(tmp_path / "ckpt"), device=device)
    weights = {name: (p.dtype, p.data_ptr()) for name, p in model.model.named_parameters()}
    clip = speech[: 16000 * 8]

    def tags(fp16: bool) -> torch.Tensor:
        return model.transcribe(clip, fp16=fp16, **FAST)["audio_tag"].float()

    expected = {fp16: tags(fp16) for fp16 in (True, False)}
    if device == "cuda":
        assert (expected[True] - expected[False]).abs().max() > 1e-4  # the test can tell the two apart
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [(fp16, pool.submit(tags, fp16)) for _ in range(6) for fp16 in (True, False)]
        for fp16, future in runs:
            got = future.result()
            scale = expected[fp16].abs().max().item()
            assert (got - expected[fp16]).abs().max().item() <= 1e-5 * max(scale, 1.0), f"fp16={fp16}"
    assert {name: (p.dtype, p.data_ptr()) for name, p in model.model.named_parameters()} == weights


def test_precision_is_chosen_per_call_without_casting_the_model():
    """The decision `transcribe` makes for each call (CUDA is not needed to check it): float16 on CUDA is autocast
    around that call on float32 weights; CPU and fp16=False run as loaded; nothing casts the shared model."""
    import contextlib
    import types
    import warnings

    class Weights:  # what `_precision` may look at, and a trap for any cast
        def __init__(self, device: str, dtype: torch.dtype):
            self.device, self.dtype = torch.device(device), dtype

        def to(self, *args, **kwargs):
            raise AssertionError("the shared model must not be cast")

        half = float = to

    def precision(device, dtype, fp16):
        pipe = types.SimpleNamespace(model=Weights(device, dtype))
        return whisper.WhisperATModel(pipe, None, "x")._precision(fp16)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that CUDA autocast is off on a machine without CUDA
        on_cuda = precision("cuda", torch.float32, True)
    assert isinstance(on_cuda, torch.autocast) and on_cuda.fast_dtype == torch.float16
    assert isinstance(precision("cuda", torch.float32, False), contextlib.nullcontext)
    assert isinstance(precision("cpu", torch.float32, True), contextlib.nullcontext)
    with pytest.warns(UserWarning, match="loaded in torch.float16"):
        assert isinstance(precision("cuda", torch.float16, False), contextlib.nullcontext)
