"""tags: per-window tags, class kinds, the fine curve and event segmentation (synthetic curves with known events)."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_at_hf.original_format import read_original_label_names
from whisper_at_hf.tags import (
    EventSegmenter,
    candidate_ids,
    events_from_curve,
    format_window_tags,
    is_music_class,
    is_speech_class,
    label_ids,
    music_class_ids,
    name_events,
    smooth_curve,
    top_tags,
    window_bounds,
    windows_for_duration,
)

NAMES = {"en": ["Speech", "Dog", "Music", "Piano music", "Beep"], "de": ["Sprache", "Hund", "Musik", "Klavier", "Piep"]}


def test_window_bounds_and_count():
    assert windows_for_duration(89.002, 10.0) == 9 and windows_for_duration(8.0, 0.4) == 20
    assert windows_for_duration(0.0, 10.0) == 1
    assert window_bounds(8, 10.0, 89.002) == (80.0, 89.0)
    assert window_bounds(0, 10.0, 7.68) == (0.0, 7.68)


def test_labels_by_name_in_any_language_or_id():
    assert label_ids(["Hund", "Music", 4], NAMES) == [1, 2, 4]
    for bad in (["Cat"], [5], [True], [-1]):
        with pytest.raises(ValueError, match="unknown labels"):
            label_ids(bad, NAMES)
    assert candidate_ids(5).tolist() == [0, 1, 2, 3, 4]
    chosen = candidate_ids(5, include=["Musik", "Dog", 0], exclude=["Sprache"], names_by_language=NAMES)
    assert chosen.tolist() == [1, 2]
    assert candidate_ids(5, exclude=[3, "Beep"], names_by_language=NAMES).tolist() == [0, 1, 2]


def test_top_tags_rank_filter_and_threshold():
    scores = np.array([[0.1, 0.9, 0.5, 0.5, 0.2], [0.8, 0.0, 0.3, 0.7, 0.6]], dtype=np.float32)
    assert top_tags(scores, top_k=3) == [[1, 2, 3], [0, 3, 4]]  # ties: lower id first
    assert top_tags(scores, top_k=3, threshold=0.6) == [[1], [0, 3, 4]]
    assert top_tags(scores, top_k=3, threshold=0.6, strictly_above=True) == [[1], [0, 3]]
    assert top_tags(scores, np.array([2, 4]), top_k=5) == [[2, 4], [4, 2]]
    assert top_tags(scores, np.array([], dtype=np.int64), top_k=5) == [[], []]


def test_format_window_tags():
    probs = np.array([[0.1, 0.9, 0.5], [0.8, 0.0, 0.3]], dtype=np.float32)
    windows = format_window_tags(probs, ["a", "b", "c"], 10.0, 17.5, top_k=2, threshold=0.2)
    assert windows == [
        {"timestamp": (0.0, 10.0), "tags": [{"label": "b", "score": float(np.float32(0.9))},
                                            {"label": "c", "score": 0.5}]},
        {"timestamp": (10.0, 17.5), "tags": [{"label": "a", "score": float(np.float32(0.8))},
                                             {"label": "c", "score": float(np.float32(0.3))}]},
    ]


def test_speech_and_music_classes_of_audioset_and_custom_heads():
    english = read_original_label_names().get("en")
    speech = [index for index in range(len(english)) if is_speech_class(index, english)]
    assert speech == list(range(8))  # Speech, Male/Female/Child speech, Conversation, Narration, Babbling, synthesizer
    music = music_class_ids(english)
    for name in ("Music", "Piano", "Guitar", "Jazz", "Song", "Scary music", "Orchestra"):
        assert is_music_class(english.index(name), english), name
    for name in ("Speech", "Dog", "Church bell", "Bicycle bell", "Wind", "Siren"):
        assert not is_music_class(english.index(name), english), name
    assert len(music) == 282 - 137 + 1 - 8
    custom = NAMES["en"]
    assert [is_speech_class(i, custom) for i in range(5)] == [True, False, False, False, False]
    assert sorted(music_class_ids(custom)) == [2, 3]


def _curve(points: int, classes: int = 5) -> np.ndarray:
    return np.zeros((points, classes), dtype=np.float32)


def test_segmentation_hysteresis_gap_and_min_duration():
    curve = _curve(40)
    curve[5:15, 1] = 0.9
    curve[9, 1] = 0.35  # a dip above the offset (0.3): the event goes on
    curve[17:20, 1] = 0.8  # 2 points (0.8 s) after: merged
    curve[30, 1] = 0.9  # 10 points later: its own event, one point
    hysteresis = {"threshold": 0.5, "offset_threshold": 0.3}  # explicit: the defaults are tuned by benchmarks/events.py
    events = events_from_curve(curve, hop_seconds=0.4, min_gap=0.8, min_duration=0.4, **hysteresis)
    assert [(e["label_id"], e["start"], e["end"]) for e in events] == [(1, 2.0, 8.0), (1, 12.0, 12.4)]
    assert events[0]["score"] == pytest.approx(0.9)
    assert events_from_curve(curve, hop_seconds=0.4, min_gap=0.0, min_duration=0.8, **hysteresis) == [
        {"label_id": 1, "start": 2.0, "end": 6.0, "score": pytest.approx(0.9)},
        {"label_id": 1, "start": 6.8, "end": 8.0, "score": pytest.approx(0.8)},
    ]
    curve[9, 1] = 0.2  # below the offset: split, then merged back across the 1-point gap
    merged = events_from_curve(curve, hop_seconds=0.4, min_gap=0.4, **hysteresis)
    assert [(e["start"], e["end"]) for e in merged] == [(2.0, 6.0), (6.8, 8.0), (12.0, 12.4)]
    assert len(events_from_curve(curve, hop_seconds=0.4, min_gap=0.8)) == 2
    assert len(events_from_curve(curve, hop_seconds=0.4, min_gap=0.0)) == 4
    assert len(events_from_curve(curve, hop_seconds=0.4, min_gap=0.0, offset_threshold=0.1)) == 3


def test_silence_gives_no_events_and_below_onset_never_starts_one():
    assert events_from_curve(_curve(100)) == []
    curve = _curve(100) + 0.49
    assert events_from_curve(curve, threshold=0.5) == []
    assert events_from_curve(_curve(0)) == []


def test_event_at_the_very_end_is_closed_at_the_input_end():
    curve = _curve(20)
    curve[15:, 3] = 0.7  # runs to the last point; the input ends 0.1 s into it
    events = events_from_curve(curve, hop_seconds=0.4, duration=7.7, names=NAMES["de"], threshold=0.5)
    assert events == [{"label": "Klavier", "label_id": 3, "start": 6.0, "end": 7.7, "score": pytest.approx(0.7)}]


def test_overlapping_events_of_two_classes_sorted_by_start_then_label():
    curve = _curve(50)
    curve[10:30, 2] = 0.8  # Music 4.0-12.0
    curve[20:40, 1] = 0.9  # Dog 8.0-16.0, overlapping
    curve[10:12, 4] = 0.9  # Beep 4.0-4.8, same start as Music
    events = events_from_curve(curve, names=NAMES["en"], hop_seconds=0.4)
    assert [(e["label"], e["start"], e["end"]) for e in events] == [
        ("Beep", 4.0, 4.8), ("Music", 4.0, 12.0), ("Dog", 8.0, 16.0)
    ]
    only = events_from_curve(curve, label_ids=candidate_ids(5, include=["Hund"], names_by_language=NAMES))
    assert [e["label_id"] for e in only] == [1]


def test_incremental_equals_whole_and_ongoing_events_have_no_end():
    rng = np.random.default_rng(0)
    curve = (rng.random((300, 5)) ** 3).astype(np.float32)  # busy: many crossings, dips and gaps
    whole = events_from_curve(curve, hop_seconds=0.4, start_seconds=1.2)
    segmenter = EventSegmenter(range(5), 0.4, start_seconds=1.2)
    pieces, position = [], 0
    for size in rng.integers(0, 17, size=100):
        pieces += segmenter.push(curve[position : position + size])
        position += size
        for event in segmenter.ongoing():
            assert event["end"] is None or event["end"] > event["start"]
    pieces += segmenter.push(curve[position:]) + segmenter.finish()
    assert len(whole) > 20 and sorted(pieces, key=lambda e: (e["start"], e["label_id"])) == whole

    live = EventSegmenter([2], 0.4, min_gap=0.0)
    assert live.push(np.pad(np.full((5, 1), 0.9), ((0, 0), (2, 2)))) == []
    assert live.ongoing() == [{"label_id": 2, "start": 0.0, "end": None, "score": pytest.approx(0.9)}]
    closed = live.push(_curve(1))
    assert closed == [{"label_id": 2, "start": 0.0, "end": 2.0, "score": pytest.approx(0.9)}] and not live.ongoing()


def test_name_events_uses_the_label_language():
    events = [{"label_id": 2, "start": 1.0, "end": 2.0, "score": 0.5}, {"label_id": 0, "start": 1.0, "end": 3.0,
                                                                        "score": 0.9}]
    assert [e["label"] for e in name_events(events, NAMES["de"])] == ["Musik", "Sprache"]


def test_smoothing_removes_spikes_and_keeps_edges():
    curve = _curve(12)
    curve[6:, 0] = 1.0  # a step
    curve[2, 1] = 1.0  # a one-point spike
    curve[8, 0] = 0.0  # a one-point dip
    smoothed = smooth_curve(curve, 3)
    assert smoothed[:, 0].tolist() == [0.0] * 6 + [1.0] * 6
    assert smoothed[:, 1].max() == 0.0
    assert np.array_equal(smooth_curve(curve, 1), curve)


def _whole_curve_median(curve: np.ndarray, points: int) -> np.ndarray:
    """The median filter written out over the whole curve at once (edges repeated): what blocks must reproduce."""
    half = points // 2
    padded = np.concatenate([np.repeat(curve[:1], half, 0), curve, np.repeat(curve[-1:], half, 0)])
    return np.median(np.stack([padded[i : i + curve.shape[0]] for i in range(points)]), axis=0).astype(curve.dtype)


@pytest.mark.parametrize("length", [1, 2, 5, 255, 256, 257, 700])
def test_smoothing_in_blocks_equals_the_whole_curve_median(length):
    curve = np.random.default_rng(length).random((length, 4), dtype=np.float32)
    for points in (3, 7):
        smoothed = smooth_curve(curve, points)
        assert smoothed.dtype == curve.dtype and smoothed.shape == curve.shape
        assert np.array_equal(smoothed, _whole_curve_median(curve, points))  # a median picks a value: exact


def test_smoothing_memory_does_not_grow_with_points_times_the_curve():
    """A long input's curve (here 4,000 points = 27 min) is smoothed with temporaries bounded per block: numpy's
    traced allocations peak below 3x the curve (output included); the whole-curve median peaked at 17x (issue 21:
    0.65 GB for 2 h of audio, the long-file CLI's largest growth)."""
    import tracemalloc

    curve = np.random.default_rng(0).random((4000, 527), dtype=np.float32)
    tracemalloc.start()
    try:
        smooth_curve(curve, 7)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * curve.nbytes, f"smoothing peaked at {peak / curve.nbytes:.1f}x the curve"


def test_events_of_a_long_curve_are_segmented_in_blocks_as_at_once():
    """`events_from_curve` pushes a long curve a block at a time (events running and merging across block edges):
    the events of one push of the whole curve, with numpy's traced allocations below a quarter of the curve (one
    push copied every class's column of the whole curve)."""
    import tracemalloc

    from whisper_at_hf.tags import _CURVE_BLOCK

    points = 16 * _CURVE_BLOCK + 7
    curve = np.full((points, 527), 0.1, dtype=np.float32)
    edge = _CURVE_BLOCK
    curve[edge - 40 : edge + 40, 5] = 0.95  # across a block edge
    curve[2 * edge - 6 : 2 * edge - 1, 7] = curve[2 * edge + 1 : 2 * edge + 9, 7] = 0.95  # a gap to merge at an edge
    curve[points - 3 :, 300] = 0.95  # up to the end
    options = dict(threshold=0.9, offset_threshold=0.8, min_duration=0.8, min_gap=0.8)
    at_once = EventSegmenter(range(527), **options)
    expected = EventSegmenter._sorted(at_once.push(curve) + at_once.finish(points * 0.4 - 0.1))
    assert [e["label_id"] for e in expected] == [5, 7, 300]
    tracemalloc.start()
    try:
        events = events_from_curve(curve, duration=points * 0.4 - 0.1, **options)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert events == expected
    assert peak < curve.nbytes / 4, f"segmenting peaked at {peak / curve.nbytes:.2f}x the curve"


def test_pipeline_annotate_and_compat_rank_tags_here_only():
    """The three former copies (pipeline `_format_tags`, annotate `Annotator.row`, compat `parse_at_label`) call this
    module: none of them ranks or windows tags itself any more."""
    import inspect

    from whisper_at_hf import annotate, compat, pipeline_whisper_at

    for module in (pipeline_whisper_at, annotate, compat):
        source = inspect.getsource(module)
        assert "from .tags import" in source, module.__name__
        for own in ("argsort(", ".topk(", "round(window *", "* self.resolution"):
            assert own not in source, (module.__name__, own)
