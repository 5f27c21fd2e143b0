"""Subtitle cues from a `whisper-at` result: SDH captions (the transcript plus `[Music]`, `[Bark]` sound cues),
plain transcript cues, or the per-window tag cues.

Conventions (`CaptionStyle`): at most 2 lines of 42 characters and 7 s per cue. Transcript segments longer than that
are halved at word boundaries until every part fits (preferring a clause end near the middle), at the words' own
times when the result has them (`segments[].words`), else at times interpolated by character position. Sound events
(`result["events"]`) become cues of their own only where nobody speaks; a sound under speech marks the speech cue
instead (`♪ ... ♪` for music, `[Bark] ...` for other sounds). Speech and its AudioSet children are never sound cues.

This module turns a result dict into `Cue`s only; `writers` writes them with pysubs2.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .tags import is_speech_class, music_class_ids

# A fresh 527-class head's generic names (`LABEL_i`) tell nothing: then AudioSet's order decides (Speech and its
# children are its first 8 classes, the Music block 137-282).
AUDIOSET_NUM_LABELS = 527
AUDIOSET_SPEECH_IDS = range(0, 8)
AUDIOSET_MUSIC_IDS = range(137, 283)
MUSIC_MARK = "♪"
MIN_SPLIT_WORDS = 3  # a speech cue is halved for its marks only while each half keeps this many words
_CLAUSE_END = re.compile(r"[.?!;:,]$")


class Word(NamedTuple):
    start: float
    end: float
    text: str


class Cue(NamedTuple):
    """One subtitle: `start` / `end` in seconds, `text` its lines joined by `"\\n"`."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class CaptionStyle:
    """Subtitle limits: characters per line, lines and seconds per cue; sound labels marked on one speech cue
    (besides `♪` for music) and named in one sound cue; a sound cue shorter than `min_sound_seconds` is left out
    where the sound is already marked on a speech cue."""

    max_chars: int = 42
    max_lines: int = 2
    max_seconds: float = 7.0
    max_marks: int = 2
    max_sounds: int = 2
    min_sound_seconds: float = 1.0


@dataclass(frozen=True)
class SoundClasses:
    """Which class ids are Speech (or one of its AudioSet children: never a sound cue) and which are music (marked
    `♪` on a speech cue)."""

    speech_ids: frozenset[int]
    music_ids: frozenset[int]

    def is_speech(self, label_id: int) -> bool:
        return label_id in self.speech_ids

    def is_music(self, label_id: int) -> bool:
        return label_id in self.music_ids

    @classmethod
    def for_labels(cls, english_names: Sequence[str]) -> "SoundClasses":
        """By the head's English names (`tags.is_speech_class`, `tags.music_class_ids`); a 527-class head whose names
        name neither (a fresh head's `LABEL_i`) by AudioSet's order."""
        names = list(english_names)
        speech = frozenset(index for index in range(len(names)) if is_speech_class(index, names))
        music = music_class_ids(names)
        if not speech and not music and len(names) == AUDIOSET_NUM_LABELS:
            speech, music = frozenset(AUDIOSET_SPEECH_IDS), frozenset(AUDIOSET_MUSIC_IDS)
        return cls(speech, frozenset(music))


def clean_text(text: str) -> str:
    """One line of words: line breaks and blank lines (which would start a new SRT cue) and runs of spaces become
    one space; `-->` (a cue timing line in SRT / WebVTT) becomes `->`."""
    return " ".join(text.split()).replace("-->", "->")


def caption_label(label: str) -> str:
    """`"Vehicle horn, car horn, honking"` -> `"[Vehicle horn]"`: AudioSet names list synonyms after commas."""
    return f"[{clean_text(label).split(', ')[0]}]"


def tag_caption(tags: list[dict]) -> str:
    """`[{"label": "Speech", "score": 0.91}, ...]` -> `"♪ Speech 0.91 · Music 0.40"` (or `"♪ (no tags)"`)."""
    if not tags:
        return "♪ (no tags)"
    return "♪ " + " · ".join(f"{tag['label']} {tag['score']:.2f}" for tag in tags)


# ---- transcript ------------------------------------------------------------------------------------------------------
def _duration(result: dict) -> float:
    return float(result["audio_tags"][-1]["timestamp"][1]) if result.get("audio_tags") else 0.0


def _span(timestamp: Sequence[float | None], previous_end: float, duration: float) -> tuple[float, float]:
    start = previous_end if timestamp[0] is None else float(timestamp[0])
    end = duration if timestamp[1] is None else float(timestamp[1])
    return start, max(end, start)


def transcript_segments(result: dict) -> list[tuple[float, float, str]]:
    """`(start, end, text)` per transcript segment (`segments` when the result has word segments, else `chunks`);
    one segment over the whole input when there are none. An open end (`None`) is the end of the input."""
    duration = _duration(result)
    chunks = result.get("segments") or result.get("chunks")
    if not chunks:
        text = clean_text(result.get("text", ""))
        return [(0.0, duration, text)] if text else []
    segments, end = [], 0.0
    for chunk in chunks:
        start, end = _span(chunk["timestamp"], end, duration)
        segments.append((start, end, clean_text(chunk["text"])))
    return segments


def _interpolated_words(start: float, end: float, text: str) -> list[Word]:
    """The words of `text`, sharing `[start, end]` in proportion to their characters (each with its space)."""
    words = text.split()
    total = sum(len(word) + 1 for word in words)
    out, position = [], 0
    for word in words:
        begin = start + (end - start) * position / total
        position += len(word) + 1
        out.append(Word(begin, start + (end - start) * position / total, word))
    return out


def segment_words(result: dict) -> list[list[Word]]:
    """The words of each transcript segment, at their own times where the result has them (`segments[].words`)."""
    duration, out = _duration(result), []
    spans = transcript_segments(result)
    for (start, end, text), segment in zip(spans, result.get("segments") or [None] * len(spans)):
        words, previous = [], start
        for word in (segment or {}).get("words") or []:
            word_start, word_end = _span(word["timestamp"], previous, duration)
            words += [Word(word_start, word_end, piece) for piece in clean_text(word["text"]).split()]
            previous = word_end
        if not words or " ".join(word.text for word in words) != text:  # no word times, or they lost characters
            words = _interpolated_words(start, end, text)
        if words:
            out.append(words)
    return out


def wrap(text: str, style: CaptionStyle) -> list[str] | None:
    """`text` in at most `style.max_lines` lines of at most `style.max_chars`, as even in length as possible
    (broken at spaces); `None` when it does not fit."""
    words = text.split()
    if not words or max(len(word) for word in words) > style.max_chars:
        return None
    if len(text) <= style.max_chars:
        return [text]
    narrowest = max(max(len(word) for word in words), math.ceil(len(text) / style.max_lines))
    for width in range(narrowest, style.max_chars + 1):
        lines = [words[0]]
        for word in words[1:]:
            if len(lines[-1]) + 1 + len(word) <= width:
                lines[-1] += " " + word
            else:
                lines.append(word)
        if len(lines) <= style.max_lines:
            return lines
    return None


def _fits(words: Sequence[Word], style: CaptionStyle) -> bool:
    text = " ".join(word.text for word in words)
    return wrap(text, style) is not None and words[-1].end - words[0].start <= style.max_seconds


def split_words(words: Sequence[Word], style: CaptionStyle) -> list[list[Word]]:
    """`words` in consecutive runs that each fit one cue, as even as the words allow: a run that does not fit is
    halved (by characters; after a clause end in its middle half, if it has one) until every part fits. A word that
    fits nowhere (too long, too slow) is a cue by itself."""
    if len(words) <= 1 or _fits(words, style):
        return [list(words)] if words else []
    cut = _best_cut(words)
    return split_words(words[:cut], style) + split_words(words[cut:], style)


def _best_cut(words: Sequence[Word]) -> int:
    """Where to halve `words` (`words[:cut]`, `words[cut:]`, both non-empty): the clause end nearest the middle of
    the text among those in its middle half, else the word boundary nearest the middle."""
    ends = [len(" ".join(word.text for word in words[:cut])) for cut in range(1, len(words))]
    middle = len(" ".join(word.text for word in words)) / 2
    cuts = range(1, len(words))
    clause = [
        cut
        for cut, end in zip(cuts, ends)
        if abs(end - middle) <= middle / 2 and _CLAUSE_END.search(words[cut - 1].text)
    ]
    candidates = clause or list(cuts)
    return min(candidates, key=lambda cut: abs(ends[cut - 1] - middle))


def _cue(start: float, end: float, text: str, style: CaptionStyle) -> Cue:
    lines = wrap(text, style) or [text]
    return Cue(start, min(end, start + style.max_seconds), "\n".join(lines))


def transcript_cues(result: dict, style: CaptionStyle = CaptionStyle()) -> list[Cue]:
    """The transcript alone, split into cues that follow `style`."""
    return [
        _cue(piece[0].start, piece[-1].end, " ".join(word.text for word in piece), style)
        for words in segment_words(result)
        for piece in split_words(words, style)
    ]


# ---- SDH -------------------------------------------------------------------------------------------------------------
def _overlap(event: dict, start: float, end: float) -> float:
    return min(end, float(event["end"])) - max(start, float(event["start"]))


def _marked_text(text: str, events: Sequence[dict], classes: SoundClasses) -> str:
    """`text` with the sounds under it: `[Bark] [Applause] ♪ text ♪` (labels by score, music as `♪`)."""
    by_score = sorted(events, key=lambda event: -float(event["score"]))
    labels = dict.fromkeys(caption_label(e["label"]) for e in by_score if not classes.is_music(e["label_id"]))
    if any(classes.is_music(event["label_id"]) for event in events):
        text = f"{MUSIC_MARK} {text} {MUSIC_MARK}"
    return " ".join([*labels, text])


def _strongest_marks(under: Sequence[int], sounds: Sequence[dict], classes: SoundClasses, count: int) -> list[int]:
    """Of the sounds `under` a cue (indices, strongest first): every music one (they are one `♪`) and those of the
    `count` strongest other labels."""
    labels: list[str] = []
    kept = []
    for index in under:
        if not classes.is_music(sounds[index]["label_id"]):
            label = caption_label(sounds[index]["label"])
            if label not in labels:
                if len(labels) == count:
                    continue
                labels.append(label)
        kept.append(index)
    return kept


def _speech_cues(
    words: Sequence[Word], sounds: Sequence[dict], classes: SoundClasses, style: CaptionStyle, marked: set[int]
) -> list[Cue]:
    """The cue(s) of one run of `words`, marked with the sounds under it (overlapping it by at least half of the
    shorter of the two; at most `style.max_marks` labels besides `♪`). A run whose marks make it too long is halved
    (at a word) while the halves keep `MIN_SPLIT_WORDS` words; then the weakest marks are left out. Adds the marked
    sounds' indices to `marked`."""
    start, end = words[0].start, min(words[-1].end, words[0].start + style.max_seconds)

    def under_cue(event: dict) -> bool:
        shorter = min(end - start, float(event["end"]) - float(event["start"]))
        return _overlap(event, start, end) >= max(shorter / 2, 1e-6)

    under = sorted((i for i, event in enumerate(sounds) if under_cue(event)), key=lambda i: -float(sounds[i]["score"]))
    under = _strongest_marks(under, sounds, classes, style.max_marks)
    text = " ".join(word.text for word in words)
    while True:
        marked_text = _marked_text(text, [sounds[i] for i in under], classes)
        if wrap(marked_text, style) is not None or not under:
            break
        if len(words) >= 2 * MIN_SPLIT_WORDS:
            halves = (words[: len(words) // 2], words[len(words) // 2 :])
            return [cue for half in halves for cue in _speech_cues(half, sounds, classes, style, marked)]
        under.pop()
    marked.update(under)
    return [_cue(start, end, marked_text, style)]


def _free_parts(event: dict, speech: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The parts of `event` where no speech cue is shown (`speech` sorted by start)."""
    parts, position, end = [], float(event["start"]), float(event["end"])
    for speech_start, speech_end in speech:
        if speech_end <= position or speech_start >= end:
            continue
        if speech_start > position:
            parts.append((position, speech_start))
        position = max(position, speech_end)
    if position < end:
        parts.append((position, end))
    return parts


def _sound_text(events: Iterable[dict], style: CaptionStyle) -> str:
    """`[Music] [Bark]` for the sounds of one cue: the `style.max_sounds` strongest labels, fewer when they do not
    fit."""
    labels = list(dict.fromkeys(caption_label(e["label"]) for e in sorted(events, key=lambda e: -float(e["score"]))))
    labels = labels[: style.max_sounds]
    while len(labels) > 1 and wrap(" ".join(labels), style) is None:
        labels.pop()
    return " ".join(labels)


def _sound_cues(
    sounds: Sequence[dict], speech: Sequence[tuple[float, float]], marked: set[int], style: CaptionStyle
) -> list[Cue]:
    """Cues for the sounds where nobody speaks: one per stretch with the same sounds, cut into pieces of at most
    `style.max_seconds`. A stretch shorter than `style.min_sound_seconds` of a sound already marked on a speech cue is
    left out."""
    parts = [
        (part, index)
        for index, event in enumerate(sounds)
        for part in _free_parts(event, speech)
        if index not in marked or part[1] - part[0] >= style.min_sound_seconds
    ]
    bounds = sorted({time for (start, end), _ in parts for time in (start, end)})
    stretches: list[list] = []  # [start, end, text]
    for start, end in zip(bounds, bounds[1:]):
        active = [sounds[index] for (a, b), index in parts if a < end and b > start]
        if not active:
            continue
        text = _sound_text(active, style)
        if stretches and stretches[-1][1] == start and stretches[-1][2] == text:
            stretches[-1][1] = end
        else:
            stretches.append([start, end, text])
    cues = []
    for start, end, text in stretches:
        pieces = max(1, math.ceil((end - start) / style.max_seconds - 1e-9))
        step = (end - start) / pieces
        cues += [_cue(start + k * step, start + (k + 1) * step, text, style) for k in range(pieces)]
    return cues


def sdh_cues(result: dict, classes: SoundClasses, style: CaptionStyle = CaptionStyle()) -> list[Cue]:
    """Captions for the deaf and hard of hearing: the transcript's cues, marked with the sounds under them, and
    sound cues (`[Music]`, `[Bark]`) for `result["events"]` where nobody speaks; never a Speech-class sound cue."""
    sounds = [event for event in result.get("events") or [] if not classes.is_speech(int(event["label_id"]))]
    marked: set[int] = set()
    speech = [
        cue
        for words in segment_words(result)
        for piece in split_words(words, style)
        for cue in _speech_cues(piece, sounds, classes, style, marked)
    ]
    spans = sorted((cue.start, cue.end) for cue in speech)
    return sorted(speech + _sound_cues(sounds, spans, marked, style), key=lambda cue: (cue.start, cue.end))


def tag_cues(result: dict) -> list[Cue]:
    """The debugging view: each transcript segment as one cue and one cue per tag window
    (`♪ Speech 0.91 · Music 0.40`), in time order (players show overlapping cues together)."""
    items = [Cue(start, end, text) for start, end, text in transcript_segments(result) if text]
    items += [Cue(w["timestamp"][0], w["timestamp"][1], tag_caption(w["tags"])) for w in result.get("audio_tags", [])]
    return sorted(items, key=lambda cue: (cue.start, cue.end))


__all__ = [
    "CaptionStyle",
    "Cue",
    "SoundClasses",
    "Word",
    "caption_label",
    "clean_text",
    "sdh_cues",
    "segment_words",
    "split_words",
    "tag_caption",
    "tag_cues",
    "transcript_cues",
    "transcript_segments",
    "wrap",
]
