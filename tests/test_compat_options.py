"""`whisper_at_hf.compat_options`: the original API's options, accepted in canonical form or refused by name."""

from __future__ import annotations

import math

import numpy as np
import pytest

from whisper_at_hf.compat_options import check_class_indices


def test_class_indices():
    assert check_class_indices("include_class_list", [1, np.int32(2), 3.0], 527) == [1, 2, 3]
    for bad in ([1.7], ["abc"], [527], [-1], [True], 5, "12"):
        with pytest.raises(ValueError, match="include_class_list must"):
            check_class_indices("include_class_list", bad, 527)


def test_original_decode_options():
    from whisper_at_hf.compat_options import check_optional_number, check_suppress_tokens, check_temperature

    assert check_temperature(0) == 0.0 and check_temperature((0.0, 0.2, np.float32(1.0))) == (0.0, 0.2, 1.0)
    for bad in (math.nan, -1, math.inf, (), (0.0, math.nan), "hot", None):
        with pytest.raises(ValueError, match="temperature must be a number >= 0 or a non-empty list"):
            check_temperature(bad)
    assert check_optional_number("no_speech_threshold", None) is None
    assert check_optional_number("no_speech_threshold", np.float32(0.5), 0, 1) == 0.5
    for bad in ("x", math.nan, 1.5):
        with pytest.raises(ValueError, match="no_speech_threshold must be a number"):
            check_optional_number("no_speech_threshold", bad, 0, 1)
    assert check_suppress_tokens("-1") == [-1] and check_suppress_tokens(" 1, 2 ,") == [1, 2]
    assert check_suppress_tokens([3, np.int64(4)]) == [3, 4] and check_suppress_tokens(None) is None
    for bad in ("a,b", "1.5", [-2], ["x"], 2.5, {"a": 1}):
        with pytest.raises(ValueError, match="suppress_tokens must be token ids"):
            check_suppress_tokens(bad)


def test_tagging_result_for_parse_at_label():
    from whisper_at_hf.compat_options import check_tagging_result

    tags = np.zeros((2, 527), dtype=np.float32)
    assert check_tagging_result({"at_time_res": 10, "audio_tag": tags})[0] == 10.0
    for bad, message in (
        (None, "result must be what transcribe\\(\\) returned"),
        ([], "result must be what transcribe"),
        ({}, "result has no 'audio_tag' or 'at_time_res'"),
        ({"audio_tag": tags}, "result has no 'at_time_res'"),
        ({"audio_tag": np.zeros(527), "at_time_res": 10},
         r"result\['audio_tag'\] must be a \(num_windows, num_labels\) .*\(527,\)"),
        ({"audio_tag": [[0.0]], "at_time_res": 10}, r"must be a \(num_windows, num_labels\) array of logits, got list"),
        ({"audio_tag": tags, "at_time_res": -1}, r"result\['at_time_res'\] must be a number > 0"),
    ):
        with pytest.raises(ValueError, match=message):
            check_tagging_result(bad)
