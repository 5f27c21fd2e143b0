"""pipeline("whisper-at"): structure, tag grid, filtering, language, long audio, batching, bad inputs, remote code.

Real whisper-tiny.en (and a few whisper-base runs) with a random head; text is compared with
pipeline("automatic-speech-recognition") on the same weights and inputs. Greedy decoding with a token cap keeps the
long-audio runs short (tiny.en loops on noise); the same generation arguments go to both pipelines.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import BASE, SHARED_AUDIO, TINY_EN
from transformers import WhisperProcessor, pipeline

import whisper_at_hf
from whisper_at_hf import WhisperATPipeline, WhisperForAudioTaggingAndASR
from whisper_at_hf.audio import AudioDecodeError, load_audio
from whisper_at_hf.labels import LabelNames

pytestmark = pytest.mark.needs_shared  # real weights / clips from ../shared

FAST = {"num_beams": 1, "max_new_tokens": 32}


def audio(name: str) -> np.ndarray:
    return load_audio(SHARED_AUDIO / name).array


@pytest.fixture(scope="module")
def pipe(tiny_en_at_dir):
    return pipeline("whisper-at", model=str(tiny_en_at_dir), dtype=torch.float32)


@pytest.fixture(scope="module")
def asr(shared_dir):
    return pipeline("automatic-speech-recognition", model=str(TINY_EN), dtype=torch.float32)


@pytest.fixture(scope="module")
def long_mix(shared_dir) -> np.ndarray:
    return audio("long_mix.wav")


@pytest.fixture(scope="module")
def speech_result(pipe):
    """speech_en.wav with the pipeline's default generation (beam search), logits included."""
    return pipe(str(SHARED_AUDIO / "speech_en.wav"), return_tag_logits=True)


def test_registered_task_and_structure(pipe, asr, speech_result):
    assert isinstance(pipe, WhisperATPipeline)
    result = speech_result
    assert set(result) == {"text", "language", "audio_tags", "audio_tag_logits"}
    assert result["text"] == asr(audio("speech_en.wav"))["text"]
    assert result["language"] == "english"  # English-only checkpoint; the ASR pipeline's form of chunks[].language
    assert len(result["audio_tags"]) == 1 and result["audio_tags"][0]["timestamp"] == (0.0, 7.68)
    tags = result["audio_tags"][0]["tags"]
    assert len(tags) == 5 and all(set(tag) == {"label", "score"} for tag in tags)
    scores = [tag["score"] for tag in tags]
    assert scores == sorted(scores, reverse=True)
    logits = torch.from_numpy(result["audio_tag_logits"])
    assert logits.shape == (1, 527)
    top = torch.sigmoid(logits[0]).topk(5)
    assert [tag["label"] for tag in tags] == [f"LABEL_{int(i)}" for i in top.indices]
    np.testing.assert_allclose(scores, top.values.numpy(), rtol=1e-6)


def test_short_tags_equal_generate_from_one_pass(pipe, speech_result):
    features = pipe.feature_extractor(audio("speech_en.wav"), sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        expected = pipe.model.generate(features, return_audio_tags=True, num_beams=1, max_new_tokens=4)
    np.testing.assert_allclose(speech_result["audio_tag_logits"], expected.audio_tag_logits[0, :1].numpy(), atol=1e-5)


def test_no_extra_encoder_pass_for_short_input(pipe, asr):
    """The head costs no encoder pass: ours makes exactly the passes the ASR pipeline makes for the same text."""

    def passes(which, **kwargs) -> int:
        calls = []  # the first encoder layer runs once per real encoder pass
        handle = which.model.model.encoder.layers[0].register_forward_hook(lambda *args: calls.append(1))
        try:
            which(audio("speech_en.wav"), **FAST, **kwargs)
        finally:
            handle.remove()
        return len(calls)

    assert passes(pipe) == passes(asr) == 1
    # with timestamps Whisper itself may re-encode from a seek inside the window; the tags add nothing to that
    assert passes(pipe, return_timestamps=True) == passes(asr, return_timestamps=True)


@pytest.mark.parametrize("resolution, windows, last", [(10.0, 1, (0.0, 7.68)), (0.4, 20, (7.6, 7.68))])
def test_grid_short(pipe, resolution, windows, last):
    result = pipe(audio("speech_en.wav"), at_time_res=resolution, **FAST)
    stamps = [window["timestamp"] for window in result["audio_tags"]]
    assert len(stamps) == windows and stamps[-1] == last
    assert all(math.isclose(start, k * resolution, abs_tol=1e-6) for k, (start, _) in enumerate(stamps))


@pytest.mark.parametrize("resolution, windows", [(10.0, 3), (0.4, 75)])
def test_grid_30s(pipe, long_mix, resolution, windows):
    result = pipe(long_mix[: 30 * 16000], at_time_res=resolution, **FAST)
    assert len(result["audio_tags"]) == windows
    assert result["audio_tags"][-1]["timestamp"] == (round(30 - resolution, 2), 30.0)


def test_filters_apply_before_top_k(pipe, speech_result):
    logits = torch.from_numpy(speech_result["audio_tag_logits"][0])
    ranking = torch.sigmoid(logits).argsort(descending=True).tolist()
    wanted = [f"LABEL_{ranking[-1]}", f"LABEL_{ranking[-2]}"]  # the two weakest classes
    result = pipe(audio("speech_en.wav"), include_labels=wanted, top_k=5, **FAST)
    assert sorted(tag["label"] for tag in result["audio_tags"][0]["tags"]) == sorted(wanted)

    excluded = f"LABEL_{ranking[0]}"
    result = pipe(audio("speech_en.wav"), exclude_labels=[excluded], top_k=3, **FAST)
    assert [tag["label"] for tag in result["audio_tags"][0]["tags"]] == [f"LABEL_{i}" for i in ranking[1:4]]

    threshold = float(torch.sigmoid(logits[ranking[2]])) - 1e-6
    result = pipe(audio("speech_en.wav"), tag_threshold=threshold, top_k=10, **FAST)
    assert [tag["label"] for tag in result["audio_tags"][0]["tags"]] == [f"LABEL_{i}" for i in ranking[:3]]
    assert pipe(audio("speech_en.wav"), tag_threshold=1.0, **FAST)["audio_tags"][0]["tags"] == []
    with pytest.raises(ValueError, match="unknown labels"):
        pipe(audio("speech_en.wav"), include_labels=["No such sound"], **FAST)
    with pytest.raises(ValueError, match="multiple of 0.4"):
        pipe(audio("speech_en.wav"), at_time_res=1.0, **FAST)


def test_label_language(pipe):
    result = pipe(audio("speech_en.wav"), label_language="de", top_k=2, **FAST)
    assert all(tag["label"].startswith("DE_LABEL_") for tag in result["audio_tags"][0]["tags"])
    with pytest.warns(UserWarning, match="'fr'"):
        result = pipe(audio("speech_en.wav"), label_language="fr", top_k=2, **FAST)
    assert all(tag["label"].startswith("LABEL_") for tag in result["audio_tags"][0]["tags"])
    # follow_asr on an English-only model -> English
    result = pipe(audio("speech_en.wav"), top_k=2, **FAST)
    assert all(tag["label"].startswith("LABEL_") for tag in result["audio_tags"][0]["tags"])


def test_inputs_of_every_kind_agree(pipe, tmp_path):
    reference = pipe(audio("speech_en.wav"), return_tag_logits=True, **FAST)
    wav = SHARED_AUDIO / "speech_en.wav"
    array = audio("speech_en.wav")
    inputs = [str(wav), wav.read_bytes(), {"array": array, "sampling_rate": 16000}, {"raw": array, "sampling_rate": 16000}]
    for result in pipe(inputs, return_tag_logits=True, **FAST):
        assert result["text"] == reference["text"]
        np.testing.assert_allclose(result["audio_tag_logits"], reference["audio_tag_logits"], atol=1e-5)
    resampled = load_audio(array, 44100, input_sampling_rate=16000).array
    stereo = np.stack([resampled, resampled], axis=1)
    result = pipe(stereo, sampling_rate=44100, return_tag_logits=True, **FAST)
    assert result["text"] == reference["text"]
    np.testing.assert_allclose(result["audio_tag_logits"], reference["audio_tag_logits"], atol=0.05)


def test_batch_equals_singles_and_bad_inputs_lose_nothing(pipe, tmp_path):
    names = ["speech_en.wav", "music_10s.wav", "speech_en_pinknoise.wav"]
    singles = [pipe(str(SHARED_AUDIO / name), return_tag_logits=True, **FAST) for name in names]
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    inputs = [str(SHARED_AUDIO / names[0]), str(tmp_path / "missing.wav"), str(SHARED_AUDIO / names[1]), str(empty)]
    inputs.append(str(SHARED_AUDIO / names[2]))
    batch = pipe(inputs, batch_size=3, return_tag_logits=True, **FAST)
    assert len(batch) == 5
    assert "missing.wav: no such file" in batch[1]["error"] and batch[1]["source"].endswith("missing.wav")
    assert "empty.wav: file is empty" in batch[3]["error"]
    for single, batched in zip(singles, [batch[0], batch[2], batch[4]]):
        assert batched["text"] == single["text"]
        np.testing.assert_allclose(batched["audio_tag_logits"], single["audio_tag_logits"], atol=1e-4)
    with pytest.raises(AudioDecodeError, match="missing.wav"):
        pipe(str(tmp_path / "missing.wav"))


def test_timestamps_and_words_equal_asr(pipe, asr):
    speech = audio("speech_en.wav")
    for mode in (True, "word"):
        ours = pipe(speech, return_timestamps=mode, **FAST)
        theirs = asr(speech.copy(), return_timestamps=mode, **FAST)
        assert ours["text"] == theirs["text"] and ours["chunks"] == theirs["chunks"]


def test_init_time_kwargs_equal_call_time_kwargs(tiny_en_at_dir, pipe):
    """Whisper options given to `pipeline(...)` are checked with Whisper's processing from the start."""
    speech = audio("speech_en.wav")
    options = dict(return_timestamps=True, return_language=True, top_k=2, **FAST)
    at_init = pipeline("whisper-at", model=str(tiny_en_at_dir), dtype=torch.float32, **options)
    assert at_init.type == "seq2seq_whisper"
    result, expected = at_init(speech), pipe(speech, **options)
    # the same decoding; tag scores of two runs agree to fp32 rounding (thread blocking differs between runs)
    assert {k: v for k, v in result.items() if k != "audio_tags"} == {k: v for k, v in expected.items() if k != "audio_tags"}
    for ours, theirs in zip(result["audio_tags"], expected["audio_tags"], strict=True):
        assert ours["timestamp"] == theirs["timestamp"]
        assert [t["label"] for t in ours["tags"]] == [t["label"] for t in theirs["tags"]]
        assert [t["score"] for t in ours["tags"]] == pytest.approx([t["score"] for t in theirs["tags"]], rel=1e-5)
    assert result["chunks"] and "language" in result["chunks"][0]


@pytest.mark.slow
def test_long_form_sequential(pipe, asr, long_mix):
    """89 s, Whisper's sequential long-form: text as the ASR pipeline, tags on the absolute grid = model.tag(), and
    one tag pass per aligned 30 s window on top of Whisper's passes, less every Whisper pass that ran on exactly
    such a window (seek 0, and seeks that land on a 30 s boundary): those are answered from the tag passes."""
    features = pipe.feature_extractor(
        long_mix, sampling_rate=16000, truncation=False, padding="longest", return_tensors="pt"
    ).input_features
    aligned = [features[:, :, start : start + 3000] for start in range(0, features.shape[-1], 3000)]
    passes = {"ours": 0, "theirs": 0}
    on_aligned_window = []
    hooks = [
        pipeline_.model.model.encoder.layers[0].register_forward_hook(
            lambda *args, name=name: passes.__setitem__(name, passes[name] + 1)
        )
        for name, pipeline_ in (("ours", pipe), ("theirs", asr))
    ]
    hooks.append(
        asr.model.model.encoder.register_forward_pre_hook(
            lambda module, args, kwargs: on_aligned_window.append(
                any(window.shape == (x := kwargs.get("input_features", args[0] if args else None)).shape
                    and torch.equal(window, x) for window in aligned)
            ),
            with_kwargs=True,
        )
    )
    try:
        ours = pipe(long_mix, return_timestamps=True, return_tag_logits=True, **FAST)
        theirs = asr(long_mix.copy(), return_timestamps=True, **FAST)
    finally:
        for hook in hooks:
            hook.remove()
    assert ours["text"] == theirs["text"] and ours["chunks"] == theirs["chunks"]
    assert on_aligned_window[0] and sum(on_aligned_window) >= 2 and len(aligned) == 3  # seek 0, and 30 s here
    assert passes["ours"] == passes["theirs"] + len(aligned) - sum(on_aligned_window)
    assert len(ours["audio_tags"]) == 9 and ours["audio_tags"][-1]["timestamp"] == (80.0, 89.0)
    with torch.no_grad():
        expected = pipe.model.tag(features)
    np.testing.assert_allclose(ours["audio_tag_logits"], expected[0].numpy(), atol=1e-4)


@pytest.mark.slow
def test_long_form_chunked_reuses_chunk_passes(pipe, asr, long_mix):
    """chunk_length_s=30: text as the ASR pipeline; each 0.4 s tag comes from the chunk that owns that time, with
    no encoder pass beyond the chunks'."""
    calls = []
    handle = pipe.model.model.encoder.layers[0].register_forward_hook(lambda *args: calls.append(1))
    try:
        ours = pipe(long_mix, chunk_length_s=30, ignore_warning=True, at_time_res=0.4, return_tag_logits=True, **FAST)
    finally:
        handle.remove()
    theirs = asr(long_mix.copy(), chunk_length_s=30, ignore_warning=True, **FAST)
    assert ours["text"] == theirs["text"]
    starts = [0, 20, 40, 60]  # seconds; stride 5 s each side; the chunk at 60 s reaches the end
    assert len(calls) == len(starts)
    assert len(ours["audio_tags"]) == 223 and ours["audio_tags"][-1]["timestamp"] == (88.8, 89.0)

    # Independent reconstruction: tag each chunk alone at 0.4 s and pick the owner chunk of every pooled frame.
    features = [
        pipe.feature_extractor(long_mix[s * 16000 : (s + 30) * 16000], sampling_rate=16000, return_tensors="pt")
        for s in starts
    ]
    with torch.no_grad():
        per_chunk = [pipe.model.tag(f.input_features, at_time_res=0.4)[0] for f in features]
    expected = []
    for frame in range(223):
        owner = 0 if frame < 62 else min(1 + (frame - 62) // 50, 3)  # owned from 25, 45, 65 s (frames 62, 112, 162)
        expected.append(per_chunk[owner][frame - starts[owner] * 5 // 2])
    np.testing.assert_allclose(ours["audio_tag_logits"], torch.stack(expected).numpy(), atol=1e-4)

    # At 10 s, windows straddling a chunk boundary are assembled from both chunks; 9 windows, the last clipped.
    result = pipe(long_mix, chunk_length_s=30, ignore_warning=True, **FAST)
    assert [w["timestamp"] for w in result["audio_tags"]][-2:] == [(70.0, 80.0), (80.0, 89.0)]


@pytest.mark.slow
def test_off_grid_chunks_get_extra_aligned_passes(pipe, long_mix):
    clip = long_mix[: 45 * 16000]
    ours = pipe(clip, chunk_length_s=10, ignore_warning=True, return_tag_logits=True, **FAST)
    features = pipe.feature_extractor(
        [clip[:480000], clip[480000:]], sampling_rate=16000, return_tensors="pt"
    ).input_features
    with torch.no_grad():
        pooled = pipe.model.encode(features).pooled_hidden_states
        first = pipe.model.tag_pooled(pooled[:1])[0]
        second = pipe.model.tag_pooled(pooled[1:])[0]
    expected = torch.cat([first, second[:2]])  # windows 0-10, 10-20, 20-30 | 30-40, 40-45
    assert [w["timestamp"] for w in ours["audio_tags"]][-1] == (40.0, 45.0)
    np.testing.assert_allclose(ours["audio_tag_logits"], expected.numpy(), atol=1e-4)


@pytest.fixture(scope="module")
def base_pipes(tmp_path_factory, shared_dir):
    directory = tmp_path_factory.mktemp("base_at")
    torch.manual_seed(0)
    model = WhisperForAudioTaggingAndASR.from_whisper(str(BASE))
    model.save_pretrained(directory)
    WhisperProcessor.from_pretrained(BASE).save_pretrained(directory)
    names = [model.config.id2label[index] for index in range(model.config.num_labels)]
    LabelNames({"en": names, "de": [f"DE_{name}" for name in names]}).save(directory)
    ours = pipeline("whisper-at", model=str(directory), dtype=torch.float32)
    theirs = pipeline("automatic-speech-recognition", model=str(BASE), dtype=torch.float32)
    return ours, theirs


@pytest.mark.slow
def test_base_language_detection_and_following(base_pipes):
    ours, theirs = base_pipes
    german = audio("speech_de.wav")
    result = ours(german, return_timestamps=True, return_language=True, top_k=2, **FAST)
    expected = theirs(german.copy(), return_timestamps=True, return_language=True, **FAST)
    assert result["text"] == expected["text"] and result["chunks"] == expected["chunks"]
    # one form for the language, the ASR pipeline's (its chunks carry "german"), top level and chunks alike
    assert result["language"] == "german" and {chunk["language"] for chunk in result["chunks"]} == {"german"}
    assert all(tag["label"].startswith("DE_LABEL_") for tag in result["audio_tags"][0]["tags"])
    french = audio("speech_fr.wav")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ours(french, top_k=2, **FAST)
    assert result["text"] == theirs(french.copy(), **FAST)["text"]
    assert result["language"] == "french" and any("'fr'" in str(w.message) for w in caught)
    assert all(tag["label"].startswith("LABEL_") for tag in result["audio_tags"][0]["tags"])
    told = ours(german, language="german", task="translate", top_k=1, **FAST)
    assert told["text"] == theirs(german.copy(), language="german", task="translate", **FAST)["text"]
    assert told["language"] == "german"


@pytest.mark.slow
def test_base_words_with_language_and_segments(base_pipes):
    """Word times with return_language=True stay on their words (transformers' ASR pipeline puts the language
    token in front of the tokens but not of their times, shifting every word by one token), and
    return_word_segments nests the same words into Whisper's segments."""
    ours, theirs = base_pipes
    speech = audio("speech_en.wav")
    plain = theirs(speech.copy(), return_timestamps="word", **FAST)  # no language token: times on their words
    result = ours(speech, return_timestamps="word", return_language=True, return_word_segments=True, **FAST)
    words = [(chunk["text"], chunk["timestamp"]) for chunk in result["chunks"]]
    assert words == [(chunk["text"], chunk["timestamp"]) for chunk in plain["chunks"]]
    assert words[0][1][0] < 0.1  # the speech starts at 0.04 s
    assert result["language"] == "english" and result["text"] == plain["text"]

    segments = ours(speech, return_timestamps=True, return_language=True, **FAST)["chunks"]
    assert [{k: v for k, v in segment.items() if k != "words"} for segment in result["segments"]] == segments
    assert len(segments) >= 2  # two sentences
    assert [word for segment in result["segments"] for word in segment["words"]] == result["chunks"]
    for segment in result["segments"]:
        assert "".join(word["text"] for word in segment["words"]).split() == segment["text"].split()
    with pytest.raises(ValueError, match="return_timestamps='word'"):
        ours(speech, return_word_segments=True, **FAST)


@pytest.mark.slow
def test_trust_remote_code_without_the_package(tiny_en_at_dir, pipe):
    expected = pipe(str(SHARED_AUDIO / "speech_en.wav"), return_tag_logits=True, **FAST)
    script = f"""
import sys, json
sys.modules["whisper_at_hf"] = None  # the package must not be importable here
import torch
from transformers import pipeline

pipe = pipeline("whisper-at-remote-code", model={str(tiny_en_at_dir)!r}, trust_remote_code=True, dtype=torch.float32)
result = pipe({str(SHARED_AUDIO / "speech_en.wav")!r}, return_tag_logits=True, num_beams=1, max_new_tokens=32)
try:  # the checkpoint's code loads and runs; saving is the package's
    pipe.model.save_pretrained("unused")
    raise SystemExit("saved without the package")
except ImportError as error:
    assert "pip install whisper-at-hf" in str(error), error
print(json.dumps({{"cls": type(pipe).__module__ + "." + type(pipe).__name__, "text": result["text"],
                  "tags": result["audio_tags"], "logits": result["audio_tag_logits"].tolist()}}))
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    remote = json.loads(completed.stdout.strip().splitlines()[-1])
    assert remote["cls"].startswith("transformers_modules.") and remote["cls"].endswith("WhisperATPipeline")
    assert remote["text"] == expected["text"]
    np.testing.assert_allclose(remote["logits"], expected["audio_tag_logits"], atol=1e-5)
    assert "whisper_at_hf" not in completed.stdout


def test_checkpoint_carries_pipeline_code(tiny_en_at_dir):
    config = json.loads((tiny_en_at_dir / "config.json").read_text())
    assert config["custom_pipelines"]["whisper-at-remote-code"]["impl"] == "pipeline_whisper_at.WhisperATPipeline"
    for name in ("pipeline_whisper_at.py", "audio.py", "labels.py", "modeling_whisper_at.py"):
        assert (tiny_en_at_dir / name).is_file(), name
    assert whisper_at_hf.WhisperATPipeline is WhisperATPipeline


@pytest.mark.slow
def test_threads_sharing_one_pipeline_give_the_sequential_results(pipe, long_mix):
    """One pipeline, several threads: each call keeps its own tag timeline (chunked input included)."""
    from concurrent.futures import ThreadPoolExecutor

    calls = [
        (audio("speech_en.wav"), {}),
        (audio("beeps_10s.wav"), {"at_time_res": 2.0}),
        (long_mix[: 45 * 16000], {"chunk_length_s": 30, "ignore_warning": True, "at_time_res": 4.0}),
    ]

    def run(call):
        waveform, kwargs = call
        return pipe(waveform.copy(), return_tag_logits=True, **FAST, **kwargs)

    expected = [run(call) for call in calls]
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            results = list(pool.map(run, calls))
        for result, want in zip(results, expected):
            assert result["text"] == want["text"]
            assert [w["timestamp"] for w in result["audio_tags"]] == [w["timestamp"] for w in want["audio_tags"]]
            np.testing.assert_allclose(result["audio_tag_logits"], want["audio_tag_logits"], atol=1e-4, rtol=1e-4)


# ----- sound events (return_events=True) ------------------------------------------------------------------------------
# A model whose tags are known from the audio: whisper-tiny.en with its encoder made local and transparent (pooled
# channel 0 = the log-mel energy of the low band, channel 1 of the high band; layers add nothing) and a head that
# says "Low" / "High" when a window's band energy is up. Band-limited noise then gives events with known bounds.
RATE = 16000
EVENTS_FAST = {"num_beams": 1, "max_new_tokens": 2}


class BandHead(torch.nn.Module):
    """Logits per window: class 0 "Low" and 1 "High" from the mean band energy of the window; 2 "Other" never."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.gain, self.midpoint = 8.0, 1.5

    def forward(self, pooled_states: torch.Tensor, at_time_res: float | None = None) -> torch.Tensor:
        from whisper_at_hf.timeline import windows_of

        windows = windows_of(pooled_states, self.config.at_window_frames(at_time_res))  # (B, W, L, window, d)
        energy = windows[..., :2].mean(dim=(2, 3))  # (B, W, 2)
        logits = self.gain * (energy - self.midpoint)
        return torch.cat([logits, torch.full_like(logits[..., :1], -20.0)], dim=-1)


@pytest.fixture(scope="module")
def band_pipe(shared_dir):
    model = WhisperForAudioTaggingAndASR.from_whisper(str(TINY_EN), id2label={0: "Low", 1: "High", 2: "Other"})
    encoder = model.model.encoder
    with torch.no_grad():
        encoder.conv1.weight.zero_()
        encoder.conv1.bias.fill_(2.0)  # positive, where GELU is monotonic
        encoder.conv1.weight[0, :27, 1] = 1 / 27  # mel bins up to ~1 kHz
        encoder.conv1.weight[1, 45:, 1] = 1 / 35  # mel bins above ~2.5 kHz
        encoder.conv2.weight.zero_()
        encoder.conv2.bias.zero_()
        encoder.conv2.weight[torch.arange(384), torch.arange(384), 1] = 1.0
        encoder.embed_positions.weight.zero_()
        for layer in encoder.layers:
            for linear in (layer.self_attn.out_proj, layer.fc2):
                linear.weight.zero_()
                linear.bias.zero_()
    model.audio_tagging_head = BandHead(model.config)
    processor = WhisperProcessor.from_pretrained(TINY_EN)
    return WhisperATPipeline(model=model.eval(), tokenizer=processor.tokenizer,
                             feature_extractor=processor.feature_extractor)


def band_noise(n: int, low: float, high: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    noise = np.fft.irfft(spectrum, n)
    return (0.1 * noise / noise.std()).astype(np.float32)


def place(total: float, *sounds: tuple[str, float, float]) -> np.ndarray:
    waveform = np.zeros(round(total * RATE), dtype=np.float32)
    for index, (band, start, end) in enumerate(sounds):
        low, high = (100, 800) if band == "Low" else (3000, 7000)
        first, last = round(start * RATE), round(end * RATE)
        waveform[first:last] += band_noise(last - first, low, high, index)
    return waveform


def assert_events(events: list[dict], expected: list[tuple[str, float, float]], tolerance: float = 0.8) -> None:
    assert [event["label"] for event in events] == [label for label, _, _ in expected], events
    for event, (label, start, end) in zip(events, expected):
        assert abs(event["start"] - start) <= tolerance and abs(event["end"] - end) <= tolerance, (event, start, end)
        assert set(event) == {"label", "label_id", "start", "end", "score"} and event["score"] > 0.9
        assert event["label_id"] == ["Low", "High", "Other"].index(label)


def test_events_overlapping_classes_and_unchanged_tags(band_pipe):
    waveform = place(20.0, ("Low", 2.0, 12.0), ("High", 8.0, 16.0))
    plain = band_pipe({"raw": waveform, "sampling_rate": RATE}, generate_kwargs=EVENTS_FAST)
    result = band_pipe({"raw": waveform, "sampling_rate": RATE}, return_events=True, generate_kwargs=EVENTS_FAST)
    assert "events" not in plain and {key: result[key] for key in plain} == plain  # tags and text unchanged
    assert_events(result["events"], [("Low", 2.0, 12.0), ("High", 8.0, 16.0)])
    only = band_pipe({"raw": waveform, "sampling_rate": RATE}, return_events=True, exclude_labels=["Low"],
                     generate_kwargs=EVENTS_FAST)
    assert_events(only["events"], [("High", 8.0, 16.0)])
    strict = band_pipe({"raw": waveform, "sampling_rate": RATE}, return_events=True, event_min_duration=9.0,
                       generate_kwargs=EVENTS_FAST)
    assert_events(strict["events"], [("Low", 2.0, 12.0)])


def test_silence_has_no_events(band_pipe):
    result = band_pipe({"raw": np.zeros(12 * RATE, np.float32), "sampling_rate": RATE}, return_events=True,
                       generate_kwargs=EVENTS_FAST)
    assert result["events"] == []


@pytest.mark.slow
@pytest.mark.parametrize("chunking", [{}, {"chunk_length_s": 30}], ids=["sequential", "chunked"])
def test_events_across_30s_pass_boundaries_and_at_the_very_end(band_pipe, chunking):
    """Low 20-41 s spans the 30 s pass boundary (sequential) and chunk boundaries (chunks every 20 s): one event;
    the last Low runs to the input's end (70.3 s)."""
    waveform = place(70.3, ("Low", 20.0, 41.0), ("High", 35.0, 50.0), ("Low", 64.0, 70.3))
    result = band_pipe({"raw": waveform, "sampling_rate": RATE}, return_events=True, generate_kwargs=EVENTS_FAST,
                       **chunking)
    assert_events(result["events"], [("Low", 20.0, 41.0), ("High", 35.0, 50.0), ("Low", 64.0, 70.3)])
    assert result["events"][-1]["end"] == 70.3


def test_event_options_are_checked_before_any_audio_is_decoded(band_pipe, monkeypatch):
    import whisper_at_hf.pipeline_whisper_at as pipeline_module

    def refuse(*args, **kwargs):
        raise AssertionError("audio was decoded before the options were checked")

    monkeypatch.setattr(pipeline_module, "open_audio", refuse)  # the pipeline's one decoding entry
    bad = {
        "event_threshold": (0, 1.5, math.nan, "high"),
        "event_offset_threshold": (-0.1, 2, math.nan),
        "event_min_duration": (-1, math.inf),
        "event_min_gap": (-0.5, "1"),
        "return_events": ("yes", 2),
    }
    for name, values in bad.items():
        for value in values:
            for inputs in ("missing.wav", ["missing.wav", "other.wav"]):
                with pytest.raises(ValueError, match=name):
                    band_pipe(inputs, **{name: value})
    with pytest.raises(ValueError, match=r"event_offset_threshold must be <= the onset event_threshold \(0.3\)"):
        band_pipe("missing.wav", return_events=True, event_threshold=0.3, event_offset_threshold=0.4)


# ---- long files in flat memory (issue 21) -----------------------------------------------------------------------------
def test_long_file_preprocess_holds_neither_the_samples_nor_the_features(tiny_en_at_dir, tmp_path):
    """An hour of audio (115 MB of 16-bit WAV; its float32 samples alone 230 MB, the whole-file STFT GBs) goes
    through the long-form preprocess, and its first and last windows are read, with 512 MB of address space beyond
    what the loaded pipeline maps."""
    import soundfile

    path = tmp_path / "hour.wav"
    tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(16000 * 60) / 16000)).astype(np.float32)
    with soundfile.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as sound:
        for minute in range(60):
            sound.write(tone * (minute % 2))  # tone and silence, a minute each
    script = f"""
import resource, sys
import torch
from transformers import pipeline
import whisper_at_hf
pipe = pipeline("whisper-at", model={str(tiny_en_at_dir)!r}, dtype=torch.float32)
mapped = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (mapped + 512 * 2**20,) * 2)
item = next(iter(pipe.preprocess({str(path)!r})))
features = item["input_features"]
assert features.shape[-1] == 360000, features.shape
first, last = features[:, :, :3000], features[:, :, -3000:]
assert first.shape == last.shape == (1, 80, 3000), (first.shape, last.shape)
assert abs(item["audio_seconds"] - 3600) < 1e-6
print("levels", first.min().item(), first.max().item(), last.max().item())
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    first_low, first_peak, last_peak = (float(value) for value in completed.stdout.split()[-3:])
    assert first_low == first_peak  # the first minute is silence: all at the floor, 8 (log10) below the tone's peak
    assert last_peak - first_peak == pytest.approx(2.0, rel=1e-3)  # the last minute is the tone: (8 / 4) above


@pytest.mark.slow  # three long-form runs on 45 s (~1 min on a quiet 2-core machine)
def test_long_file_path_gives_the_results_of_its_array_without_a_whole_decode(pipe, long_mix, tmp_path, monkeypatch):
    """A long WAV path (also in a list, as the CLI passes files) is streamed, and transcribed and tagged as its
    samples are."""
    import soundfile

    import whisper_at_hf.audio as audio_module

    clip = long_mix[: 45 * 16000]
    path = tmp_path / "long.wav"
    soundfile.write(path, clip, 16000, subtype="FLOAT")
    expected = pipe(clip, return_tag_logits=True, **FAST)

    def no_whole_decode(*args, **kwargs):
        raise AssertionError("the long file was decoded whole")

    monkeypatch.setattr(audio_module, "read_audio_file", no_whole_decode)
    for result in (pipe(str(path), return_tag_logits=True, **FAST), pipe([str(path)], return_tag_logits=True, **FAST)[0]):
        assert result["text"] == expected["text"]
        np.testing.assert_array_equal(result["audio_tag_logits"], expected["audio_tag_logits"])
        assert result["audio_tags"] == expected["audio_tags"]


def test_long_form_tag_passes_keep_no_earlier_groups_states_alive(pipe):
    """The tag passes of a long input run `group` windows per encoder call and keep some windows' states for
    Whisper's decoding: copies of those rows, so that no earlier call's whole `(group, 1500, d)` output stays alive
    through a view of one row (at an encoder call only the previous call's output, still bound in the loop, may)."""
    import gc

    alive = []

    def count_earlier_outputs(_module, _args, output):
        gc.collect()
        states = output.last_hidden_state.untyped_storage()
        storages = {(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
                    for t in gc.get_objects() if isinstance(t, torch.Tensor)}
        alive.append(sum(size == states.nbytes() and ptr != states.data_ptr() for ptr, size in storages))

    windows, group = 8, 2
    features = torch.randn(1, 80, 3000 * windows, generator=torch.Generator().manual_seed(0))
    hook = pipe.model.model.encoder.register_forward_hook(count_earlier_outputs)
    try:
        with torch.no_grad():
            tags, _, held = pipe._tag_long(features, [75 * windows], pipe._timelines(None, False), None, group)
    finally:
        hook.remove()
    assert len(alive) == windows // group and max(alive) <= 1, alive  # main: [0, 1, 2, 3]
    assert held.last_hidden_state.shape[0] == windows and tags[0].shape[0] == windows * 3  # 10 s windows


def test_event_probabilities_are_computed_in_the_logits_buffer():
    """postprocess turns a long input's event logits into probabilities in their own buffer (2 h: 38 MB), and the
    pieces of a chunked input into one new buffer; `None` items (no event windows) are skipped."""
    from whisper_at_hf.pipeline_whisper_at import _probabilities

    logits = torch.randn(1, 9000, 527, generator=torch.Generator().manual_seed(0))
    expected = torch.sigmoid(logits[0]).numpy()
    curve = _probabilities([logits, None])
    assert np.shares_memory(curve, logits.numpy())
    np.testing.assert_allclose(curve, expected, rtol=1e-6, atol=0)
    pieces = [torch.zeros(1, 2, 3), None, torch.ones(1, 1, 3)]
    np.testing.assert_allclose(_probabilities(pieces), torch.sigmoid(torch.tensor([[0.0] * 3] * 2 + [[1.0] * 3])))
