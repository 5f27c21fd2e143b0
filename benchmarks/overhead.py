"""Wall-time cost of tags next to ASR, on real Whisper weights and real clips, measured side by side.

Two levels, each interleaved (plain, joint, joint, plain, ...) with the median and range of per-repetition ratios:

* model: `WhisperForAudioTaggingAndASR.generate(x, return_audio_tags=True)` vs `WhisperForConditionalGeneration
  .generate(x)`, the same weight tensors (the joint model adopts the plain model's), features computed up front.
* pipeline: `pipeline("whisper-at")` vs `pipeline("automatic-speech-recognition")` on the same audio arrays, and
  `pipeline("whisper-at")(..., return_events=True)` (the head on the sliding event windows too) in the same rotation.

The measured overhead is compared with the FLOP overhead head / (encoder + decoder) for the tokens actually decoded
(analytic count of benchmarks/flops.py, which that script checks against torch's FLOP counter). It also counts
encoder passes per 30 s window (must be 1) and shows where the joint model's time goes.

A third level, `--level python`, resolves what the real models cannot: the Python-side cost the joint model adds
per `generate` call and per decoded token, on a Whisper so small (random, d_model 64) that compute is negligible.

    python benchmarks/overhead.py                                  # tiny.en and base, 6 clips, 5 repetitions
    python benchmarks/overhead.py --models ../shared/models/whisper-base --repeats 9 --level model
    python benchmarks/overhead.py --level python --repeats 40      # per-call / per-token Python overhead
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

import _common
from _common import DEFAULT_CLIPS, DEFAULT_MODELS, interleaved, load_clip, machine, median, ratios, summary

import flops  # noqa: E402  (benchmarks/flops.py: the analytic FLOP counts)
from transformers import WhisperForConditionalGeneration, WhisperProcessor  # noqa: E402
from whisper_at_hf import WhisperForAudioTaggingAndASR  # noqa: E402

TARGET_FACTOR = 1.05  # measured overhead must stay within 1.05x the FLOP overhead


class EncoderPassCounter:
    """Counts real encoder passes: forward calls of its first layer (calls answered from a reused pass run no layer)."""

    def __init__(self, first_layer: torch.nn.Module):
        self.calls = 0
        self._handle = first_layer.register_forward_pre_hook(self._hook)

    def _hook(self, module, args) -> None:
        self.calls += 1

    def remove(self) -> None:
        self._handle.remove()


def flop_overhead(
    config, token_counts: list[int], at_low_dim: int | None, at_time_res: float | None, events: bool = False
) -> float:
    """Head FLOPs / (encoder + decoder) FLOPs summed over the clips, one 30 s window each (`events`: with the head on
    the sliding event windows too)."""
    from whisper_at_hf.tags import EVENT_HOP_SECONDS, EVENT_WINDOW_SECONDS

    res = at_time_res or 10.0
    head = len(token_counts) * flops.analytic_head(config, at_low_dim, res)
    if events:
        head += len(token_counts) * flops.analytic_event_head(config, at_low_dim, EVENT_WINDOW_SECONDS, EVENT_HOP_SECONDS)
    asr = sum(
        flops.analytic_encoder(config) + flops.analytic_decoder(config, n, prompt_tokens=min(n, 3))
        for n in token_counts
    )
    return head / asr


def model_level(path: str, clips: dict[str, "np.ndarray"], args) -> dict:
    processor = WhisperProcessor.from_pretrained(path)
    plain = WhisperForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    torch.manual_seed(0)
    joint = WhisperForAudioTaggingAndASR.from_whisper(plain, at_low_dim=args.at_low_dim).eval()
    assert joint.model.encoder.layers[0].fc1.weight.data_ptr() == plain.model.encoder.layers[0].fc1.weight.data_ptr()
    features = {
        name: processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
        for name, audio in clips.items()
    }
    gen_kwargs = dict(max_new_tokens=args.max_new_tokens)
    if args.language and getattr(plain.generation_config, "is_multilingual", False):
        gen_kwargs["language"] = args.language

    # Same tokens, one encoder pass per 30 s window (plain Whisper's passes counted for comparison: without a
    # language, a multilingual Whisper's generate encodes each window twice, once to detect the language).
    counter = EncoderPassCounter(joint.model.encoder.layers[0])
    plain_counter = EncoderPassCounter(plain.model.encoder.layers[0])
    token_counts, passes, plain_passes = [], [], []
    with torch.inference_mode():
        for name, x in features.items():
            plain_counter.calls = 0
            ref = plain.generate(x, **gen_kwargs)
            plain_passes.append(plain_counter.calls / math.ceil(x.shape[-1] / 3000))
            counter.calls = 0
            out = joint.generate(x, return_audio_tags=True, at_time_res=args.at_time_res, **gen_kwargs)
            passes.append(counter.calls / math.ceil(x.shape[-1] / 3000))
            if not torch.equal(out.sequences, ref):
                raise AssertionError(f"{name}: joint tokens differ from plain Whisper's")
            token_counts.append(ref.shape[-1])
    counter.remove()
    plain_counter.remove()

    def run_plain() -> None:
        for x in features.values():
            plain.generate(x, **gen_kwargs)

    def run_joint() -> None:
        for x in features.values():
            joint.generate(x, return_audio_tags=True, at_time_res=args.at_time_res, **gen_kwargs)

    with torch.inference_mode():
        times = interleaved({"plain": run_plain, "joint": run_joint}, args.repeats, args.warmup)
        breakdown = time_breakdown(plain, joint, features, args) if args.breakdown else None
    return {
        "times": times,
        "ratios": ratios(times["joint"], times["plain"]),
        "flop_overhead": flop_overhead(plain.config, token_counts, args.at_low_dim, args.at_time_res),
        "passes": passes,
        "plain_passes": plain_passes,
        "tokens": token_counts,
        "breakdown": breakdown,
    }


def time_breakdown(plain, joint, features, args) -> dict[str, float]:
    """Median seconds per clip of the parts: plain encoder, encoder with pooled capture, head, full generate."""
    x = torch.cat(list(features.values()))[:1]
    pooled = joint.encode(x).pooled_hidden_states
    parts = {
        "encoder (plain)": lambda: plain.model.encoder(x),
        "encoder + pooled capture": lambda: joint.encode(x),
        "TL-TR head": lambda: joint.tag_pooled(pooled, args.at_time_res),
        "plain generate": lambda: plain.generate(x, max_new_tokens=args.max_new_tokens),
    }
    times = interleaved(parts, max(3, args.repeats), 1)
    return {name: median(values) for name, values in times.items()}


def python_level(args) -> dict[str, float]:
    """Per-call and per-token milliseconds the joint model adds to plain Whisper's `generate` (same weights), on a
    random Whisper too small for compute to matter: joint without tags, and with tags less the head's own time."""
    from transformers import WhisperConfig
    from transformers.modeling_outputs import BaseModelOutput
    from transformers.utils import logging

    logging.set_verbosity_error()  # one "min_new_tokens and min_length" notice per call otherwise

    config = WhisperConfig(
        d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=128, decoder_ffn_dim=128, decoder_start_token_id=50257,
    )
    torch.manual_seed(0)
    plain = WhisperForConditionalGeneration(config).eval()
    joint = WhisperForAudioTaggingAndASR.from_whisper(plain).eval()  # 527 tag classes, as the released heads
    x = torch.randn(1, config.num_mel_bins, 3000)
    encoded = plain.model.encoder(x).last_hidden_state
    pooled = joint.encode(x).pooled_hidden_states
    short, long = 1, 61

    def decode(model, tokens: int, **kwargs):
        def run() -> None:
            model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=encoded), max_new_tokens=tokens,
                           min_new_tokens=tokens, **kwargs)
        return run

    runs = {
        "plain call": lambda: plain.generate(x, max_new_tokens=short, min_new_tokens=short),
        "joint call": lambda: joint.generate(x, max_new_tokens=short, min_new_tokens=short),
        "joint call with tags": lambda: joint.generate(x, max_new_tokens=short, min_new_tokens=short,
                                                       return_audio_tags=True),
        "head": lambda: joint.tag_pooled(pooled),
        "plain short": decode(plain, short), "plain long": decode(plain, long),
        "joint short": decode(joint, short), "joint long": decode(joint, long),
    }
    with torch.inference_mode():
        t = {name: median(values) for name, values in interleaved(runs, args.repeats, args.warmup).items()}
    def per_token(name: str) -> float:
        return (t[f"{name} long"] - t[f"{name} short"]) / (long - short)

    return {
        "per call, no tags": 1000 * (t["joint call"] - t["plain call"]),
        "per call, with tags less the head": 1000 * (t["joint call with tags"] - t["head"] - t["plain call"]),
        "per token": 1000 * (per_token("joint") - per_token("plain")),
        "plain per token": 1000 * per_token("plain"),
        "plain call": 1000 * t["plain call"],
    }


def pipeline_level(path: str, clips: dict[str, "np.ndarray"], args) -> dict:
    from transformers import pipeline

    with tempfile.TemporaryDirectory() as tmp:
        plain = WhisperForConditionalGeneration.from_pretrained(path, dtype=torch.float32)
        torch.manual_seed(0)
        WhisperForAudioTaggingAndASR.from_whisper(plain, at_low_dim=args.at_low_dim).save_pretrained(tmp)
        WhisperProcessor.from_pretrained(path).save_pretrained(tmp)
        del plain
        asr = pipeline("automatic-speech-recognition", model=path, dtype=torch.float32)
        tagger = pipeline("whisper-at", model=tmp, dtype=torch.float32)
    pipe_kwargs = {"generate_kwargs": {"max_new_tokens": args.max_new_tokens}}
    if args.language and getattr(asr.model.generation_config, "is_multilingual", False):
        pipe_kwargs["generate_kwargs"]["language"] = args.language
    tag_kwargs = dict(pipe_kwargs, at_time_res=args.at_time_res) if args.at_time_res else pipe_kwargs

    counter = EncoderPassCounter(tagger.model.model.encoder.layers[0])
    passes, mismatches, tokens = [], [], []
    for name, audio in clips.items():
        counter.calls = 0
        out = tagger(audio, **tag_kwargs)
        passes.append(counter.calls / math.ceil(len(audio) / 16000 / 30))
        tokens.append(len(tagger.tokenizer(out["text"], add_special_tokens=False).input_ids) + 1)  # + end of text
        if out["text"] != asr(audio, **pipe_kwargs)["text"]:
            mismatches.append(name)
        if args.events:  # events reuse the transcribing pass: still one encoder pass per 30 s window
            counter.calls = 0
            tagger(audio, return_events=True, **tag_kwargs)
            passes.append(counter.calls / math.ceil(len(audio) / 16000 / 30))
    long_passes = None
    if args.long_clip:
        audio = load_clip(args.long_clip)
        counter.calls = 0
        tagger(audio, chunk_length_s=30, **tag_kwargs)
        long_passes = (counter.calls, math.ceil(len(audio) / 16000 / 30))
    counter.remove()

    runs = {
        "plain": lambda: [asr(audio, **pipe_kwargs) for audio in clips.values()],
        "joint": lambda: [tagger(audio, **tag_kwargs) for audio in clips.values()],
    }
    if args.events:
        runs["events"] = lambda: [tagger(audio, return_events=True, **tag_kwargs) for audio in clips.values()]
    times = interleaved(runs, args.repeats, args.warmup)
    return {
        "times": times,
        "ratios": ratios(times["joint"], times["plain"]),
        "event_ratios": ratios(times["events"], times["plain"]) if args.events else None,
        "event_vs_tags": ratios(times["events"], times["joint"]) if args.events else None,
        "event_flop_overhead": flop_overhead(tagger.model.config, tokens, args.at_low_dim, args.at_time_res, True),
        "passes": passes,
        "tokens": tokens,
        "flop_overhead": flop_overhead(tagger.model.config, tokens, args.at_low_dim, args.at_time_res),
        "text_mismatches": mismatches,
        "long_passes": long_passes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="Whisper dirs (transformers format)")
    parser.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS, help="clips under ../shared/audio")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--level", choices=["model", "pipeline", "both", "python"], default="both",
                        help="both = model and pipeline; python = the per-call/per-token Python overhead")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--at-low-dim", type=int, default=None, help="512 for a TL-TR-512 head")
    parser.add_argument("--at-time-res", type=float, default=None, help="tag window (s), default the config's")
    parser.add_argument("--long-clip", default="long_mix.wav", help="pipeline: count passes on it ('' to skip)")
    parser.add_argument("--language", default=None, help="tell multilingual models the language (no detection)")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    parser.add_argument("--no-events", dest="events", action="store_false", help="pipeline: skip the events row")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    print(machine())
    if args.level == "python":
        r = python_level(args)
        print(f"\n[random Whisper d_model 64] Python overhead of the joint model vs plain generate, {args.repeats} "
              f"repetitions (a plain 1-token call: {r['plain call']:.2f} ms, a plain token: {r['plain per token']:.3f} ms)")
        for name in ("per call, no tags", "per call, with tags less the head", "per token"):
            print(f"  {name:36s} {r[name]:+.3f} ms")
        return 0
    clips = {name: load_clip(name) for name in args.clips}
    print(f"clips: {', '.join(f'{n} ({len(a) / 16000:.1f} s)' for n, a in clips.items())}; {args.repeats} repetitions")
    failed = False
    for path in args.models:
        name = Path(path).name
        if args.level in ("model", "both"):
            started = time.perf_counter()
            r = model_level(path, clips, args)
            overhead = [ratio - 1 for ratio in r["ratios"]]
            limit = TARGET_FACTOR * r["flop_overhead"]
            ok = median(overhead) <= limit
            failed |= not ok or any(p != 1 for p in r["passes"])
            print(f"\n[{name}] model level: generate(return_audio_tags=True) vs plain generate")
            print(f"  seconds for all clips  plain {summary(r['times']['plain'])}  joint {summary(r['times']['joint'])}")
            print(f"  ratio joint/plain      {summary(r['ratios'], '{:.4f}')}")
            print(
                f"  overhead {100 * median(overhead):+.2f}% vs FLOP overhead {100 * r['flop_overhead']:.2f}% "
                f"(target <= {100 * limit:.2f}%): {'OK' if ok else 'MISSED'}"
            )
            print(f"  decoded tokens per clip {r['tokens']}; encoder passes per 30 s window {r['passes']} "
                  f"(plain Whisper: {r['plain_passes']})")
            if r["breakdown"]:
                parts = "; ".join(f"{k} {1000 * v:.1f} ms" for k, v in r["breakdown"].items())
                print(f"  one clip, median: {parts}")
                b = r["breakdown"]
                extra = b["encoder + pooled capture"] - b["encoder (plain)"] + b["TL-TR head"]
                print(f"  from the parts: (capture + head) / plain generate = {100 * extra / b['plain generate']:.2f}% "
                      f"(head alone {100 * b['TL-TR head'] / b['plain generate']:.2f}%)")
            print(f"  ({time.perf_counter() - started:.0f} s)")
        if args.level in ("pipeline", "both"):
            r = pipeline_level(path, clips, args)
            print(f"\n[{name}] pipeline level: pipeline('whisper-at') vs pipeline('automatic-speech-recognition')")
            overhead = [ratio - 1 for ratio in r["ratios"]]
            limit = TARGET_FACTOR * r["flop_overhead"]
            ok = median(overhead) <= limit
            failed |= not ok or any(p != 1 for p in r["passes"]) or bool(r["text_mismatches"])
            print(f"  seconds for all clips  plain {summary(r['times']['plain'])}  joint {summary(r['times']['joint'])}")
            print(f"  ratio joint/plain      {summary(r['ratios'], '{:.4f}')}")
            print(
                f"  overhead {100 * median(overhead):+.2f}% vs FLOP overhead {100 * r['flop_overhead']:.2f}% "
                f"(target <= {100 * limit:.2f}%): {'OK' if ok else 'MISSED'}; text tokens per clip {r['tokens']}"
            )
            print(f"  encoder passes per 30 s window {r['passes']}; text differs from ASR on {r['text_mismatches'] or 'none'}")
            if r["event_ratios"]:
                print(f"  events: seconds {summary(r['times']['events'])}; ratio events/plain "
                      f"{summary(r['event_ratios'], '{:.4f}')}, events/joint {summary(r['event_vs_tags'], '{:.4f}')}; "
                      f"FLOP overhead with events {100 * r['event_flop_overhead']:.2f}%")
            if r["long_passes"]:
                print(f"  {args.long_clip} with chunk_length_s=30: {r['long_passes'][0]} encoder passes, "
                      f"{r['long_passes'][1]} windows of 30 s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
