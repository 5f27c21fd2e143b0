"""Output files (issue 24 item 3, issue 21 item 2/3): SDH `.srt` / `.vtt` that pysubs2 and ffmpeg read, per-window
tags in JSON and TSV byte-identical to before, `NAME.events.tsv`, csv-escaped TSV fields, atomic writes."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess

import numpy as np
import pysubs2
import pytest

from whisper_at_hf import file_utils
from whisper_at_hf.captions import SoundClasses
from whisper_at_hf.writers import OUTPUT_FORMATS, caption_cues, write_result

AUDIOSET = SoundClasses.for_labels([f"LABEL_{i}" for i in range(527)])
# What the writers of before wrote for `tagged_result()` (per-window tags must not change).
TSV_BEFORE = (
    "start\tend\tlabel\tscore\n0.000\t4.000\tSpeech\t0.9123\n0.000\t4.000\tMusic\t0.4000\n4.000\t6.480\tMusic\t0.8765\n"
)
JSON_TAGS_BEFORE = (
    ' "audio_tags": [\n  {\n   "timestamp": [\n    0.0,\n    4.0\n   ],\n   "tags": [\n    {\n     "label": '
    '"Speech",\n     "score": 0.912339985370636\n    },\n    {\n     "label": "Music",\n     "score": 0.4\n    }\n   '
    ']\n  },\n  {\n   "timestamp": [\n    4.0,\n    6.48\n   ],\n   "tags": [\n    {\n     "label": "Music",\n     '
    '"score": 0.87654\n    }\n   ]\n  }\n ]'
)


def tagged_result(**extra) -> dict:
    return {
        "text": " Hi there. Music now.",
        "language": "en",
        "chunks": [{"text": " Hi there.", "timestamp": (0.0, 2.5)}, {"text": " Music now.", "timestamp": (2.5, None)}],
        "audio_tags": [
            {"timestamp": (0.0, 4.0), "tags": [{"label": "Speech", "score": np.float32(0.91234)},
                                               {"label": "Music", "score": 0.4}]},
            {"timestamp": (4.0, 6.48), "tags": [{"label": "Music", "score": 0.87654}]},
        ],  # fmt: skip
        **extra,
    }


EVENTS = [
    {"label": "Speech", "label_id": 0, "start": 0.0, "end": 2.5, "score": 0.97},
    {"label": "Music", "label_id": 137, "start": 2.0, "end": 6.48, "score": 0.81234},
    {"label": "Male speech, man speaking", "label_id": 1, "start": 0.2, "end": 2.4, "score": 0.7},
]


def test_per_window_tags_in_json_and_tsv_are_unchanged(tmp_path):
    tsv, js = write_result(tagged_result(), tmp_path, "a", ["tsv", "json"])
    assert tsv.read_bytes() == TSV_BEFORE.encode()
    assert JSON_TAGS_BEFORE in js.read_text()
    with_events = write_result(tagged_result(events=EVENTS), tmp_path, "b", ["tsv", "json"], classes=AUDIOSET)
    assert with_events[0].read_bytes() == TSV_BEFORE.encode()
    loaded = json.loads(with_events[1].read_text())
    assert loaded["events"][1] == {"label": "Music", "label_id": 137, "start": 2.0, "end": 6.48, "score": 0.81234}
    assert JSON_TAGS_BEFORE in with_events[1].read_text()


def test_events_tsv(tmp_path):
    (path,) = write_result(tagged_result(events=EVENTS), tmp_path, "talk", ["events"], classes=AUDIOSET)
    assert path.name == "talk.events.tsv"
    assert path.read_text().splitlines() == [
        "start\tend\tlabel\tscore", "0.000\t2.500\tSpeech\t0.9700", "2.000\t6.480\tMusic\t0.8123",
        "0.200\t2.400\tMale speech, man speaking\t0.7000",
    ]  # fmt: skip
    (empty,) = write_result(tagged_result(), tmp_path, "none", ["events"])
    assert empty.read_text() == "start\tend\tlabel\tscore\n"


def test_tsv_fields_with_tabs_and_line_breaks_stay_one_field(tmp_path):
    result = tagged_result(events=[{"label": "odd\tlabel\nname", "label_id": 300, "start": 0.0, "end": 1.0,
                                    "score": 0.5}])  # fmt: skip
    result["audio_tags"][0]["tags"][0]["label"] = 'tab\there "quoted"\nnext'
    tags, events = write_result(result, tmp_path, "x", ["tsv", "events"], classes=AUDIOSET)
    rows = list(csv.reader(io.StringIO(tags.read_text()), delimiter="\t"))
    assert len(rows) == 4 and all(len(row) == 4 for row in rows) and rows[1][2] == 'tab\there "quoted"\nnext'
    rows = list(csv.reader(io.StringIO(events.read_text()), delimiter="\t"))
    assert rows[1] == ["0.000", "1.000", "odd\tlabel\nname", "0.5000"]


def test_sdh_srt_and_vtt_parse_and_hold_no_speech_cue(tmp_path):
    result = tagged_result(events=EVENTS)
    srt, vtt = write_result(result, tmp_path, "talk", ["srt", "vtt"], classes=AUDIOSET)
    expected = [(0, 2500, "Hi there."), (2500, 6480, "♪ Music now. ♪")]  # the last chunk runs to the end
    for path in (srt, vtt):
        subs = pysubs2.load(str(path))
        assert [(event.start, event.end, event.plaintext) for event in subs] == expected
        assert "Speech" not in path.read_text() and "speaking" not in path.read_text()
    assert vtt.read_text().startswith("WEBVTT")
    assert "00:00:02,500 --> 00:00:06,480" in srt.read_text()


def test_caption_modes(tmp_path):
    result = tagged_result(events=EVENTS)
    plain = write_result(result, tmp_path, "plain", ["srt"], captions="plain")[0]
    assert [e.plaintext for e in pysubs2.load(str(plain))] == ["Hi there.", "Music now."]
    tags = write_result(result, tmp_path, "tags", ["srt"], captions="tags")[0]
    assert [(e.start, e.end, e.plaintext) for e in pysubs2.load(str(tags))] == [
        (0, 2500, "Hi there."), (0, 4000, "♪ Speech 0.91 · Music 0.40"), (2500, 6480, "Music now."),
        (4000, 6480, "♪ Music 0.88"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="captions must be one of sdh, plain, tags"):
        caption_cues(result, "fancy")
    with pytest.raises(ValueError, match="need the head's SoundClasses"):
        caption_cues(result, "sdh")


def test_blank_lines_in_text_do_not_inject_srt_cues(tmp_path):
    result = tagged_result()
    result["chunks"][0]["text"] = " one\n\n99\ninjected --> here\n\n"
    for captions in ("sdh", "plain", "tags"):
        (srt,) = write_result(result, tmp_path, captions, ["srt"], captions=captions)
        texts = [event.plaintext.replace("\n", " ") for event in pysubs2.load(str(srt))]
        assert texts.count("one 99 injected -> here") == 1 and len(texts) == (4 if captions == "tags" else 2)
        assert srt.read_text().count("-->") == len(texts)  # timing lines only


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_ffmpeg_reads_the_captions(tmp_path):
    """ffmpeg's own SRT / WebVTT demuxers read every cue, at our times (it writes them back out as SRT)."""
    words = " ".join(f"word{i}" for i in range(60))
    result = tagged_result(events=EVENTS + [{"label": "Bark", "label_id": 75, "start": 7.0, "end": 30.0,
                                              "score": 0.6}])  # fmt: skip
    result["chunks"][1]["timestamp"] = (2.5, 6.0)
    result["chunks"].append({"text": " " + words, "timestamp": (31.0, 45.0)})
    result["audio_tags"][-1]["timestamp"] = (4.0, 45.0)
    for path in write_result(result, tmp_path, "talk", ["srt", "vtt"], classes=AUDIOSET):
        completed = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(path), "-f", "srt", "-"], capture_output=True, text=True, timeout=60
        )
        assert completed.returncode == 0 and completed.stderr == "", completed.stderr
        ours, theirs = pysubs2.load(str(path)), pysubs2.SSAFile.from_string(completed.stdout)
        assert len(ours) >= 8 and len(theirs) == len(ours)
        for mine, read in zip(ours, theirs):
            assert abs(mine.start - read.start) <= 10 and abs(mine.end - read.end) <= 10
            assert read.plaintext == mine.plaintext


def test_a_failed_write_keeps_the_previous_files_and_leaves_nothing_else(tmp_path, monkeypatch):
    good = write_result(tagged_result(), tmp_path, "talk", list(OUTPUT_FORMATS))
    before = {path: path.read_bytes() for path in good}
    # a result that cannot be rendered (json cannot write a set): nothing is written, not even the formats before it
    broken = tagged_result(extra={1, 2})
    with pytest.raises(TypeError):
        write_result(broken, tmp_path, "talk", ["txt", "tsv", "json", "srt"])
    assert {path: path.read_bytes() for path in good} == before
    # a full disk while writing: the previous file stays, no temporary file is left behind
    def full_disk(_descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_utils.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_result(tagged_result(text=" changed"), tmp_path, "talk", ["txt"])
    assert {path: path.read_bytes() for path in good} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(path.name for path in good)
