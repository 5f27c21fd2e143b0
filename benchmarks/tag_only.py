"""Tagging alone: `model.tag()` (Whisper encoder + TL-TR head, no decoding) vs AST audio classification.

Same 10 s clips for every contender, features computed up front (model time only), batch 1, interleaved
repetitions. Whisper-AT widths: tiny and base use the real weights in ../shared/models (random head), small uses
random weights at small's dims; AST is `ASTForAudioClassification` with transformers' AudioSet `ASTConfig`
defaults (random weights: speed does not depend on the values). A 10 s clip costs Whisper a full padded 30 s
encoder pass, AST one 10.24 s pass.

    python benchmarks/tag_only.py
    python benchmarks/tag_only.py --sizes tiny base --repeats 5 --clips music_10s.wav beeps_10s.wav
"""

from __future__ import annotations

import argparse
import sys

import torch

import _common
from _common import SHARED_MODELS, interleaved, load_clip, machine, median, ratios, summary

import flops  # noqa: E402
from transformers import (  # noqa: E402
    ASTFeatureExtractor,
    ASTForAudioClassification,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
)
from whisper_at_hf import WhisperATConfig, WhisperForAudioTaggingAndASR  # noqa: E402

REAL_WEIGHTS = {"tiny": SHARED_MODELS / "whisper-tiny.en", "base": SHARED_MODELS / "whisper-base"}


def whisper_at(size: str) -> WhisperForAudioTaggingAndASR:
    torch.manual_seed(0)
    if size in REAL_WEIGHTS and REAL_WEIGHTS[size].is_dir():
        return WhisperForAudioTaggingAndASR.from_whisper(str(REAL_WEIGHTS[size])).eval()
    return WhisperForAudioTaggingAndASR(WhisperATConfig.from_whisper_config(flops.whisper_config(size))).eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "base", "small"], choices=list(flops.WHISPER_DIMS))
    parser.add_argument("--clips", nargs="+", default=["music_10s.wav", "beeps_10s.wav", "white_noise_10s.wav"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=0, help="untimed rounds (the first call is cheap to init)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(machine())
    clips = [load_clip(name) for name in args.clips]
    whisper_fe = WhisperFeatureExtractor()
    whisper_x = [whisper_fe(a, sampling_rate=16000, return_tensors="pt").input_features for a in clips]
    ast_config = flops.ast_config()
    ast_fe = ASTFeatureExtractor(max_length=ast_config.max_length, num_mel_bins=ast_config.num_mel_bins)
    ast_x = [ast_fe(a, sampling_rate=16000, return_tensors="pt").input_values for a in clips]
    torch.manual_seed(0)
    ast = ASTForAudioClassification(ast_config).eval()
    models = {size: whisper_at(size) for size in args.sizes}

    contenders = {"AST": lambda: [ast(input_values=x).logits for x in ast_x]}
    for size, model in models.items():
        contenders[f"whisper-at {size}"] = lambda model=model: [model.tag(x) for x in whisper_x]
    with torch.inference_mode():
        times = interleaved(contenders, args.repeats, args.warmup)

    ast_flops = flops.analytic_ast(ast_config)
    print(f"{len(clips)} clips of 10 s, batch 1, {args.repeats} interleaved repetitions, {args.threads} thread(s)")
    print(f"{'model':<18}{'clips/s':>9}{'s per round [range]':>28}{'speed vs AST':>24}{'FLOPs vs AST':>14}")
    for name, values in times.items():
        speed = ratios(times["AST"], values)  # >1: faster than AST
        if name == "AST":
            fl = 1.0
        else:
            config = models[name.split()[-1]].config
            fl = ast_flops / (flops.analytic_encoder(config) + flops.analytic_head(config))
        print(f"{name:<18}{len(clips) / median(values):>9.2f}{summary(values):>28}{summary(speed, '{:.2f}x'):>24}"
              f"{fl:>13.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
