"""Output files for `whisper-at` results: txt, json, srt, vtt (transcript + tag cues) and tsv (one row per tag)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

OUTPUT_FORMATS = ("txt", "json", "srt", "vtt", "tsv")


def _timestamp(seconds: float, decimal: str) -> str:
    milliseconds = int(round(max(seconds, 0.0) * 1000))
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    secs, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{milliseconds:03d}"


def tag_caption(tags: list[dict]) -> str:
    """`[{"label": "Speech", "score": 0.91}, ...]` -> `"♪ Speech 0.91 · Music 0.40"` (or `"♪ (no tags)"`)."""
    if not tags:
        return "♪ (no tags)"
    return "♪ " + " · ".join(f"{tag['label']} {tag['score']:.2f}" for tag in tags)


def transcript_segments(result: dict) -> list[tuple[float, float, str]]:
    """`(start, end, text)` per transcript chunk; one segment over the whole input when there are no chunks."""
    duration = result["audio_tags"][-1]["timestamp"][1] if result.get("audio_tags") else 0.0
    chunks = result.get("chunks")
    if not chunks:
        text = result.get("text", "").strip()
        return [(0.0, duration, text)] if text else []
    segments = []
    for chunk in chunks:
        start, end = chunk["timestamp"]
        start = 0.0 if start is None else float(start)
        end = duration if end is None else float(end)
        segments.append((start, max(end, start), chunk["text"].strip()))
    return segments


def cues(result: dict) -> list[tuple[float, float, str]]:
    """Transcript cues and one tag cue per window, in time order (players show overlapping cues together)."""
    items = [(start, end, text) for start, end, text in transcript_segments(result) if text]
    items += [(w["timestamp"][0], w["timestamp"][1], tag_caption(w["tags"])) for w in result.get("audio_tags", [])]
    return sorted(items, key=lambda item: (item[0], item[1]))


def write_txt(result: dict, handle) -> None:
    handle.write(result.get("text", "").strip() + "\n")


def write_srt(result: dict, handle) -> None:
    for index, (start, end, text) in enumerate(cues(result), start=1):
        handle.write(f"{index}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text}\n\n")


def write_vtt(result: dict, handle) -> None:
    handle.write("WEBVTT\n\n")
    for start, end, text in cues(result):
        handle.write(f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{text}\n\n")


def write_tsv(result: dict, handle) -> None:
    handle.write("start\tend\tlabel\tscore\n")
    for window in result.get("audio_tags", []):
        start, end = window["timestamp"]
        for tag in window["tags"]:
            handle.write(f"{start:.3f}\t{end:.3f}\t{tag['label']}\t{tag['score']:.4f}\n")


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


def write_json(result: dict, handle) -> None:
    json.dump(_jsonable(result), handle, ensure_ascii=False, indent=1)
    handle.write("\n")


WRITERS: dict[str, Callable[[dict, Any], None]] = {
    "txt": write_txt,
    "json": write_json,
    "srt": write_srt,
    "vtt": write_vtt,
    "tsv": write_tsv,
}


def write_result(result: dict, output_dir: str | Path, name: str, formats: list[str]) -> list[Path]:
    """Writes `NAME.<format>` for each format into `output_dir`; returns the paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for output_format in formats:
        path = output_dir / f"{name}.{output_format}"
        with open(path, "w", encoding="utf-8") as handle:
            WRITERS[output_format](result, handle)
        paths.append(path)
    return paths


__all__ = ["OUTPUT_FORMATS", "WRITERS", "cues", "tag_caption", "transcript_segments", "write_result"]
