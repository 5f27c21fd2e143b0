"""Helpers shared by the benchmark scripts: paths, machine description, audio, interleaved timing, statistics."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))  # benchmark this checkout, not whatever is installed

SHARED = REPO_ROOT.parent / "shared"
SHARED_MODELS = SHARED / "models"
SHARED_AUDIO = SHARED / "audio"
DEFAULT_MODELS = [str(SHARED_MODELS / "whisper-tiny.en"), str(SHARED_MODELS / "whisper-base")]
# Short clips of different content: speech in three languages, music, tones, noise.
DEFAULT_CLIPS = ["speech_en.wav", "speech_de.wav", "speech_fr.wav", "music_10s.wav", "beeps_10s.wav", "white_noise_10s.wav"]
SAMPLING_RATE = 16000


def machine() -> str:
    """One line: CPU model, cores torch uses, torch and transformers versions."""
    import torch
    import transformers

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"transformers {transformers.__version__}, Python {platform.python_version()}"
    )


def load_clip(name: str) -> np.ndarray:
    """A 16 kHz mono clip from ../shared/audio as float32."""
    import soundfile as sf

    path = Path(name) if Path(name).is_absolute() else SHARED_AUDIO / name
    audio, rate = sf.read(path, dtype="float32", always_2d=False)
    if audio.ndim != 1 or rate != SAMPLING_RATE:
        raise ValueError(f"{path}: benchmarks need 16 kHz mono clips, got rate {rate} and shape {audio.shape}")
    return audio


def interleaved(
    contenders: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each contender, run in turns (A B, B A, A B, ...) so machine drift hits all alike."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(repeats):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return times


def ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Per-repetition ratios (each pair was measured back to back)."""
    return [a / b for a, b in zip(numerator, denominator)]


def summary(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    """`median [min – max]`."""
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
