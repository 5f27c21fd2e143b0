"""A small synthetic labelled audio set, named after AudioSet classes: the data of the README's example
(`training/configs/synthetic_tiny_en.json`) and of the training tests.

    python training/make_synthetic_data.py data        # data/train.csv, data/test.csv and their clips

Every clip is generated from a seed (speech is cut from the recordings in `--speech_dir`, by default the repo's
`../shared/audio`), written as 16 kHz WAV, and listed in CSV files `train.csv` / `test.csv` with columns
`audio,label` (paths relative to the CSV); multi-label cells join names with "|".
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
CLASSES = ["Sine wave", "Beep", "White noise", "Pink noise", "Silence", "Music", "Speech"]
MIXTURES = [("Speech", "Music"), ("Speech", "White noise"), ("Beep", "Pink noise"), ("Music", "Pink noise")]


def _sine(rng, n):
    t = np.arange(n) / SR
    return 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t + rng.uniform(0, 6.28))


def _beep(rng, n):
    tone = np.sin(2 * np.pi * rng.uniform(600, 1600) * np.arange(n) / SR)
    period = rng.uniform(0.6, 1.2)
    duty = rng.uniform(0.2, 0.5)
    gate = ((np.arange(n) / SR + rng.uniform(0, period)) % period) < duty * period
    return 0.4 * tone * gate


def _white(rng, n):
    return rng.uniform(0.05, 0.3) * rng.standard_normal(n)


def _pink(rng, n):
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))
    pink = np.fft.irfft(spectrum, n)
    return rng.uniform(0.1, 0.3) * pink / np.abs(pink).max()


def _silence(rng, n):
    return rng.uniform(0, 1e-4) * rng.standard_normal(n)


def _music(rng, n):
    out = np.zeros(n)
    chord_len = int(SR * rng.uniform(0.4, 0.9))
    for start in range(0, n, chord_len):
        root = 110 * 2 ** (rng.integers(0, 24) / 12)
        length = min(chord_len, n - start)
        t = np.arange(length) / SR
        envelope = np.exp(-t * rng.uniform(2, 5))
        for semitones in (0, 4, 7, 12):
            f = root * 2 ** (semitones / 12)
            out[start : start + length] += envelope * sum(np.sin(2 * np.pi * f * h * t) / h**1.5 for h in (1, 2, 3))
    return 0.3 * out / np.abs(out).max()


SPEECH_FILES = ("speech_en.wav", "speech_de.wav", "speech_fr.wav")


def _speech_source(shared_audio: Path) -> list[np.ndarray]:
    missing = [name for name in SPEECH_FILES if not (Path(shared_audio) / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{shared_audio} lacks the speech recordings {missing} (16 kHz mono WAV) the Speech clips are cut from; "
            "pass --speech_dir with them."
        )
    clips = []
    for name in SPEECH_FILES:
        audio, sr = sf.read(Path(shared_audio) / name, dtype="float32")
        if sr != SR or audio.ndim != 1:
            raise ValueError(f"{Path(shared_audio) / name} must be 16 kHz mono, got {sr} Hz, shape {audio.shape}.")
        clips.append(audio)
    return clips


def _speech(rng, n, sources):
    source = sources[rng.integers(len(sources))]
    source = np.tile(source, 1 + n // len(source) + 1)
    start = rng.integers(0, len(source) - n)
    return rng.uniform(0.6, 1.2) * source[start : start + n]


GENERATORS = {
    "Sine wave": _sine,
    "Beep": _beep,
    "White noise": _white,
    "Pink noise": _pink,
    "Silence": _silence,
    "Music": _music,
}


def make_clip(labels: tuple[str, ...], rng: np.random.Generator, seconds: float, sources) -> np.ndarray:
    n = int(seconds * SR)
    clip = np.zeros(n)
    for label in labels:
        clip += _speech(rng, n, sources) if label == "Speech" else GENERATORS[label](rng, n)
    return np.clip(clip, -0.99, 0.99).astype(np.float32)


def write_dataset(
    root: Path,
    shared_audio: Path,
    per_class: dict[str, int] = {"train": 7, "test": 3},
    mixtures: dict[str, int] = {"train": 2, "test": 1},
    seconds: float = 5.0,
    seed: int = 0,
) -> dict[str, Path]:
    """Writes the clips and `<split>.csv` files under `root`; returns `{split: csv_path}`."""
    rng = np.random.default_rng(seed)
    sources = _speech_source(shared_audio)
    files = {}
    for split in per_class:
        rows = []
        items = [(c,) for c in CLASSES for _ in range(per_class[split])]
        items += [mix for mix in MIXTURES for _ in range(mixtures[split])]
        for i, labels in enumerate(items):
            path = root / split / f"{i:03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, make_clip(labels, rng, seconds, sources), SR)
            rows.append({"audio": f"{split}/{path.name}", "label": "|".join(labels)})
        files[split] = root / f"{split}.csv"
        with open(files[split], "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["audio", "label"])
            writer.writeheader()
            writer.writerows(rows)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="folder for train.csv, test.csv and the clips (e.g. data)")
    default_speech = Path(__file__).resolve().parents[1].parent / "shared" / "audio"
    parser.add_argument("--speech_dir", type=Path, default=default_speech,
                        help=f"folder with {', '.join(SPEECH_FILES)} (default: {default_speech})")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    files = write_dataset(args.output, args.speech_dir, seconds=args.seconds, seed=args.seed)
    for split, path in files.items():
        print(f"{split}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
