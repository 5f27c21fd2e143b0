"""Throughput of joint ASR + tagging over 16 clips: batch sizes 1, 4, 8 vs 16 sequential calls.

* model level: `generate(x, return_audio_tags=True)` on batches of log-mel features (batch 1 = 16 sequential
  calls), with plain `WhisperForConditionalGeneration.generate` at the same batch sizes for the joint/plain ratio.
* pipeline level: `pipe(clips, batch_size=N)` for N in 1, 4, 8 vs
  `[pipe(clip) for clip in clips]`.

All contenders are interleaved per repetition; medians and ranges are printed.

    python benchmarks/batching.py                          # whisper-tiny.en, 16 clips, 3 repetitions
    python benchmarks/batching.py --model ../shared/models/whisper-base --batch-sizes 1 8 --repeats 5
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile

import torch

import _common
from _common import DEFAULT_CLIPS, DEFAULT_MODELS, interleaved, load_clip, machine, median, ratios, summary

from transformers import WhisperForConditionalGeneration, WhisperProcessor  # noqa: E402
from whisper_at_hf import WhisperForAudioTaggingAndASR  # noqa: E402


def batched(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODELS[0])
    parser.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS, help="cycled to --num-clips")
    parser.add_argument("--num-clips", type=int, default=16)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--level", choices=["model", "pipeline", "both"], default="both")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(machine())
    names = list(itertools.islice(itertools.cycle(args.clips), args.num_clips))
    audio = [load_clip(name) for name in names]
    processor = WhisperProcessor.from_pretrained(args.model)
    plain = WhisperForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).eval()
    torch.manual_seed(0)
    joint = WhisperForAudioTaggingAndASR.from_whisper(plain).eval()
    gen = dict(max_new_tokens=args.max_new_tokens, num_beams=1)  # greedy at both levels (the ASR pipeline defaults to 5)
    print(f"{args.model}: {len(audio)} clips ({', '.join(sorted(set(names)))}), {args.repeats} repetitions, "
          f"{args.threads} thread(s)")

    if args.level in ("model", "both"):
        features = [processor.feature_extractor(a, sampling_rate=16000, return_tensors="pt").input_features
                    for a in audio]
        sizes = [1] + [b for b in args.batch_sizes if b != 1]
        contenders = {}
        for b in sizes:
            groups = [torch.cat(group) for group in batched(features, b)]
            contenders[f"joint b{b}"] = lambda groups=groups: [
                joint.generate(x, return_audio_tags=True, **gen) for x in groups
            ]
            contenders[f"plain b{b}"] = lambda groups=groups: [plain.generate(x, **gen) for x in groups]
        with torch.inference_mode():
            times = interleaved(contenders, args.repeats, args.warmup)
        print(f"\nmodel level (b1 = {len(audio)} sequential calls); speed-up vs b1 of the same kind")
        print(f"{'contender':<11}{'clips/s':>9}{'s per run [range]':>28}{'speed-up vs b1':>22}"
              f"{'joint/plain':>22}")
        for b in sizes:
            for kind in ("joint", "plain"):
                values = times[f"{kind} b{b}"]
                speedup = ratios(times[f"{kind} b1"], values)
                ratio = summary(ratios(times[f"joint b{b}"], times[f"plain b{b}"]), "{:.3f}") if kind == "joint" else ""
                print(f"{kind + ' b' + str(b):<11}{len(audio) / median(values):>9.2f}{summary(values):>28}"
                      f"{summary(speedup, '{:.2f}x'):>22}{ratio:>22}")

    if args.level in ("pipeline", "both"):
        from transformers import pipeline

        print("\npipeline level")
        with tempfile.TemporaryDirectory() as tmp:
            joint.save_pretrained(tmp)
            processor.save_pretrained(tmp)
            pipe = pipeline("whisper-at", model=tmp, dtype=torch.float32)
        contenders = {"sequential calls": lambda: [pipe(a, generate_kwargs=gen) for a in audio]}
        for b in [1] + [b for b in args.batch_sizes if b != 1]:
            contenders[f"batch_size={b}"] = lambda b=b: pipe(list(audio), batch_size=b, generate_kwargs=gen)
        times = interleaved(contenders, args.repeats, args.warmup)
        print(f"{'contender':<15}{'clips/s':>9}{'s per run [range]':>28}{'speed-up vs 16 calls':>24}")
        for name, values in times.items():
            speedup = ratios(times["sequential calls"], values)
            print(f"{name:<15}{len(audio) / median(values):>9.2f}{summary(values):>28}"
                  f"{summary(speedup, '{:.2f}x'):>24}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
