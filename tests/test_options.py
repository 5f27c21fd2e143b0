"""`whisper_at_hf.options`: each check accepts what it should, in canonical form, and refuses the rest by name."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from whisper_at_hf.configuration_whisper_at import WhisperATConfig
from whisper_at_hf.options import (
    check_at_time_res,
    check_class_indices,
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


def test_class_indices():
    assert check_class_indices("include_class_list", [1, np.int32(2), 3.0], 527) == [1, 2, 3]
    for bad in ([1.7], ["abc"], [527], [-1], [True], 5, "12"):
        with pytest.raises(ValueError, match="include_class_list must"):
            check_class_indices("include_class_list", bad, 527)


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
