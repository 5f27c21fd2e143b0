"""Output files for `whisper-at` results: txt, json, srt / vtt (captions, via pysubs2), tsv (one row per window and
tag) and events.tsv (one row per sound event).

Every file is rendered in memory first and then written with `file_utils.atomic_write` (a temporary file renamed
over the old one), so a failed run leaves no empty or half-written file and never replaces a valid previous one.
TSV fields go through the `csv` module (a tab or line break in a label or text is quoted, not a new field or row).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from whisper_at_hf_cli.whisper_at import CAPTION_MODES, OUTPUT_FORMATS  # offered by the parser before this loads

from .captions import CaptionStyle, Cue, SoundClasses, sdh_cues, tag_caption, tag_cues, transcript_cues
from .captions import transcript_segments as transcript_segments
from .file_utils import atomic_write

# the file name suffix of each format (`NAME.events.tsv`)
SUFFIXES = {"events": "events.tsv"}


def caption_cues(result: dict, captions: str = "sdh", classes: SoundClasses | None = None) -> list[Cue]:
    """The cues of `captions` mode: `"sdh"` (transcript and sound events; needs `classes` when the result has
    events), `"plain"` (transcript only) or `"tags"` (transcript segments plus one tag cue per window)."""
    if captions == "tags":
        return tag_cues(result)
    if captions == "plain":
        return transcript_cues(result)
    if captions != "sdh":
        raise ValueError(f"captions must be one of {', '.join(CAPTION_MODES)}, got {captions!r}.")
    if classes is None:
        if result.get("events"):
            raise ValueError("SDH captions of a result with events need the head's SoundClasses (which are Speech).")
        classes = SoundClasses(frozenset(), frozenset())
    return sdh_cues(result, classes, CaptionStyle())


def _subtitles(cues: list[Cue], output_format: str) -> str:
    import pysubs2

    subs = pysubs2.SSAFile()
    for cue in cues:
        start, end = pysubs2.make_time(s=cue.start), pysubs2.make_time(s=cue.end)
        subs.append(pysubs2.SSAEvent(start=start, end=max(end, start), text=cue.text.replace("\n", r"\N")))
    # keep_ssa_tags: the text is ours, not SubStation markup (no `{...}` tags to interpret, none to strip)
    return subs.to_string(output_format, keep_ssa_tags=True)


def render_txt(result: dict, **_: Any) -> str:
    return result.get("text", "").strip() + "\n"


def render_srt(result: dict, captions: str = "sdh", classes: SoundClasses | None = None) -> str:
    return _subtitles(caption_cues(result, captions, classes), "srt")


def render_vtt(result: dict, captions: str = "sdh", classes: SoundClasses | None = None) -> str:
    return _subtitles(caption_cues(result, captions, classes), "vtt")


def _tsv(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def render_tsv(result: dict, **_: Any) -> str:
    """`start end label score`, one row per window and tag (times to the ms, scores to 4 places)."""
    rows = [
        [f"{window['timestamp'][0]:.3f}", f"{window['timestamp'][1]:.3f}", tag["label"], f"{tag['score']:.4f}"]
        for window in result.get("audio_tags", [])
        for tag in window["tags"]
    ]
    return _tsv(["start", "end", "label", "score"], rows)


def render_events(result: dict, **_: Any) -> str:
    """`start end label score`, one row per sound event (Speech included), in the result's order (by start)."""
    rows = [
        [f"{float(event['start']):.3f}", f"{float(event['end']):.3f}", event["label"], f"{float(event['score']):.4f}"]
        for event in result.get("events") or []
    ]
    return _tsv(["start", "end", "label", "score"], rows)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def render_json(result: dict, **_: Any) -> str:
    return json.dumps(_jsonable(result), ensure_ascii=False, indent=1) + "\n"


RENDERERS: dict[str, Callable[..., str]] = {
    "txt": render_txt,
    "json": render_json,
    "srt": render_srt,
    "vtt": render_vtt,
    "tsv": render_tsv,
    "events": render_events,
}


def output_path(output_dir: str | Path, name: str, output_format: str) -> Path:
    """`OUT/NAME.json`, `OUT/NAME.events.tsv`, ..."""
    return Path(output_dir) / f"{name}.{SUFFIXES.get(output_format, output_format)}"


def write_result(
    result: dict,
    output_dir: str | Path,
    name: str,
    formats: list[str],
    captions: str = "sdh",
    classes: SoundClasses | None = None,
) -> list[Path]:
    """Writes `NAME.<suffix>` for each format into `output_dir` (created if needed); returns the paths. All are
    rendered before the first is written, each is written atomically; `captions` and `classes` as in
    [`caption_cues`]."""
    rendered = {fmt: RENDERERS[fmt](result, captions=captions, classes=classes) for fmt in formats}
    paths = []
    for output_format, text in rendered.items():
        path = output_path(output_dir, name, output_format)
        atomic_write(path, text)
        paths.append(path)
    return paths


__all__ = [
    "CAPTION_MODES",
    "OUTPUT_FORMATS",
    "RENDERERS",
    "caption_cues",
    "output_path",
    "tag_caption",
    "transcript_segments",
    "write_result",
]
