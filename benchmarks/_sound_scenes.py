"""Synthetic sound scenes with known event boundaries, built from the ../shared/audio clips (for `events.py`).

A scene is a silent time line with sound events of 4 classes (AudioSet names: Speech, Music, "Beep, bleep",
White noise) placed at seeded random times, sometimes two at once. Training and test scenes draw on disjoint
material: other speech recordings, other halves of the 10 s music / beep / noise clips.

Every placed event is a piece of a source trimmed to its first and last active 10 ms frame, so a reference
annotation `(onset, offset)` is where the sound is audible, not where a silent margin of the file happens to lie.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import SAMPLING_RATE, load_clip

SPEECH, MUSIC, BEEP, NOISE = "Speech", "Music", "Beep, bleep", "White noise"
CLASSES = (SPEECH, MUSIC, BEEP, NOISE)

# (file, start s, end s or None): the part of a ../shared clip a split may use. Speech: other sentences and
# languages for training than for testing; the 10 s clips: their first half trains, their second half tests.
SOURCES: dict[str, dict[str, list[tuple[str, float, float | None]]]] = {
    "train": {
        SPEECH: [("speech_de.wav", 0.0, None), ("speech_fr.wav", 0.0, None), ("long_mix.wav", 80.0, None)],
        MUSIC: [("music_10s.wav", 0.0, 5.0)],
        BEEP: [("beeps_10s.wav", 0.0, 5.0)],
        NOISE: [("white_noise_10s.wav", 0.0, 5.0)],
    },
    "test": {
        SPEECH: [("speech_en.wav", 0.0, None)],
        MUSIC: [("music_10s.wav", 5.0, None)],
        BEEP: [("beeps_10s.wav", 5.0, None)],
        NOISE: [("white_noise_10s.wav", 5.0, None)],
    },
}
# Each event is scaled to this RMS level (dBFS, +- LEVEL_SPREAD_DB at random); noise sits lower, as a background.
LEVEL_DBFS = {SPEECH: -20.0, MUSIC: -22.0, BEEP: -24.0, NOISE: -30.0}
LEVEL_SPREAD_DB = 3.0
# Training clips hold 0..3 events: few silent clips, most with one or two sounds.
EVENT_COUNT_WEIGHTS = {1: [0.2, 0.8], 2: [0.15, 0.45, 0.4], 3: [0.1, 0.35, 0.35, 0.2]}
ACTIVE_FRAME = 160  # 10 ms
ACTIVE_BELOW_PEAK_DB = 35.0  # a frame is active within this many dB of the piece's loudest frame


@dataclass(frozen=True)
class Event:
    """A reference sound event: `[onset, offset)` seconds from the start of its scene."""

    onset: float
    offset: float
    label: str


@dataclass
class Scene:
    """A mixture `audio` (16 kHz mono float32, `(samples,)`) and the events in it, sorted by onset."""

    audio: np.ndarray
    events: list[Event]

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLING_RATE


def active_bounds(audio: np.ndarray) -> tuple[int, int]:
    """Sample range `[first, last)` from the first to the last active 10 ms frame of `audio`."""
    frames = len(audio) // ACTIVE_FRAME
    if frames == 0:
        return 0, len(audio)
    energy = (audio[: frames * ACTIVE_FRAME].reshape(frames, ACTIVE_FRAME).astype(np.float64) ** 2).mean(axis=1)
    level = 10 * np.log10(energy + 1e-12)
    active = np.flatnonzero(level > level.max() - ACTIVE_BELOW_PEAK_DB)
    return int(active[0]) * ACTIVE_FRAME, (int(active[-1]) + 1) * ACTIVE_FRAME


class SourceBank:
    """The trimmed source material of one split, by class; cuts event pieces of a wanted length from it."""

    def __init__(self, split: str):
        self.pieces: dict[str, list[np.ndarray]] = {}
        for label, entries in SOURCES[split].items():
            self.pieces[label] = []
            for name, start, end in entries:
                audio = load_clip(name)
                audio = audio[int(start * SAMPLING_RATE) : None if end is None else int(end * SAMPLING_RATE)]
                first, last = active_bounds(audio)
                self.pieces[label].append(audio[first:last])

    def cut(self, label: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
        """About `seconds` of `label` from a random position (music, beeps and noise are looped to length; speech is
        at most its recording), trimmed to its active frames and scaled to the class's level."""
        source = self.pieces[label][rng.integers(len(self.pieces[label]))]
        samples = int(seconds * SAMPLING_RATE)
        if label == SPEECH:
            samples = min(samples, len(source))
            start = int(rng.integers(0, len(source) - samples + 1))
            piece = source[start : start + samples]
        else:
            start = int(rng.integers(0, len(source)))
            piece = np.resize(np.roll(source, -start), samples)  # np.resize repeats the source to the length
        first, last = active_bounds(piece)
        piece = piece[first:last].astype(np.float64)
        level = LEVEL_DBFS[label] + rng.uniform(-LEVEL_SPREAD_DB, LEVEL_SPREAD_DB)
        rms = np.sqrt(np.mean(piece**2)) + 1e-12
        return (piece * (10 ** (level / 20) / rms)).astype(np.float32)


def mix(duration: float, placed: Sequence[tuple[float, np.ndarray, str]]) -> Scene:
    """Adds the pieces `(onset s, audio, label)` onto `duration` s of silence; pieces are cut at the end."""
    total = round(duration * 1000) * (SAMPLING_RATE // 1000)
    audio = np.zeros(total, dtype=np.float64)
    events = []
    per_ms = SAMPLING_RATE // 1000
    for onset, piece, label in placed:
        # on a 1 ms grid, so that the annotation's times (ms) are exactly the piece's first and last sample
        start = round(onset * 1000) * per_ms
        piece = piece[: max(min(len(piece), total - start), 0) // per_ms * per_ms]
        if len(piece) == 0:
            continue
        audio[start : start + len(piece)] += piece
        events.append(Event(round(start / SAMPLING_RATE, 3), round((start + len(piece)) / SAMPLING_RATE, 3), label))
    peak = np.abs(audio).max()
    if peak > 0.99:  # rare overlaps of loud pieces: scale the whole scene down rather than clip
        audio *= 0.99 / peak
    return Scene(audio.astype(np.float32), sorted(events, key=lambda e: (e.onset, e.label)))


def long_scene(
    bank: SourceBank,
    duration: float,
    seed: int,
    event_seconds: tuple[float, float] = (2.0, 8.0),
    gap_seconds: tuple[float, float] = (1.0, 5.0),
    overlap_probability: float = 0.25,
) -> Scene:
    """A long-form scene: events one after another with silent gaps, classes in shuffled rounds (so each class
    appears about equally often); with `overlap_probability` a second event of another class starts inside one."""
    rng = np.random.default_rng(seed)
    placed: list[tuple[float, np.ndarray, str]] = []
    order: list[str] = []
    time = rng.uniform(*gap_seconds)
    while time < duration - event_seconds[0]:
        if not order:
            order = [str(name) for name in rng.permutation(CLASSES)]
        label = order.pop()
        piece = bank.cut(label, rng.uniform(*event_seconds), rng)
        placed.append((time, piece, label))
        end = time + len(piece) / SAMPLING_RATE
        if rng.random() < overlap_probability:
            other = str(rng.choice([name for name in CLASSES if name != label]))
            onset = time + rng.uniform(0.3, 0.7) * (end - time)
            second = bank.cut(other, rng.uniform(*event_seconds), rng)
            placed.append((onset, second, other))
            end = max(end, onset + len(second) / SAMPLING_RATE)
        time = end + rng.uniform(*gap_seconds)
    return mix(duration, placed)


def weak_clip(
    bank: SourceBank, seconds: float, rng: np.random.Generator, max_events: int = 3, min_inside: float = 0.4
) -> tuple[np.ndarray, list[str]]:
    """A short training clip of 0..`max_events` events at random times (they may run over its edges) and its
    clip-level labels: the classes audible in it for at least `min_inside` seconds. No times are kept."""
    count = int(rng.choice(max_events + 1, p=EVENT_COUNT_WEIGHTS[max_events]))
    labels = rng.choice(CLASSES, size=count, replace=False) if count else []
    placed = []
    for label in labels:
        piece = bank.cut(str(label), rng.uniform(1.0, seconds), rng)
        onset = rng.uniform(-0.5 * len(piece) / SAMPLING_RATE, seconds - min_inside)
        if onset < 0:  # starts before the clip: keep its tail
            piece = piece[int(-onset * SAMPLING_RATE) :]
            onset = 0.0
        placed.append((onset, piece, str(label)))
    scene = mix(seconds, placed)
    present = {e.label for e in scene.events if e.offset - e.onset >= min_inside}
    return scene.audio, [label for label in CLASSES if label in present]


def write_weak_clips(folder: Path, split: str, count: int, seconds: float, seed: int) -> Path:
    """Writes `count` weakly labelled clips of `split` material as WAV files and a `labels.csv` (`audio,label`, the
    labels joined with `|`, empty for a clip with no event) for `training/train_head.py --train_file`."""
    import soundfile as sf

    bank, rng = SourceBank(split), np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "labels.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audio", "label"])
        for index in range(count):
            audio, labels = weak_clip(bank, seconds, rng)
            name = f"clip_{index:05d}.wav"
            sf.write(folder / name, audio, SAMPLING_RATE, subtype="PCM_16")  # float WAVs get a time-stamped PEAK chunk
            writer.writerow([name, "|".join(labels)])
    return table


def write_annotations(path: Path, events: Sequence[Event]) -> None:
    """A DCASE-style reference file: `onset<TAB>offset<TAB>label` per line."""
    path.write_text("".join(f"{e.onset:.3f}\t{e.offset:.3f}\t{e.label}\n" for e in events))


def read_annotations(path: Path) -> list[Event]:
    events = []
    for line in Path(path).read_text().splitlines():
        onset, offset, label = line.split("\t")
        events.append(Event(float(onset), float(offset), label))
    return events
