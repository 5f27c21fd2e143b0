"""Tags on the time line, as users read them: per-window tags, the fine probability curve and sound events.

The one place that turns the head's scores into output. The pipeline, annotate and compat call it; the writers and
the plot read what it produced.

- Per-window tags: [`candidate_ids`] (include / exclude by name in any label language, or by class id), then
  [`top_tags`] (top-k above a threshold) on `(num_windows, C)` scores; [`window_bounds`] gives each window's times.
- Sound events: the head run on short windows sliding along the 0.4 s pooled frames gives a probability curve
  `(num_points, C)` (one point per `EVENT_HOP_SECONDS`, see `timeline.SlidingWindows`); [`smooth_curve`] median-filters
  it; [`EventSegmenter`] cuts it into events with hysteresis (onset / offset thresholds), gap merging and a minimum
  duration, incrementally (a growing curve, e.g. live audio) or at once ([`events_from_curve`]).
- Class kinds: [`is_speech_class`] (Speech and its AudioSet children) and [`is_music_class`] (Music and musical
  classes), decided by the checkpoint's English names, so custom heads with a "Speech" class work too.

Event design (defaults below; `benchmarks/events.py` measures them, change them here):
- window `EVENT_WINDOW_SECONDS` = 0.4 s (one pooled frame) and hop `EVENT_HOP_SECONDS` = 0.4 s: a head trained on
  clip-level labels scores "present anywhere in the window", so any longer window starts and ends events about
  half a window early / late (2 s: median onset error 0.95 s and event F1 down to 0.19 on the benchmark's scene; one
  frame: 0.2 s and >= 0.8 per class);
- smoothing: a median over `EVENT_SMOOTHING_POINTS` = 7 points (2.8 s) removes dips and spikes of one frame's view
  (the pauses between beeps, a word gap) without moving a step edge (a mean would smear it);
- onset `EVENT_THRESHOLD` = 0.7, offset `EVENT_OFFSET_RATIO` x onset (1.0: after the median filter, hysteresis
  measured no better); gaps up to `EVENT_MIN_GAP` = 0.8 s are merged; events shorter than `EVENT_MIN_DURATION` =
  0.4 s (one point) are dropped.
- An event's `score` is its peak (smoothed) probability.

Imports numpy only (it is copied beside checkpoints with the pipeline's code).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# ----- event defaults (one place: tuned by benchmarks/events.py) ------------------------------------------------------
# Measured (benchmarks/README.md, "Sound events"): a head trained on clip-level labels says "present somewhere in the
# window", so a 2 s window started events ~0.9 s early and ended them ~0.9 s late; one pooled frame does not smear.
EVENT_WINDOW_SECONDS = 0.4
EVENT_HOP_SECONDS = 0.4
EVENT_SMOOTHING_POINTS = 7
EVENT_THRESHOLD = 0.7
EVENT_OFFSET_RATIO = 1.0
EVENT_MIN_DURATION = 0.4
EVENT_MIN_GAP = 0.8

# AudioSet's Speech class and its children in the ontology (English display names).
SPEECH_CLASS_NAMES = frozenset({
    "Speech",
    "Male speech, man speaking",
    "Female speech, woman speaking",
    "Child speech, kid speaking",
    "Conversation",
    "Narration, monologue",
    "Babbling",
    "Speech synthesizer",
})
# AudioSet's class list holds the Music subtree as one block, from "Music" to "Scary music" (indices 137-282 of the
# 527); bells (Bell ... Change ringing, 200-207) sit inside it as musical instruments but caption as sounds.
_MUSIC_FIRST, _MUSIC_LAST = "Music", "Scary music"
_NOT_MUSIC = frozenset({
    "Bell", "Church bell", "Jingle bell", "Bicycle bell", "Tuning fork", "Chime", "Wind chime",
    "Change ringing (campanology)",
})


# ----- per-window tags ------------------------------------------------------------------------------------------------
def window_bounds(index: int, at_time_res: float, duration: float) -> tuple[float, float]:
    """`(start_s, end_s)` of window `index`, the last one clipped to the input's `duration`; 10 ms precision
    (Whisper's timestamps step by 20 ms: an 89.002 s file ends its last window at 89.0)."""
    start = index * at_time_res
    end = min((index + 1) * at_time_res, duration)
    return round(start, 2), round(end, 2)


def windows_for_duration(duration: float, at_time_res: float) -> int:
    """Windows covering `duration` seconds (at least one); tolerant of float noise (`8.0 / 0.4` is 20, not 21)."""
    return max(math.ceil(round(duration / at_time_res, 6)), 1)


def label_ids(labels: Iterable[str | int], names_by_language: Mapping[str, Sequence[str]]) -> list[int]:
    """Class ids of `labels`: names in any of the checkpoint's languages, or class ids (ints).

    A name that means different classes in two languages takes the English one. Raises `ValueError` for an unknown
    name or an id out of range.
    """
    english = names_by_language["en"]
    known = {name: index for names in names_by_language.values() for index, name in enumerate(names)}
    known |= {name: index for index, name in enumerate(english)}
    ids, unknown = [], []
    for label in labels:
        if isinstance(label, str):
            if label in known:
                ids.append(known[label])
            else:
                unknown.append(label)
        elif isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= label < len(english):
            ids.append(int(label))
        else:
            unknown.append(label)
    if unknown:
        raise ValueError(f"unknown labels {unknown}; labels are the checkpoint's class names or class ids.")
    return ids


def candidate_ids(
    num_labels: int,
    include: Iterable[str | int] | None = None,
    exclude: Iterable[str | int] | None = None,
    names_by_language: Mapping[str, Sequence[str]] | None = None,
) -> np.ndarray:
    """The classes to consider, ascending: `include` (default all) less `exclude`; names need `names_by_language`."""
    if include is None and exclude is None:
        return np.arange(num_labels)
    names = names_by_language if names_by_language is not None else {"en": [str(i) for i in range(num_labels)]}
    keep = set(range(num_labels)) if include is None else set(label_ids(include, names))
    keep -= set(label_ids(exclude or [], names))
    return np.array(sorted(keep), dtype=np.int64)


def top_tags(
    scores: np.ndarray,
    candidates: np.ndarray | None = None,
    top_k: int = 5,
    threshold: float | None = None,
    strictly_above: bool = False,
) -> list[list[int]]:
    """Per window, the class ids of the `top_k` highest `scores` among `candidates`, kept if `>= threshold`
    (`> threshold` with `strictly_above`), by decreasing score (ties: lower id first).

    Args:
        scores: `(num_windows, C)` probabilities or logits, in the precision the caller reports them in.
        candidates: class ids to rank (default all), e.g. from [`candidate_ids`].
    Returns:
        `num_windows` lists of class ids.
    """
    scores = np.asarray(scores)
    candidates = np.arange(scores.shape[-1]) if candidates is None else np.asarray(candidates, dtype=np.int64)
    k = min(top_k, candidates.size)
    picked = scores[:, candidates]
    order = np.argsort(-picked, axis=-1, kind="stable")[:, :k]
    windows = []
    for row, positions in zip(picked, order):
        if threshold is not None:
            values = row[positions]
            positions = positions[values > threshold] if strictly_above else positions[values >= threshold]
        windows.append([int(candidates[position]) for position in positions])
    return windows


def format_window_tags(
    probs: np.ndarray,
    names: Sequence[str],
    at_time_res: float,
    duration: float,
    top_k: int = 5,
    threshold: float | None = None,
    candidates: np.ndarray | None = None,
) -> list[dict]:
    """The pipeline's `audio_tags`: `(num_windows, C)` probabilities -> per window
    `{"timestamp": (start_s, end_s), "tags": [{"label", "score"}, ...]}`."""
    windows = []
    for index, ids in enumerate(top_tags(probs, candidates, top_k, threshold)):
        tags = [{"label": names[i], "score": float(probs[index, i])} for i in ids]
        windows.append({"timestamp": window_bounds(index, at_time_res, duration), "tags": tags})
    return windows


# ----- class kinds ----------------------------------------------------------------------------------------------------
def is_speech_class(label_id: int, english_names: Sequence[str]) -> bool:
    """Whether class `label_id` is Speech or one of its AudioSet children (Male speech, Conversation, Narration, ...),
    by its English name."""
    return english_names[label_id] in SPEECH_CLASS_NAMES


def music_class_ids(english_names: Sequence[str]) -> frozenset[int]:
    """The musical classes: with AudioSet's class list, its Music block (without bells); otherwise every class named
    "Music" or "... music" (custom heads)."""
    names = list(english_names)
    if _MUSIC_FIRST in names and _MUSIC_LAST in names and names.index(_MUSIC_FIRST) < names.index(_MUSIC_LAST):
        first, last = names.index(_MUSIC_FIRST), names.index(_MUSIC_LAST)
        return frozenset(i for i in range(first, last + 1) if names[i] not in _NOT_MUSIC)
    return frozenset(i for i, name in enumerate(names) if name.lower() == "music" or name.lower().endswith(" music"))


def is_music_class(label_id: int, english_names: Sequence[str]) -> bool:
    """Whether class `label_id` is Music or a musical class (instrument, genre, song, ...): see [`music_class_ids`]."""
    return label_id in music_class_ids(english_names)


# ----- the fine curve -------------------------------------------------------------------------------------------------
# Curve points per block of `smooth_curve` and `events_from_curve` (their temporaries: about `points` x block x C
# values), so that neither holds copies of a long input's whole curve.
_CURVE_BLOCK = 256


def smooth_curve(curve: np.ndarray, points: int = EVENT_SMOOTHING_POINTS) -> np.ndarray:
    """Median over `points` (odd) neighbouring curve points per class, edges repeated. `(n, C)` -> `(n, C)`.

    On a growing curve, point `i` is final once point `i + points // 2` exists. Computed `_CURVE_BLOCK` points
    at a time: the median's temporaries (`points` copies of what it reads) stay a few MB however long the curve
    (a 2 h curve is 18,000 x 527 points; the whole-curve median peaked at 17x its 38 MB).
    """
    curve = np.asarray(curve)
    if points <= 1 or curve.shape[0] == 0:
        return curve
    half, total = points // 2, curve.shape[0]
    smoothed = np.empty_like(curve)
    for start in range(0, total, _CURVE_BLOCK):
        stop = min(start + _CURVE_BLOCK, total)
        rows = np.clip(np.arange(start - half, stop + half), 0, total - 1)  # edges repeated
        neighbours = np.lib.stride_tricks.sliding_window_view(curve[rows], points, axis=0)  # (stop - start, C, points)
        smoothed[start:stop] = np.median(neighbours, axis=-1)
    return smoothed


# ----- events ---------------------------------------------------------------------------------------------------------
@dataclass
class _Run:
    """One class's event being built: curve points `[first, last]`, its peak, and whether it is still above offset."""

    first: int
    last: int
    peak: float
    active: bool


class EventSegmenter:
    """Hysteresis segmentation of a probability curve into events, fed blocks of points as they arrive.

    A class's event starts at the first point `>= threshold` and lasts while its points stay `>= offset_threshold`;
    a next event starting within `min_gap` seconds of its end is merged into it; an event shorter than
    `min_duration` seconds is dropped. Point `i` covers `[start_s + i hop, start_s + (i + 1) hop)`.

    [`push`] returns the events that are final (nothing later can change them), [`ongoing`] the others (`end: None`
    while the class is still above the offset threshold), [`finish`] closes everything at the end of the input.
    Events are dicts `{"label_id", "start", "end", "score"}` (`score`: peak probability), times in seconds (10 ms).

    Args:
        label_ids: the classes to segment (columns of the full `(n, C)` curve), e.g. from [`candidate_ids`].
        hop_seconds: seconds between curve points.
        threshold: onset probability, in `(0, 1]`.
        offset_threshold: offset probability, `<= threshold`; default `threshold * EVENT_OFFSET_RATIO`.
        min_duration / min_gap: seconds, `>= 0`.
        start_seconds: time of point 0.
    """

    def __init__(
        self,
        label_ids: Iterable[int],
        hop_seconds: float = EVENT_HOP_SECONDS,
        threshold: float = EVENT_THRESHOLD,
        offset_threshold: float | None = None,
        min_duration: float = EVENT_MIN_DURATION,
        min_gap: float = EVENT_MIN_GAP,
        start_seconds: float = 0.0,
    ):
        self.label_ids = np.array(sorted({int(label) for label in label_ids}), dtype=np.int64)
        self.hop = float(hop_seconds)
        self.onset = float(threshold)
        self.offset = float(threshold * EVENT_OFFSET_RATIO if offset_threshold is None else offset_threshold)
        self.min_duration = float(min_duration)
        # a gap of g points between two runs (g = next first - last - 1) merges when g hops <= min_gap
        self.max_gap_points = int(math.floor(min_gap / self.hop + 1e-6))
        self.start = float(start_seconds)
        self.points = 0  # curve points seen so far
        self._runs: dict[int, _Run] = {}  # per label id: the run not yet final

    def push(self, curve: np.ndarray) -> list[dict]:
        """Adds `(n, C)` curve points (all classes; the segmenter reads its `label_ids`); returns newly final events."""
        block = np.asarray(curve)[:, self.label_ids]
        first_point = self.points
        self.points += block.shape[0]
        touched = set(np.flatnonzero((block >= self.offset).any(axis=0)).tolist())
        final = []
        for column in sorted(touched | {self._column(label) for label in self._runs}):
            label = int(self.label_ids[column])
            final.extend(self._scan(label, block[:, column], first_point))
        return self._sorted(final)

    def ongoing(self) -> list[dict]:
        """Events not final yet: `end` is `None` while the class is above the offset threshold."""
        events = [self._event(label, run, open_end=run.active) for label, run in self._runs.items()]
        return self._sorted([event for event in events if event is not None])

    def finish(self, duration: float | None = None) -> list[dict]:
        """Closes every event at the end of the curve (its last point, or `duration` seconds if earlier)."""
        final = [self._event(label, run, duration=duration) for label, run in self._runs.items()]
        self._runs.clear()
        return self._sorted([event for event in final if event is not None])

    # -- internals --
    def _column(self, label: int) -> int:
        return int(np.flatnonzero(self.label_ids == label)[0])

    def _scan(self, label: int, values: np.ndarray, first_point: int) -> list[dict]:
        final = []
        run = self._runs.get(label)
        for offset, value in enumerate(values.tolist()):
            point = first_point + offset
            if run is not None and run.active:
                if value >= self.offset:
                    run.last, run.peak = point, max(run.peak, value)
                    continue
                run.active = False
            if value >= self.onset:
                if run is not None and point - run.last - 1 <= self.max_gap_points:
                    run.last, run.peak, run.active = point, max(run.peak, value), True  # merge across the gap
                else:
                    if run is not None:
                        final.append(self._event(label, run))
                    run = _Run(point, point, value, True)
            elif run is not None and point - run.last - 1 >= self.max_gap_points:
                final.append(self._event(label, run))  # no onset can come close enough to merge any more
                run = None
        if run is None:
            self._runs.pop(label, None)
        else:
            self._runs[label] = run
        return [event for event in final if event is not None]

    def _event(self, label: int, run: _Run, open_end: bool = False, duration: float | None = None) -> dict | None:
        start = self.start + run.first * self.hop
        end = self.start + (run.last + 1) * self.hop
        if duration is not None:
            end = min(end, duration)
        if not open_end and (end - start < self.min_duration - 1e-6 or end <= start):
            return None
        return {
            "label_id": label,
            "start": round(start, 2),
            "end": None if open_end else round(end, 2),
            "score": float(run.peak),
        }

    @staticmethod
    def _sorted(events: list[dict]) -> list[dict]:
        return sorted(events, key=lambda event: (event["start"], event["label_id"]))


def events_from_curve(
    curve: np.ndarray,
    label_ids: Iterable[int] | None = None,
    hop_seconds: float = EVENT_HOP_SECONDS,
    duration: float | None = None,
    names: Sequence[str] | None = None,
    **segmenter_options: float | None,
) -> list[dict]:
    """All events of a whole `(n, C)` probability curve (already smoothed), sorted by start, then label.

    Args:
        label_ids: classes to segment (default all).
        duration: the input's length in seconds (the last event ends there at the latest).
        names: class names; when given, each event gets `"label"` (before `"label_id"`).
        segmenter_options: `threshold`, `offset_threshold`, `min_duration`, `min_gap`, `start_seconds` of
            [`EventSegmenter`].
    """
    curve = np.asarray(curve)
    ids = range(curve.shape[-1]) if label_ids is None else label_ids
    options = {key: value for key, value in segmenter_options.items() if value is not None}
    segmenter = EventSegmenter(ids, hop_seconds, **options)
    events = []
    for start in range(0, curve.shape[0], _CURVE_BLOCK):  # a block at a time: `push` copies its classes' columns
        events += segmenter.push(curve[start : start + _CURVE_BLOCK])
    events += segmenter.finish(duration)
    return name_events(events, names) if names is not None else EventSegmenter._sorted(events)


def name_events(events: Iterable[dict], names: Sequence[str]) -> list[dict]:
    """Events with their `label` in `names` (a label language), as `{label, label_id, start, end, score}`, sorted by
    start, then label."""
    named = [{"label": names[event["label_id"]], **{k: v for k, v in event.items() if k != "label"}} for event in events]
    return sorted(named, key=lambda event: (event["start"], event["label"]))


__all__ = [
    "EVENT_HOP_SECONDS",
    "EVENT_MIN_DURATION",
    "EVENT_MIN_GAP",
    "EVENT_OFFSET_RATIO",
    "EVENT_SMOOTHING_POINTS",
    "EVENT_THRESHOLD",
    "EVENT_WINDOW_SECONDS",
    "SPEECH_CLASS_NAMES",
    "EventSegmenter",
    "candidate_ids",
    "events_from_curve",
    "format_window_tags",
    "is_music_class",
    "is_speech_class",
    "label_ids",
    "music_class_ids",
    "name_events",
    "smooth_curve",
    "top_tags",
    "window_bounds",
    "windows_for_duration",
]
