"""Throughput, scaling, memory and resume cost of `whisper-at-annotate`, measured side by side in one run.

Runs the real command (a fresh process each time; `accelerate launch` for 2 processes, over gloo on CPU) on a
corpus listed in a CSV (the ../shared clips repeated under distinct ids) and reads the numbers it records:
- clips/s and audio-seconds/s of the work phase (`work_seconds` in manifest.json: from the processes' start of
  work to the last one's end; model loading excluded, reported apart as the wall time of the whole command);
- 1 process vs 2 processes (scaling efficiency), full (transcript + tags) vs `--tags-only`;
- peak RSS per process after its first and its last shard (the shard records' `peak_rss_mib`), streaming
  `--stream-inputs` inputs with `--tags-only`: it must not grow with the corpus;
- the cost of rerunning a finished run (resume: every shard is skipped).

    python benchmarks/annotate.py                      # tiny.en + random head, 24 clips, ~10 min on 2 busy cores
    python benchmarks/annotate.py --clips 96 --stream-inputs 10000 --model DIR

Every process runs one torch thread (OMP_NUM_THREADS=1), so "2 processes" uses twice the cores of "1 process".
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DEFAULT_CLIPS, REPO_ROOT, SHARED_AUDIO, SHARED_MODELS, machine

LAUNCH_2 = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m"]


def build_model(directory: Path, whisper: str) -> str:
    """Real Whisper weights with a random (seeded) Whisper-AT head: the speed does not depend on its values."""
    import torch
    from transformers import WhisperProcessor

    from whisper_at_hf import WhisperForAudioTaggingAndASR

    torch.manual_seed(0)
    WhisperForAudioTaggingAndASR.from_whisper(whisper).save_pretrained(directory)
    WhisperProcessor.from_pretrained(whisper).save_pretrained(directory)
    return str(directory)


def build_small_model(directory: Path, whisper: str) -> str:
    """A random Whisper-AT of tiny widths (d=64, 2 layers) with `whisper`'s processor: the memory run streams many
    inputs, and what it measures (growth of RSS with the corpus) does not depend on the model's size."""
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

    from whisper_at_hf import WhisperForAudioTaggingAndASR

    torch.manual_seed(0)
    reference = WhisperConfig.from_pretrained(whisper)
    config = WhisperConfig(
        vocab_size=reference.vocab_size, num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=1,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
        decoder_start_token_id=reference.decoder_start_token_id, pad_token_id=reference.pad_token_id,
        bos_token_id=reference.bos_token_id, eos_token_id=reference.eos_token_id,
    )
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig.from_pretrained(whisper)
    model.save_pretrained(directory / "whisper")
    WhisperProcessor.from_pretrained(whisper).save_pretrained(directory / "whisper")
    WhisperForAudioTaggingAndASR.from_whisper(str(directory / "whisper")).save_pretrained(directory / "at")
    WhisperProcessor.from_pretrained(whisper).save_pretrained(directory / "at")
    return str(directory / "at")


def write_list(path: Path, count: int, clips: list[str]) -> float:
    """A CSV of `count` rows cycling through `clips`; returns the audio seconds it lists."""
    import soundfile as sf

    durations = {clip: sf.info(SHARED_AUDIO / clip).duration for clip in clips}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "audio"])
        for index in range(count):
            clip = clips[index % len(clips)]
            writer.writerow([f"{index:06d}-{clip}", str(SHARED_AUDIO / clip)])
    return sum(durations[clips[index % len(clips)]] for index in range(count))


def annotate(name: str, args: list, env: dict, processes: int = 1) -> dict:
    launcher = LAUNCH_2 if processes == 2 else [sys.executable, "-m"]
    command = [*launcher, "whisper_at_hf.annotate", *map(str, args), "-q"]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO_ROOT)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{(result.stdout + result.stderr)[-4000:]}")
    out = Path(args[args.index("-o") + 1])
    manifest = json.loads((out / "manifest.json").read_text())
    records = [json.loads(p.read_text()) for p in sorted((out / "manifests").glob("shard-*.json"))]
    run = manifest["runs"][-1]
    inputs = run["inputs_computed"]
    audio = sum(r["audio_seconds"] for r in records if r["run"] == run["id"])
    rss = {}
    for record in records:
        if record["run"] == run["id"]:
            rss.setdefault(record["process"], []).append(record["peak_rss_mib"])
    row = {"name": name, "processes": processes, "inputs": inputs, "wall_s": wall, "work_s": run["work_seconds"],
           "clips_per_s": inputs / run["work_seconds"] if inputs else 0.0,
           "audio_s_per_s": audio / run["work_seconds"] if inputs else 0.0,
           "rss_first_last_mib": {p: (v[0], v[-1]) for p, v in sorted(rss.items())},
           "rss_series_mib": {p: v for p, v in sorted(rss.items())}}
    print(f"  {name}: {inputs} clips, work {row['work_s']:.1f} s, wall {wall:.1f} s, "
          f"{row['clips_per_s']:.2f} clips/s, {row['audio_s_per_s']:.1f} audio-s/s, "
          f"shards per process {[len(v) for v in rss.values()]}, "
          f"peak RSS first/last shard per process {row['rss_first_last_mib']}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Whisper-AT checkpoint (default: tiny.en + random head)")
    parser.add_argument("--whisper", default=str(SHARED_MODELS / "whisper-tiny.en"))
    parser.add_argument("--clips", type=int, default=24, help="corpus size for the throughput runs")
    parser.add_argument("--stream-inputs", type=int, default=2000,
                        help="inputs of the streaming memory run (tags-only, tiny random model)")
    parser.add_argument("--shard-size", type=int, default=4, help="keep clips / shard-size a multiple of 2 so that "
                        "both processes get as many shards")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--beam-clips", type=int, default=6, help="clips of the beam-5 full run (one of each clip)")
    parser.add_argument("--skip-full", action="store_true", help="only the tags-only runs")
    options = parser.parse_args()

    path = f"{REPO_ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               ACCELERATE_USE_CPU="true", PYTHONPATH=path)
    print(machine(), f"| load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = options.model or build_model(root / "model", options.whisper)
        seconds = write_list(root / "corpus.csv", options.clips, DEFAULT_CLIPS)
        print(f"corpus: {options.clips} clips ({seconds:.0f} s of audio) cycling {', '.join(DEFAULT_CLIPS)}; "
              f"model {options.model or options.whisper + ' + random head'}; shard {options.shard_size}, "
              f"batch {options.batch_size}", flush=True)
        common = [root / "corpus.csv", "--model", model, "--shard-size", options.shard_size,
                  "--batch-size", options.batch_size]
        rows = {}
        rows["tags1"] = annotate("tags-only, 1 process", [*common, "--tags-only", "-o", root / "t1"], env)
        rows["tags2"] = annotate("tags-only, 2 processes", [*common, "--tags-only", "-o", root / "t2"], env, 2)
        if not options.skip_full:
            full = [*common, "--num-beams", "1"]
            rows["full1"] = annotate("full (greedy), 1 process", [*full, "-o", root / "f1"], env)
            rows["full2"] = annotate("full (greedy), 2 processes", [*full, "-o", root / "f2"], env, 2)
        if not options.skip_full and options.beam_clips:
            # The pipeline's default decoding (beam 5, temperature fallback) on non-speech is slow: fewer clips.
            name = f"full (pipeline default: beam 5), 1 process, first {options.beam_clips} clips"
            rows["full_beam"] = annotate(name,
                                         [*common, "--max-inputs", options.beam_clips, "-o", root / "fb"], env)
        rows["resume"] = annotate("rerun of the finished tags-only run", [*common, "--tags-only", "-o", root / "t1"],
                                  env)
        if options.stream_inputs:
            write_list(root / "stream.csv", options.stream_inputs, DEFAULT_CLIPS)
            small = build_small_model(root / "small", options.whisper)
            rows["stream"] = annotate(f"streaming {options.stream_inputs} inputs, tags-only, d=64 random model",
                                      [root / "stream.csv", "--streaming", "--model", small, "--tags-only",
                                       "--shard-size", 100, "--batch-size", options.batch_size, "-o", root / "s"],
                                      env)

    print("\n| run | processes | clips | work s | clips/s | audio-s/s | wall s (with start-up) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows.values():
        print(f"| {row['name']} | {row['processes']} | {row['inputs']} | {row['work_s']:.2f} | "
              f"{row['clips_per_s']:.2f} | {row['audio_s_per_s']:.1f} | {row['wall_s']:.1f} |")
    print()
    scaling = rows["tags2"]["clips_per_s"] / rows["tags1"]["clips_per_s"]
    print(f"tags-only, 2 processes / 1 process: {scaling:.2f}x (efficiency {scaling / 2:.0%}; target >= 1.7x)")
    if "full1" in rows:
        scaling_full = rows["full2"]["clips_per_s"] / rows["full1"]["clips_per_s"]
        print(f"full, 2 processes / 1 process: {scaling_full:.2f}x (efficiency {scaling_full / 2:.0%})")
        for key, label in (("full1", "greedy"), ("full_beam", "beam 5, first clips")):
            if key not in rows:
                continue
            print(f"tags-only / full ({label}), 1 process: "
                  f"{rows['tags1']['clips_per_s'] / rows[key]['clips_per_s']:.2f}x faster (target >= 3x)")
    print(f"resume of a finished run: {rows['resume']['work_s']:.3f} s of work, {rows['resume']['inputs']} clips "
          f"recomputed, {rows['resume']['wall_s']:.1f} s wall (start-up: imports, model load)")
    if "stream" in rows:
        series = rows["stream"]["rss_series_mib"][0]
        points = sorted({0, len(series) // 4, len(series) // 2, 3 * len(series) // 4, len(series) - 1})
        print(f"peak RSS while streaming, after shard (of {len(series)}): "
              + ", ".join(f"{p + 1}: {series[p]:.0f} MiB" for p in points))
    for name in ("tags1", "tags2", "full1", "full2", "stream"):
        if name in rows:
            print(f"peak RSS per process, {rows[name]['name']}: " + ", ".join(
                f"process {p}: {first:.0f} MiB after its first shard, {last:.0f} MiB after its last"
                for p, (first, last) in rows[name]["rss_first_last_mib"].items()))


if __name__ == "__main__":
    main()
