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
           "rss_first_last_mib": {p: (v[0], v[-1]) for p, v in sorted(rss.items())}}
    print(f"  {name}: {inputs} clips, work {row['work_s']:.1f} s, wall {wall:.1f} s, "
          f"{row['clips_per_s']:.2f} clips/s, {row['audio_s_per_s']:.1f} audio-s/s, "
          f"peak RSS first/last shard per process {row['rss_first_last_mib']}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Whisper-AT checkpoint (default: tiny.en + random head)")
    parser.add_argument("--whisper", default=str(SHARED_MODELS / "whisper-tiny.en"))
    parser.add_argument("--clips", type=int, default=24, help="corpus size for the throughput runs")
    parser.add_argument("--stream-inputs", type=int, default=500, help="corpus size of the streaming memory run")
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--skip-full", action="store_true", help="only the tags-only runs")
    options = parser.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               ACCELERATE_USE_CPU="true", PYTHONPATH=f"{REPO_ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
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
        rows["resume"] = annotate("rerun of the finished tags-only run", [*common, "--tags-only", "-o", root / "t1"],
                                  env)
        write_list(root / "stream.csv", options.stream_inputs, DEFAULT_CLIPS)
        rows["stream"] = annotate(f"streaming {options.stream_inputs} inputs, tags-only",
                                  [root / "stream.csv", "--streaming", "--model", model, "--tags-only",
                                   "--shard-size", 100, "--batch-size", options.batch_size, "-o", root / "s"], env)

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
        print(f"tags-only / full, 1 process: {rows['tags1']['clips_per_s'] / rows['full1']['clips_per_s']:.2f}x "
              "faster (target >= 3x)")
    print(f"resume of a finished run: {rows['resume']['work_s']:.3f} s of work, {rows['resume']['inputs']} clips "
          f"recomputed, {rows['resume']['wall_s']:.1f} s wall (start-up: imports, model load)")
    first, last = rows["stream"]["rss_first_last_mib"][0]
    print(f"peak RSS streaming {options.stream_inputs} inputs: {first:.0f} MiB after the first shard, {last:.0f} MiB "
          f"after the last ({last - first:+.0f} MiB)")


if __name__ == "__main__":
    main()
