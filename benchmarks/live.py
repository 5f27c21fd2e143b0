"""Live captions at real-time pace: word lag, tag latency, compute per step, live WER against offline, and a long
stream's lag and memory.

Each clip is fed to `live_updates(..., coalesce=True)` by a thread that releases its audio at wall-clock pace (0.1 s
chunks), as a microphone would; the update times are wall times from the stream's start, so audio time `t` arrives at
wall time `t`.

* word lag: wall time when a word is committed minus the word's end in the audio (median, 95th percentile);
* tag latency: for each known onset of a new sound block in `long_mix.wav` (every 10 s), wall time of the first
  update whose tags window holds at least 0.4 s of audio after the onset, minus the onset (the head here is random,
  as no trained head can be downloaded: this measures when the new audio reaches the tags, not what they say);
* compute per step: the step's wall time / `--step` (above 1 the stream skips steps: lag stays bounded);
* WER: live committed text and the offline transcript (`pipeline("whisper-at")`, same model, greedy) each against
  the clips' known text (../shared/README.md), and their difference;
* `--long-minutes N`: `long_mix.wav` repeated to N minutes at real-time pace (for the first of `--models`, or
  `--long-models`): word lag and peak RSS per minute, minutes counted after warm-up (the first 30 s of audio, once
  the buffer is full), and last minute / first minute (flat memory: within 10 %; bounded lag: not growing).

Ends with markdown tables of all figures (for benchmarks/README.md).

    python benchmarks/live.py                                    # tiny.en and base, 4 speech clips + long_mix
    python benchmarks/live.py --long-minutes 10                  # ... and 10 minutes of tiny.en: the issue's figures
    python benchmarks/live.py --models ../shared/models/whisper-tiny.en --clips speech_en.wav --threads 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import DEFAULT_MODELS, SAMPLING_RATE, load_clip, machine

from whisper_at_hf.option_rules import LIVE_STEP_SECONDS

SPEECH_EN = "The quick brown fox jumps over the lazy dog. Whisper can recognize speech even with a lot of background noise."
LONG_MIX_END = (
    "Audio tagging tells you what sounds are present. Speech recognition tells you what was said. "
    "Doing both in one pass saves time."
)
SPEECH_DE = "Guten Morgen. Wie geht es dir heute? Das Wetter ist wirklich schön."
TRUTH = {
    "speech_en.wav": SPEECH_EN,
    "speech_en_music.wav": SPEECH_EN,
    "speech_en_pinknoise.wav": SPEECH_EN,
    "long_mix.wav": " ".join([SPEECH_EN, SPEECH_DE, SPEECH_EN, SPEECH_EN, LONG_MIX_END]),
}
CHUNK_S = 0.1
WARM_UP_S = 30.0  # the long stream's minutes are counted from here: the first full 30 s buffer


def paced(audio: np.ndarray, started: float):
    """`audio` in `CHUNK_S` pieces, each released when the wall clock reaches its end (a live source)."""
    step = int(CHUNK_S * SAMPLING_RATE)
    for begin in range(0, audio.size, step):
        due = started + (begin + step) / SAMPLING_RATE
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield audio[begin : begin + step]


def run_stream(pipe, audio: np.ndarray, step_s: float, sample_rss: bool = False) -> list[dict]:
    """The updates of one real-time stream, each with `wall` (seconds since the start) and `rss` (bytes)."""
    import psutil

    from whisper_at_hf.live import live_updates

    process = psutil.Process()
    started = time.monotonic()
    updates = []
    for update in live_updates(paced(audio, started), pipe, coalesce=True, step_s=step_s):
        update["wall"] = time.monotonic() - started
        if sample_rss:
            update["rss"] = process.memory_info().rss
        updates.append(update)
    return updates


def word_lags(updates: list[dict]) -> list[float]:
    return [update["wall"] - word["end"] for update in updates for word in update["new_words"]]


def tag_latencies(updates: list[dict], onsets: list[float]) -> list[float]:
    latencies = []
    for onset in onsets:
        shown = next((u["wall"] for u in updates if u["tags_window"] and u["tags_window"][1] >= onset + 0.4), None)
        if shown is not None:
            latencies.append(shown - onset)
    return latencies


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def at_model_dir(whisper_dir: str, folder: Path) -> str:
    """`whisper_dir` with a seeded random Whisper-AT head, saved with its processor (a checkpoint the CLI loads)."""
    from transformers import WhisperProcessor

    from whisper_at_hf import WhisperForAudioTaggingAndASR

    torch.manual_seed(0)
    WhisperForAudioTaggingAndASR.from_whisper(whisper_dir).save_pretrained(folder)
    WhisperProcessor.from_pretrained(whisper_dir).save_pretrained(folder)
    return str(folder)


def measure_clips(pipe, clips: list[str], step_s: float) -> dict:
    """Streams each clip at real-time pace; prints per clip, returns the figures for the summary."""
    import jiwer

    from whisper_at_hf.live import normalize_for_wer

    lags, tag_lat, loads, rows = [], [], [], []
    print(f"  {'clip':<26} {'offline WER':>11} {'live WER':>9} {'diff':>6} {'lag p50':>8} {'lag p95':>8} {'steps':>5}")
    for clip in clips:
        audio = load_clip(clip)
        offline = pipe(audio.copy(), num_beams=1, return_timestamps=True)["text"]
        updates = run_stream(pipe, audio, step_s)
        live = " ".join(word["word"] for update in updates for word in update["new_words"])
        truth = normalize_for_wer(TRUTH[clip])
        offline_wer = jiwer.wer(truth, normalize_for_wer(offline))
        live_wer = jiwer.wer(truth, normalize_for_wer(live))
        clip_lags = word_lags(updates)
        lags += clip_lags
        loads += [u["compute_s"] / step_s for u in updates[:-1]]
        if clip == "long_mix.wav":
            tag_lat += tag_latencies(updates, [10.0 * block for block in range(1, 9)])
        rows.append((clip, offline_wer, live_wer, percentile(clip_lags, 50), percentile(clip_lags, 95)))
        print(
            f"  {clip:<26} {offline_wer:>11.3f} {live_wer:>9.3f} {100 * (live_wer - offline_wer):>+6.1f} "
            f"{percentile(clip_lags, 50):>7.2f}s {percentile(clip_lags, 95):>7.2f}s {len(updates):>5}"
        )
        print(f"      offline: {offline.strip()[:150]}")
        print(f"      live:    {live.strip()[:150]}")
    figures = {
        "rows": rows,
        "lag": (percentile(lags, 50), percentile(lags, 95), len(lags)),
        "tag": (percentile(tag_lat, 50), max(tag_lat, default=float("nan"))),
        "load": (percentile(loads, 50), percentile(loads, 95)),
    }
    print(f"  word lag: median {figures['lag'][0]:.2f} s, 95th percentile {figures['lag'][1]:.2f} s ({len(lags)} words)")
    print(f"  tag latency (long_mix onsets): median {figures['tag'][0]:.2f} s, max {figures['tag'][1]:.2f} s")
    print(f"  compute per step / step: median {figures['load'][0]:.2f}, 95th percentile {figures['load'][1]:.2f}")
    return figures


def measure_long(pipe, minutes: float, step_s: float) -> list[tuple]:
    """`long_mix.wav` repeated to `minutes` at real-time pace. The first minute measured is the one after warm-up:
    audio 30–90 s, once the buffer first held 30 s (model loaded, first full-buffer pass and decoder caches made),
    so growth is not confused with start-up. Returns `(minute, lag p50, lag p95, peak RSS MB, skipped)` rows."""
    clip = load_clip("long_mix.wav")
    repeats = int(np.ceil(minutes * 60 * SAMPLING_RATE / clip.size))
    audio = np.tile(clip, repeats)[: int(minutes * 60 * SAMPLING_RATE)]
    updates = run_stream(pipe, audio, step_s, sample_rss=True)
    print(f"  {minutes:g} min stream: {len(updates)} updates; minutes counted from the end of warm-up (30 s of audio)")
    print(f"  {'minute':>6} {'audio':>11} {'lag p50':>8} {'lag p95':>8} {'peak RSS':>9} {'skipped':>7}")
    rows = []
    for minute in range(int((minutes * 60 - WARM_UP_S) // 60)):
        begin = WARM_UP_S + 60 * minute
        inside = [u for u in updates if begin <= u["audio_time"] < begin + 60]
        lags = word_lags(inside)
        rss = max((u["rss"] for u in inside), default=0) / 2**20
        skipped = sum(u["skipped_steps"] for u in inside)
        rows.append((minute + 1, percentile(lags, 50), percentile(lags, 95), rss, skipped))
        print(f"  {minute + 1:>6} {begin:>4.0f}–{begin + 60:<4.0f}s {rows[-1][1]:>7.2f}s {rows[-1][2]:>7.2f}s "
              f"{rss:>7.0f}MB {skipped:>7}")
    if len(rows) >= 2:
        print(f"  last minute / first minute: peak RSS {rows[-1][3] / rows[0][3]:.3f}, lag p50 "
              f"{rows[-1][1] / rows[0][1]:.3f}, lag p95 {rows[-1][2] / rows[0][2]:.3f}")
    return rows


def print_summary(results: dict, step_s: float, threads: int) -> None:
    """Markdown tables for benchmarks/README.md."""
    print(f"\n## Summary (markdown; step {step_s:g} s, {threads} threads, random head)\n")
    print("| model | word lag p50 | p95 | tag latency p50 / max | compute per step / step p50 / p95 |")
    print("|---|---|---|---|---|")
    for model, figures in results.items():
        if "clips" in figures:
            lag, tag, load = figures["clips"]["lag"], figures["clips"]["tag"], figures["clips"]["load"]
            print(f"| {model} | {lag[0]:.2f} s | {lag[1]:.2f} s | {tag[0]:.2f} s / {tag[1]:.2f} s "
                  f"| {load[0]:.2f} / {load[1]:.2f} |")
    print("\n| model | clip | offline WER | live WER | live − offline | word lag p50 / p95 |")
    print("|---|---|---|---|---|---|")
    for model, figures in results.items():
        for clip, offline, live, p50, p95 in figures.get("clips", {}).get("rows", []):
            print(f"| {model} | {clip} | {offline:.3f} | {live:.3f} | {100 * (live - offline):+.1f} "
                  f"| {p50:.2f} s / {p95:.2f} s |")
    for model, figures in results.items():
        rows = figures.get("long")
        if not rows:
            continue
        print(f"\n{model}, long stream, minutes after warm-up (the first full 30 s buffer):\n")
        print("| minute | word lag p50 | p95 | peak RSS | steps skipped |")
        print("|---|---|---|---|---|")
        for minute, p50, p95, rss, skipped in rows:
            print(f"| {minute} | {p50:.2f} s | {p95:.2f} s | {rss:.0f} MB | {skipped} |")
        if len(rows) >= 2:
            print(f"\nLast minute / first minute: peak RSS {rows[-1][3] / rows[0][3]:.3f}, word lag p50 "
                  f"{rows[-1][1] / rows[0][1]:.3f}, p95 {rows[-1][2] / rows[0][2]:.3f}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--clips", nargs="*", default=[*TRUTH], help="clips to measure (none: only --long-minutes)")
    parser.add_argument("--step", type=float, default=LIVE_STEP_SECONDS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--long-minutes", type=float, default=0.0, help="also a long stream of this many minutes")
    parser.add_argument("--long-models", nargs="*", default=None,
                        help="models for the long stream (default: the first of --models, tiny.en)")
    args = parser.parse_args()
    if args.long_minutes and args.long_minutes * 60 < WARM_UP_S + 120:
        parser.error(f"--long-minutes must cover warm-up ({WARM_UP_S:g} s) and two minutes after it")
    long_models = args.models[:1] if args.long_models is None else args.long_models
    torch.set_num_threads(args.threads)
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    import whisper_at_hf  # noqa: F401  (registers the "whisper-at" task)

    hf_logging.set_verbosity_error()
    print(machine())
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    results: dict[str, dict] = {}
    for whisper_dir in dict.fromkeys([*args.models, *(long_models if args.long_minutes else [])]):
        name = Path(whisper_dir).name.removeprefix("whisper-")
        results[name] = {}
        with tempfile.TemporaryDirectory() as folder:
            pipe = pipeline("whisper-at", model=at_model_dir(whisper_dir, Path(folder)), dtype=torch.float32)
            print(f"\n{Path(whisper_dir).name}, step {args.step:g} s, {args.threads} threads")
            if args.clips and whisper_dir in args.models:
                results[name]["clips"] = measure_clips(pipe, args.clips, args.step)
            if args.long_minutes and whisper_dir in long_models:
                results[name]["long"] = measure_long(pipe, args.long_minutes, args.step)
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print_summary(results, args.step, args.threads)


if __name__ == "__main__":
    main()
