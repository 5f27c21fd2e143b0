"""`whisper_at_hf.options`: each check accepts what it should, in canonical form, and refuses the rest by name."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from whisper_at_hf.configuration_whisper_at import WhisperATConfig
from whisper_at_hf.options import (
    check_at_time_res,
    check_event_options,
    check_int,
    check_labels,
    check_language,
    check_not_a_sample_list,
    check_number,
    check_pipeline_options,
    check_sampling_rate,
)
from whisper_at_hf.tags import EVENT_THRESHOLD


def test_whole_numbers():
    assert check_int("top_k", 3) == 3 and check_int("top_k", np.int64(3)) == 3 and check_int("top_k", 3.0) == 3
    for bad in (0, -1, 2.5, True, "3", None, math.nan, math.inf):
        with pytest.raises(ValueError, match=f"top_k must be a whole number >= 1, got {bad!r}"):
            check_int("top_k", bad)


def test_numbers_and_bounds():
    assert check_number("x", 0.5, 0, 1) == 0.5 and check_number("x", -math.inf, allow_infinite=True) == -math.inf
    for bad in (1.5, -0.1, math.nan, math.inf, "0.5", False):
        with pytest.raises(ValueError, match="x must be a number"):
            check_number("x", bad, 0, 1)
    with pytest.raises(ValueError, match="> 0"):
        check_number("x", 0, 0, strict_minimum=True)


@pytest.mark.parametrize("value", [0.4, 2, 10, 30, 29.6])
def test_at_time_res_accepted_with_and_without_a_config(value):
    assert check_at_time_res(value) == float(value)
    assert check_at_time_res(value, WhisperATConfig()) == float(value)


@pytest.mark.parametrize(
    "value, message",
    [(30.4, "at most 30 s"), (1e9, "at most 30 s"), (0.3, "multiple of 0.4"), (0, "positive"), (-10, "positive"),
     (math.nan, "positive"), ("10", "positive"), (True, "positive")],
)
def test_at_time_res_refused_with_and_without_a_config(value, message):
    with pytest.raises(ValueError, match=message):
        check_at_time_res(value)
    with pytest.raises(ValueError, match=message):
        check_at_time_res(value, WhisperATConfig())
    if not isinstance(value, str):  # the config reads its default with float() (JSON), so "10" is 10 s there
        with pytest.raises(ValueError, match=message):
            WhisperATConfig(at_time_res=value)


def test_labels():
    known = ["Speech", "Music", "Sprache"]
    assert check_labels("include_labels", "Speech", known) == ["Speech"]
    assert check_labels("include_labels", ("Music", "Sprache"), known) == ["Music", "Sprache"]
    with pytest.raises(ValueError, match=r"unknown labels \['Speach'\].*did you mean 'Speech'"):
        check_labels("include_labels", ["Speach"], known)
    for bad in (5, [5], {"Speech": 1}, b"Speech"):
        with pytest.raises(ValueError, match="include_labels must"):
            check_labels("include_labels", bad, known)


def test_sampling_rate_and_language():
    assert check_sampling_rate(16000) == 16000 and check_sampling_rate(44100.0) == 44100
    for bad in (0, -1, 0.5, True, "16000"):
        with pytest.raises(ValueError, match="sampling_rate must be a positive whole number"):
            check_sampling_rate(bad)
    assert check_language("language", "German") == "German" and check_language("language", ["en", "<|fr|>"])
    with pytest.raises(ValueError, match="Did you mean 'german'"):
        check_language("language", "germen")


def test_sample_list_and_combined_check():
    with pytest.raises(ValueError, match="list of 3 numbers"):
        check_not_a_sample_list([0.0, 0.1, np.float32(0.2)])
    check_not_a_sample_list(["a.wav", "b.wav"])
    check_not_a_sample_list([np.zeros(10)])  # a list of arrays is a list of inputs
    checked = check_pipeline_options(None, ["Speech"], top_k=3.0, include_labels="Speech", at_time_res=None, other=1)
    assert checked == {"top_k": 3, "include_labels": ["Speech"], "at_time_res": None, "other": 1}
    with pytest.raises(ValueError, match="stride_length_s"):
        check_pipeline_options(stride_length_s=[1, 2, 3])


def test_event_options():
    assert check_event_options(0.7, 0.2, 0, 1) == {
        "event_threshold": 0.7, "event_offset_threshold": 0.2, "event_min_duration": 0.0, "event_min_gap": 1.0
    }
    assert check_event_options() == dict.fromkeys(
        ("event_threshold", "event_offset_threshold", "event_min_duration", "event_min_gap")
    )
    bad = {
        "event_threshold": (0, -0.1, 1.5, math.nan, "0.5", True),
        "event_offset_threshold": (-0.1, 1.5, math.nan, "x"),
        "event_min_duration": (-1, math.nan, math.inf, "1"),
        "event_min_gap": (-0.4, math.nan, [1]),
    }
    for name, values in bad.items():
        for value in values:
            with pytest.raises(ValueError, match=f"{name} must be a number .*got {re.escape(repr(value))}"):
                check_pipeline_options(**{name: value})
    with pytest.raises(ValueError, match=r"event_offset_threshold must be <= the onset event_threshold \(0.4\), got 0.6"):
        check_pipeline_options(event_threshold=0.4, event_offset_threshold=0.6)
    with pytest.raises(ValueError, match=rf"event_offset_threshold must be <= the onset event_threshold \({EVENT_THRESHOLD:g}\)"):
        check_pipeline_options(event_offset_threshold=0.9)  # the default onset
    with pytest.raises(ValueError, match="return_events must be True or False, got 'yes'"):
        check_pipeline_options(return_events="yes")
    assert check_pipeline_options(event_min_gap=2, top_k=None) == {"event_min_gap": 2.0, "top_k": None}


# --------------------------------------------------------------------------------------------------------------------
# Bounds that keep memory bounded, numpy scalars, generate_kwargs, the language/task rule, devices
# --------------------------------------------------------------------------------------------------------------------
def test_num_beams_and_max_new_tokens_have_upper_bounds():
    from whisper_at_hf.options import MAX_NUM_BEAMS, check_max_new_tokens, check_num_beams

    assert check_num_beams(np.int64(5)) == 5 and check_num_beams(MAX_NUM_BEAMS) == MAX_NUM_BEAMS
    for bad in (3000, 100000, MAX_NUM_BEAMS + 1):
        with pytest.raises(ValueError, match=rf"num_beams must be a whole number <= {MAX_NUM_BEAMS} .*got {bad}"):
            check_num_beams(bad)
    config = WhisperATConfig()  # max_target_positions 448
    assert check_max_new_tokens(444, config) == 444 and check_max_new_tokens(np.int32(8)) == 8
    with pytest.raises(ValueError, match=r"max_new_tokens must be a whole number <= 444 \(the decoder sees 448"):
        check_max_new_tokens(100000, config)
    small = WhisperATConfig(max_target_positions=64)
    with pytest.raises(ValueError, match="<= 60 .*sees 64 tokens"):
        check_max_new_tokens(61, small)
    with pytest.raises(ValueError, match="--max-new-tokens must be a whole number >= 1"):
        check_max_new_tokens(0, name="--max-new-tokens")


def test_chunk_length_has_a_minimum():
    from whisper_at_hf.options import MIN_CHUNK_SECONDS, check_chunk_length_s

    assert check_chunk_length_s(0) == 0.0 and check_chunk_length_s(np.float32(10)) == 10.0
    assert check_chunk_length_s(MIN_CHUNK_SECONDS) == MIN_CHUNK_SECONDS and check_chunk_length_s(30) == 30.0
    for bad in (0.01, 0.001, 4.9, 31, -1, math.nan, "10"):
        with pytest.raises(ValueError, match=r"chunk_length_s must be 0 \(no chunking\) or a number of seconds >= 5 "):
            check_chunk_length_s(bad)
    with pytest.raises(ValueError, match="--chunk-length-s must be a number of seconds >= 5 and <= 30"):
        check_chunk_length_s(0, "--chunk-length-s", allow_off=False)


def test_numpy_scalars_are_accepted_everywhere():
    config = WhisperATConfig()
    assert check_at_time_res(np.float32(1.2), config) == pytest.approx(1.2, rel=1e-6)
    assert check_at_time_res(np.float64(10.0)) == 10.0 and config.at_window_frames(np.float32(1.2)) == 3
    checked = check_pipeline_options(
        config, at_time_res=np.float32(1.2), top_k=np.int64(2), tag_threshold=np.float32(0.5), num_beams=np.int8(2)
    )
    assert checked["top_k"] == 2 and checked["num_beams"] == 2 and checked["tag_threshold"] == 0.5
    assert all(type(checked[name]) in (int, float) for name in ("at_time_res", "top_k", "tag_threshold"))
    chunking = check_pipeline_options(chunk_length_s=np.float32(10), stride_length_s=np.float64(1))
    assert type(chunking["chunk_length_s"]) is float and type(chunking["stride_length_s"]) is float
    assert check_pipeline_options(stride_length_s=(np.int64(1), 2.0))["stride_length_s"] == [1.0, 2.0]


def test_generate_kwargs_must_be_a_dict():
    from whisper_at_hf.options import check_generate_kwargs

    assert check_generate_kwargs(None) == {} and check_generate_kwargs({"num_beams": 1}) == {"num_beams": 1}
    for bad in ("fast", ["num_beams", 1], 5, {1: 2}):
        with pytest.raises(ValueError, match="generate_kwargs must be a dict of generate\\(\\) arguments"):
            check_generate_kwargs(bad)
    with pytest.raises(ValueError, match="generate_kwargs must be a dict"):
        check_pipeline_options(generate_kwargs="fast")


def test_language_and_task_one_rule():
    from whisper_at_hf.options import check_language_and_task

    assert check_language_and_task("de", "translate", True) == {"language": "de", "task": "translate"}
    assert check_language_and_task(None, "transcribe", True) == {"task": "transcribe"}
    # English-only: English and transcribing are what it does anyway (dropped); anything else is refused
    for language in (None, "en", "English", "<|en|>", ["en", "english"]):
        assert check_language_and_task(language, "transcribe", False) == {}
    for language, task, asked in (
        ("de", "translate", "language 'de' or task 'translate'"),
        ("german", None, "language 'german'"),
        (None, "translate", "task 'translate'"),
        (["en", "fr"], "transcribe", "language 'fr'"),
    ):
        with pytest.raises(ValueError, match=f"tiny.en is an English-only model: it has no {asked}\\. Use a multi"):
            check_language_and_task(language, task, False, "tiny.en")
    with pytest.raises(ValueError, match="leave out --language and --task"):
        check_language_and_task("de", None, False, names=("--language", "--task"))
    with pytest.raises(ValueError, match='task must be "transcribe" or "translate", got \'translat\''):
        check_language_and_task(None, "translat", True)
    with pytest.raises(ValueError, match="language must be one of Whisper's languages"):
        check_language_and_task("klingon", None, False)
    with pytest.raises(ValueError, match="English-only"):  # the pipeline's check takes the same rule
        check_pipeline_options(multilingual=False, language="de")


def test_a_misspelled_label_is_matched_against_the_preferred_names_first():
    """A Welsh name closer to the typo than the English one is not the hint when English names are preferred."""
    known = ["Speech", "Music", "Speach-cy"]  # "Speach-cy" stands for a label in another language, closer to the typo
    with pytest.raises(ValueError, match=r"did you mean 'Speech', 'Speach-cy'\?$"):  # all names: both
        check_labels("include_labels", ["Speach"], known)
    with pytest.raises(ValueError, match=r"did you mean 'Speech'\?$"):
        check_labels("include_labels", ["Speach"], known, preferred=["Speech", "Music"])
    with pytest.raises(ValueError, match=r"did you mean 'Speach-cy'"):  # nothing close among the preferred names
        check_labels("include_labels", ["Speach-c"], known, preferred=["Music"])
