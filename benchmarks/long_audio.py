"""Peak memory (RSS) and wall time of the CLI on long files: flat in the input's length.

Makes WAV files of the given lengths (16 kHz mono 16-bit: shared speech clips, each followed by silence or quiet
noise, repeated; written block by block with soundfile into a temporary folder) and runs
`whisper-at FILE --model MODEL -o OUT` on each in its own process. Each run goes through a small Python wrapper
that reports its child's `ru_maxrss` (per run, not the maximum over runs). The table gives peak RSS, wall time and
the ratios to the shortest length. Target: the 2 h peak within 1.2x the 10 min peak.

    python benchmarks/long_audio.py                                # 10 min, 1 h, 2 h (minutes 10 60 120)
    python benchmarks/long_audio.py --minutes 2 6 12               # the same shape, quickly
    python benchmarks/long_audio.py --minutes 2 6 --src ../main/src   # another checkout's code (before/after)

`--model` is a Whisper-AT checkpoint folder; a plain Whisper folder (the default, ../shared/models/whisper-tiny.en)
gets a random (seeded) head first, saved with its processor into the temporary folder (memory and time do not
depend on the head's weights).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
import numpy as np

CLIPS = ("speech_en.wav", "speech_de.wav", "speech_fr.wav", "music_10s.wav")
# Runs the CLI as a child and prints the child's peak RSS (kB), so each length is measured on its own.
_WRAPPER = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def write_long_wav(path: Path, minutes: float, seed: int = 0) -> Path:
    """`minutes` of clips, each followed by 5 s of silence or quiet noise, written in blocks (never held whole)."""
    import soundfile

    rng = np.random.default_rng(seed)
    clips = [_common.load_clip(name) for name in CLIPS]
    total, written, index = int(minutes * 60 * _common.SAMPLING_RATE), 0, 0
    with soundfile.SoundFile(path, "w", _common.SAMPLING_RATE, 1, subtype="PCM_16") as sound:
        while written < total:
            gap = np.zeros(5 * _common.SAMPLING_RATE, dtype=np.float32)
            if index % 2:
                gap = (0.01 * rng.standard_normal(gap.shape[0])).astype(np.float32)
            block = np.concatenate([clips[index % len(clips)], gap])[: total - written]
            sound.write(block)
            written, index = written + block.shape[0], index + 1
    return path


def whisper_at_checkpoint(model: str, folder: Path) -> str:
    """`model` if it is a Whisper-AT checkpoint, else a copy of the plain Whisper `model` with a random head."""
    config = json.loads((Path(model) / "config.json").read_text())
    if config.get("model_type") != "whisper":
        return model
    import torch
    from transformers import WhisperProcessor

    from whisper_at_hf import WhisperForAudioTaggingAndASR

    torch.manual_seed(0)
    WhisperForAudioTaggingAndASR.from_whisper(model).save_pretrained(folder)
    WhisperProcessor.from_pretrained(model).save_pretrained(folder)
    return str(folder)


def run_cli(audio: Path, model: str, out: Path, extra: list[str], src: Path) -> tuple[float, float]:
    """`(peak RSS in MB, wall seconds)` of one CLI run in a fresh process, with the package from `src`."""
    command = [sys.executable, "-c", _WRAPPER, sys.executable, "-m", "whisper_at_hf.cli", str(audio),
               "--model", model, "-o", str(out), "-q", *extra]
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"the CLI failed on {audio.name}:\n{completed.stderr[-3000:]}")
    return int(completed.stdout.split()[-1]) / 1024, wall


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60, 120])
    parser.add_argument("--model", default=str(_common.SHARED_MODELS / "whisper-tiny.en"))
    parser.add_argument("--cli-args", default="", help='extra CLI options, e.g. "--max-new-tokens 32"')
    parser.add_argument("--src", type=Path, default=_common.REPO_ROOT / "src",
                        help="the package source the CLI runs from (another checkout's src/ to compare)")
    args = parser.parse_args(argv)
    print(_common.machine())
    rows = []
    header = f"{'audio':>10} {'peak RSS MB':>12} {'x first':>8} {'wall s':>9} {'x first':>8} {'s / audio min':>14}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = whisper_at_checkpoint(args.model, folder / "model")
        for minutes in sorted(args.minutes):
            audio = write_long_wav(folder / f"long_{minutes:g}min.wav", minutes)
            peak, wall = run_cli(audio, model, folder / "out", args.cli_args.split(), args.src)
            audio.unlink()
            row = {"minutes": minutes, "peak_rss_mb": peak, "wall_s": wall}
            row["rss_ratio"] = peak / (rows[0] if rows else row)["peak_rss_mb"]
            row["wall_ratio"] = wall / (rows[0] if rows else row)["wall_s"]
            rows.append(row)
            if len(rows) == 1:
                print(header)
            print(f"{minutes:>7g} min {peak:>12.0f} {row['rss_ratio']:>8.2f} {wall:>9.1f} {row['wall_ratio']:>8.2f} "
                  f"{wall / minutes:>14.2f}", flush=True)  # each row as it is measured (long runs take hours)
    print(f"target: the longest run's peak within 1.2x the shortest's: {rows[-1]['rss_ratio']:.2f}x")
    return rows


if __name__ == "__main__":
    main()
