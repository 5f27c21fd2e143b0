"""Subtitle cues (issue 24 item 3): SDH captions with sound cues, transcript cues within subtitle limits, and the
per-window tag cues of before. Synthetic result dicts, shaped as the pipeline returns them."""

from __future__ import annotations

import pytest

from whisper_at_hf.captions import (
    CaptionStyle,
    SoundClasses,
    Word,
    caption_label,
    sdh_cues,
    segment_words,
    split_words,
    tag_cues,
    transcript_cues,
    wrap,
)

STYLE = CaptionStyle()
AUDIOSET = SoundClasses.for_labels([f"LABEL_{i}" for i in range(527)])
SPEECH_FAMILY = [
    "Speech", "Male speech, man speaking", "Female speech, woman speaking", "Child speech, kid speaking",
    "Conversation", "Narration, monologue", "Babbling", "Speech synthesizer",
]  # fmt: skip
LONG = (
    "Audio tagging tells you what sounds are present, and speech recognition tells you what was said; doing both "
    "in one pass saves time, which matters when you caption hours of video for viewers who cannot hear the sound."
)


def result(chunks, events=(), duration=60.0, **extra) -> dict:
    return {
        "text": "".join(text for _, text in chunks),
        "chunks": [{"timestamp": span, "text": text} for span, text in chunks],
        "audio_tags": [{"timestamp": (0.0, duration), "tags": []}],
        "events": list(events),
        **extra,
    }


def event(label, label_id, start, end, score=0.8) -> dict:
    return {"label": label, "label_id": label_id, "start": start, "end": end, "score": score}


def assert_within_limits(cues) -> None:
    for cue in cues:
        lines = cue.text.split("\n")
        assert len(lines) <= STYLE.max_lines and all(0 < len(line) <= STYLE.max_chars for line in lines), cue
        assert 0 < cue.end - cue.start <= STYLE.max_seconds + 1e-9, cue


def test_wrap_balances_two_lines_and_refuses_what_does_not_fit():
    assert wrap("Short one.", STYLE) == ["Short one."]
    lines = wrap("The quick brown fox jumps over the lazy dog and runs away.", STYLE)
    assert len(lines) == 2 and abs(len(lines[0]) - len(lines[1])) <= 8 and all(len(line) <= 42 for line in lines)
    assert wrap(LONG, STYLE) is None
    assert wrap("x" * 43, STYLE) is None


def test_long_segment_without_word_times_splits_at_words_within_limits():
    cues = transcript_cues(result([((2.0, 32.0), " " + LONG)]))
    assert len(cues) >= 5
    assert_within_limits(cues)
    assert " ".join(cue.text.replace("\n", " ") for cue in cues) == LONG  # every word, once, in order
    assert cues[0].start == 2.0 and cues[-1].end == pytest.approx(32.0)
    assert all(a.end <= b.start + 1e-9 for a, b in zip(cues, cues[1:]))
    # a cue that has to end prefers a clause end in its second half
    assert any(cue.text.endswith((",", ";")) for cue in cues[:-1])


def test_a_segment_just_over_the_limit_splits_into_even_halves():
    """Not a full cue and a one-word tail (`... a lot of background` / `noise.`)."""
    text = " Whisper can recognize the speech when there is a lot of background noise."
    cues = transcript_cues(result([((8.5, 15.8), text)]))
    assert len(cues) == 2 and all(len(cue.text.split()) >= 5 for cue in cues), cues
    assert_within_limits(cues)


def test_long_segment_splits_at_the_words_own_times():
    words = LONG.split()
    times = [(1.0 + 0.5 * i, 1.0 + 0.5 * i + 0.3) for i in range(len(words))]
    segments = [{"text": " " + LONG, "timestamp": (1.0, times[-1][1]),
                 "words": [{"text": " " + w, "timestamp": t} for w, t in zip(words, times)]}]  # fmt: skip
    cues = transcript_cues(result([((1.0, times[-1][1]), " " + LONG)], segments=segments))
    assert_within_limits(cues)
    starts = {round(start, 6) for start, _ in times}
    ends = {round(end, 6) for _, end in times}
    assert all(round(cue.start, 6) in starts and round(cue.end, 6) in ends for cue in cues)
    assert segment_words(result([], segments=segments))[0][3].start == pytest.approx(times[3][0])


def test_slow_words_split_at_seven_seconds():
    words = [Word(3.0 * i, 3.0 * i + 1.0, text) for i, text in enumerate("one two three four five six".split())]
    assert [[word.text for word in piece] for piece in split_words(words, STYLE)] == [
        ["one", "two", "three"], ["four", "five", "six"]
    ]  # 0-7 s and 9-16 s


def test_blank_lines_in_the_transcript_do_not_make_cues():
    cues = transcript_cues(result([((0.0, 4.0), " first line\n\n2\n00:00:01,000 --> 00:00:02,000\nsecond")]))
    assert len(cues) == 1 and "\n\n" not in cues[0].text and "-->" not in cues[0].text


def test_music_under_speech_marks_the_speech_cue_instead_of_stacking():
    cues = sdh_cues(result([((2.0, 6.0), " Hello there."), ((12.0, 14.0), " Bye.")],
                           [event("Music", 137, 0.0, 9.0), event("Speech", 0, 2.0, 14.0, 0.99)]), AUDIOSET)  # fmt: skip
    texts = [(cue.start, cue.end, cue.text) for cue in cues]
    assert texts == [
        (0.0, 2.0, "[Music]"), (2.0, 6.0, "♪ Hello there. ♪"), (6.0, 9.0, "[Music]"), (12.0, 14.0, "Bye."),
    ]  # fmt: skip


def test_sound_under_speech_is_a_mark_and_a_cue_where_nobody_speaks():
    cues = sdh_cues(result([((5.0, 8.0), " Stop it.")], [event("Bark", 75, 4.5, 7.0)]), AUDIOSET)
    assert [cue.text for cue in cues] == ["[Bark] Stop it."]  # 0.5 s before the speech: no cue of its own
    cues = sdh_cues(result([((5.0, 8.0), " Stop it.")], [event("Bark", 75, 1.0, 7.0)]), AUDIOSET)
    assert [(cue.start, cue.end, cue.text) for cue in cues] == [(1.0, 5.0, "[Bark]"), (5.0, 8.0, "[Bark] Stop it.")]


@pytest.mark.parametrize("label_id", range(8))
def test_speech_and_its_children_are_never_sound_cues(label_id):
    cues = sdh_cues(result([], [event(SPEECH_FAMILY[label_id], label_id, 0.0, 5.0, 0.99)]), AUDIOSET)
    assert cues == []
    named = SoundClasses.for_labels(["Beep", *SPEECH_FAMILY])  # a custom head: by name
    assert sdh_cues(result([], [event(SPEECH_FAMILY[label_id], label_id + 1, 0.0, 5.0)]), named) == []
    assert [c.text for c in sdh_cues(result([], [event("Beep", 0, 0.0, 5.0)]), named)] == ["[Beep]"]


def test_overlapping_sounds_share_cues_and_long_sounds_are_cut_at_seven_seconds():
    cues = sdh_cues(result([], [event("Music", 137, 0.0, 20.0, 0.9), event("Bark", 75, 5.0, 8.0, 0.6)]), AUDIOSET)
    assert_within_limits(cues)
    assert [(c.start, c.end, c.text) for c in cues] == [
        (0.0, 5.0, "[Music]"), (5.0, 8.0, "[Music] [Bark]"), (8.0, 14.0, "[Music]"), (14.0, 20.0, "[Music]"),
    ]  # fmt: skip


def test_sound_cues_take_the_label_language_and_the_first_synonym():
    cues = sdh_cues(result([], [event("Hupe, Autohupe", 300, 0.0, 2.0)]), AUDIOSET)
    assert [cue.text for cue in cues] == ["[Hupe]"]
    assert caption_label("Vehicle horn, car horn, honking") == "[Vehicle horn]"


def test_marks_that_overflow_a_cue_split_it():
    text = " The quick brown fox jumps over the lazy dog and keeps on running far away."
    marks = [event("Vehicle horn, car horn, honking", 300, 0.0, 6.0, 0.9), event("Bark", 75, 0.0, 6.0, 0.7),
             event("Music", 137, 0.0, 6.0, 0.6)]  # fmt: skip
    cues = sdh_cues(result([((0.0, 6.0), text)], marks), AUDIOSET)
    assert_within_limits(cues)
    assert len(cues) >= 2 and all(cue.text.startswith("[Vehicle horn] [Bark] ♪") for cue in cues)


def test_tag_cues_are_the_per_window_cues_of_before():
    tagged = result([((0.5, None), " hi there")], duration=3.2)
    tagged["audio_tags"] = [{"timestamp": (0.0, 3.2), "tags": [{"label": "Speech", "score": 0.9}]}]
    assert [tuple(cue) for cue in tag_cues(tagged)] == [(0.0, 3.2, "♪ Speech 0.90"), (0.5, 3.2, "hi there")]


def test_sound_classes_of_audioset_and_of_custom_heads():
    assert AUDIOSET.is_speech(0) and AUDIOSET.is_speech(7) and not AUDIOSET.is_speech(8)
    assert AUDIOSET.is_music(137) and AUDIOSET.is_music(282) and not AUDIOSET.is_music(283)
    custom = SoundClasses.for_labels(["Speech", "Music", "Beep", "Noise", "Conversation", "Happy music"])
    assert custom.speech_ids == {0, 4} and custom.music_ids == {1, 5}
