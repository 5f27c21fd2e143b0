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
* `--long-minutes N`: `long_mix.wav` repeated to N minutes at real-time pace: word lag per minute and peak RSS per
  minute (flat memory: the last minute within 10 % of the first).

    python benchmarks/live.py                                    # tiny.en and base, 4 speech clips + long_mix
    python benchmarks/live.py --models ../shared/models/whisper-tiny.en --long-minutes 10
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import DEFAULT_MODELS, SAMPLING_RATE, load_clip, machine

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


def measure_clips(pipe, clips: list[str], step_s: float) -> None:
    import jiwer

    from whisper_at_hf.live import normalize_for_wer

    lags, tag_lat, loads = [], [], []
    print(f"  {'clip':<26} {'offline WER':>11} {'live WER':>9} {'diff':>6} {'lag p50':>8} {'lag p95':>8} {'steps':>5}")
    for clip in clips:
        audio = load_clip(clip)
        offline = pipe(audio.copy(), num_beams=1, return_timestamps=True)["text"]
        updates = run_stream(pipe, audio, step_s)
        live = updates[-1]["committed_text"] if updates else ""
        truth = normalize_for_wer(TRUTH[clip])
        offline_wer = jiwer.wer(truth, normalize_for_wer(offline))
        live_wer = jiwer.wer(truth, normalize_for_wer(" ".join(w["word"] for u in updates for w in u["new_words"])))
        clip_lags = word_lags(updates)
        lags += clip_lags
        loads += [u["compute_s"] / step_s for u in updates[:-1]]
        if clip == "long_mix.wav":
            tag_lat += tag_latencies(updates, [10.0 * block for block in range(1, 9)])
        print(
            f"  {clip:<26} {offline_wer:>11.3f} {live_wer:>9.3f} {100 * (live_wer - offline_wer):>+6.1f} "
            f"{percentile(clip_lags, 50):>7.2f}s {percentile(clip_lags, 95):>7.2f}s {len(updates):>5}"
        )
        print(f"      offline: {offline.strip()[:150]}")
        print(f"      live:    {live.strip()[:150]}")
    print(f"  word lag: median {percentile(lags, 50):.2f} s, 95th percentile {percentile(lags, 95):.2f} s "
          f"({len(lags)} words)")
    if tag_lat:
        print(f"  tag latency (long_mix onsets): median {percentile(tag_lat, 50):.2f} s, max {max(tag_lat):.2f} s")
    print(f"  compute per step / step: median {percentile(loads, 50):.2f}, 95th percentile {percentile(loads, 95):.2f}")


def measure_long(pipe, minutes: float, step_s: float) -> None:
    clip = load_clip("long_mix.wav")
    repeats = int(np.ceil(minutes * 60 * SAMPLING_RATE / clip.size))
    audio = np.tile(clip, repeats)[: int(minutes * 60 * SAMPLING_RATE)]
    updates = run_stream(pipe, audio, step_s, sample_rss=True)
    print(f"  {minutes:g} min stream: {len(updates)} updates")
    print(f"  {'minute':>6} {'lag p50':>8} {'lag p95':>8} {'peak RSS':>9} {'skipped':>7}")
    first_rss = None
    for minute in range(int(np.ceil(minutes))):
        inside = [u for u in updates if minute * 60 <= u["audio_time"] < (minute + 1) * 60]
        lags = word_lags(inside)
        rss = max((u["rss"] for u in inside), default=0) / 2**20
        first_rss = first_rss or rss
        skipped = sum(u["skipped_steps"] for u in inside)
        print(f"  {minute + 1:>6} {percentile(lags, 50):>7.2f}s {percentile(lags, 95):>7.2f}s {rss:>7.0f}MB {skipped:>7}")
    last = max((u["rss"] for u in updates if u["audio_time"] >= (minutes - 1) * 60), default=0) / 2**20
    print(f"  peak RSS last minute / first minute: {last / first_rss:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--clips", nargs="*", default=[*TRUTH], help="clips to measure (none: only --long-minutes)")
    parser.add_argument("--step", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--long-minutes", type=float, default=0.0, help="also a long stream of this many minutes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    import whisper_at_hf  # noqa: F401  (registers the "whisper-at" task)

    hf_logging.set_verbosity_error()
    print(machine())
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
    for whisper_dir in args.models:
        with tempfile.TemporaryDirectory() as folder:
            pipe = pipeline("whisper-at", model=at_model_dir(whisper_dir, Path(folder)), dtype=torch.float32)
            print(f"\n{Path(whisper_dir).name}, step {args.step:g} s, {args.threads} threads")
            if args.clips:
                measure_clips(pipe, args.clips, args.step)
            if args.long_minutes:
                measure_long(pipe, args.long_minutes, args.step)
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")


if __name__ == "__main__":
    main()
