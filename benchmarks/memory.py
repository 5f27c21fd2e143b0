"""Peak memory (RSS) of joint ASR + tagging vs plain ASR, each in its own fresh process.

Random weights at a Whisper size's dims (default large-v2: d=1280, 32+32 layers), fp32, 30 s input, a short
greedy decode (the decoder is identical in both; a few tokens keep the run short). Three modes per batch size:

* plain   `WhisperForConditionalGeneration.generate(x)`
* joint   `WhisperForAudioTaggingAndASR.generate(x, return_audio_tags=True)` (pooled capture while the layers run)
* hidden  the naive alternative: plain encoder with `output_hidden_states=True`, pool + head from the returned
          full-resolution states of every layer, then decode from the same encoder output

Each child reports its RSS once the model is in memory and its peak RSS (`ru_maxrss`); "extra" = peak - loaded,
i.e. what inference itself adds. Target: joint peak <= 1.05 x plain peak.

    python benchmarks/memory.py                                   # large-v2 dims, batch 1 and 8
    python benchmarks/memory.py --size medium --batch-sizes 1 --tokens 4
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (puts this checkout's src/ first on sys.path)

MODES = ("plain", "joint", "hidden")
TARGET = 1.05


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(mode: str, size: str, batch: int, tokens: int, threads: int) -> dict:
    """Runs one mode in this (fresh) process; returns its memory figures."""
    import torch
    import torch.nn.functional as F
    from transformers.modeling_outputs import BaseModelOutput

    import flops
    from whisper_at_hf import WhisperATConfig, WhisperForAudioTaggingAndASR
    from whisper_at_hf.modeling_whisper_at import WhisperATHead
    from transformers import WhisperForConditionalGeneration

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = flops.whisper_config(size)
    at_config = WhisperATConfig.from_whisper_config(config)
    # Build without initialising twice: allocate on the meta device, then fill the real tensors in place.
    with torch.device("meta"):
        model = (WhisperForAudioTaggingAndASR(at_config) if mode == "joint" else WhisperForConditionalGeneration(config))
        head = WhisperATHead(at_config) if mode == "hidden" else None
    model = model.to_empty(device="cpu").eval()
    head = head.to_empty(device="cpu").eval() if head is not None else None
    with torch.no_grad():
        for module in (model, head):
            for param in module.parameters() if module is not None else ():
                param.normal_(0.0, 0.02)
            for buffer in module.buffers() if module is not None else ():
                buffer.zero_()
    features = torch.randn(batch, config.num_mel_bins, 2 * config.max_source_positions)
    loaded = _rss_mib()
    gen = dict(max_new_tokens=tokens, min_new_tokens=tokens)
    start = time.perf_counter()
    with torch.inference_mode():
        if mode == "plain":
            out = model.generate(features, **gen)
        elif mode == "joint":
            out = model.generate(features, return_audio_tags=True, **gen)
            assert out.audio_tag_logits.shape[:2] == (batch, 3)
        else:
            enc = model.model.encoder(features, output_hidden_states=True)
            stride = at_config.at_pool_stride
            states = torch.stack(enc.hidden_states[1:], dim=1)  # (B, L, 1500, d), before the final LayerNorm
            pooled = F.avg_pool2d(states, (stride, 1))  # (B, L, 75, d)
            logits = head(pooled)
            out = model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=enc.last_hidden_state,
                                                                  hidden_states=enc.hidden_states), **gen)
            assert logits.shape[:2] == (batch, 3)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "batch": batch, "loaded_mib": loaded, "peak_mib": peak, "seconds": seconds}


def run_child(mode: str, args, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--size", args.size, "--tokens", str(args.tokens),
           "--threads", str(args.threads), "--batch-sizes", str(batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"child {mode} batch {batch} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="large-v2", help="Whisper dims from flops.WHISPER_DIMS")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tokens", type=int, default=4, help="decoded tokens (forced, same in every mode)")
    parser.add_argument("--repeats", type=int, default=1, help="processes per (mode, batch); the median is kept")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.size, args.batch_sizes[0], args.tokens, args.threads)))
        return 0

    print(_common.machine())
    print(f"{args.size} dims, random fp32 weights, 30 s input, {args.tokens} decoded tokens, one process per run")
    print(f"{'batch':>5} {'mode':<7}{'loaded MiB':>11}{'peak MiB':>10}{'extra MiB':>10}{'peak/plain':>11}"
          f"{'extra/plain':>12}{'seconds':>9}")
    failed = False
    for batch in args.batch_sizes:
        results: dict[str, dict] = {}
        for _ in range(args.repeats):
            for mode in MODES:  # alternating order across repeats is pointless for memory; each is a fresh process
                r = run_child(mode, args, batch)
                if mode not in results or r["peak_mib"] < results[mode]["peak_mib"]:
                    results[mode] = r
        plain = results["plain"]
        for mode in MODES:
            r = results[mode]
            extra = r["peak_mib"] - r["loaded_mib"]
            plain_extra = plain["peak_mib"] - plain["loaded_mib"]
            print(f"{batch:>5} {mode:<7}{r['loaded_mib']:>11.0f}{r['peak_mib']:>10.0f}{extra:>10.0f}"
                  f"{r['peak_mib'] / plain['peak_mib']:>11.3f}{extra / plain_extra:>12.2f}{r['seconds']:>9.1f}")
        ok = results["joint"]["peak_mib"] <= TARGET * plain["peak_mib"]
        failed |= not ok
        print(f"      joint peak <= {TARGET} x plain: {'OK' if ok else 'MISSED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
