"""Sound events measured the way the DCASE sound event detection task does, with a head trained on weak labels.

1. Test set: a long-form scene (default 300 s) of Speech, Music, "Beep, bleep" and White noise events at seeded
   random times with silence between them, overlapping sometimes (`_sound_scenes.py`); the reference annotations
   (`onset offset label`) are written beside it.
2. Head: `training/train_head.py` on short mixture clips of disjoint material with clip-level labels only (as in
   AudioSet), on top of a frozen Whisper (default ../shared/models/whisper-tiny.en), features cached.
3. Events: `pipeline("whisper-at", model=<trained head>)(scene, return_events=True)`, scored with `sed_eval`:
   event-based F1 (onset collar 1 s, offset collar max(1 s, 20 % of the reference event)) and segment-based F1
   (1 s segments), per class; onset and offset errors of matched events; the wall-time share of events.
4. `--sweep`: other event windows, median lengths and thresholds scored on the same encoder passes, through the
   functions the pipeline uses (`timeline.SlidingWindows`, `tags.smooth_curve`, `tags.events_from_curve`); the
   defaults in `tags.py` were chosen this way.

    python benchmarks/events.py --sweep --num-beams 1                  # ~25 min on 2 busy CPU cores
    python benchmarks/events.py --train-clips 40 --epochs 2 --test-seconds 60   # a quick smoke run
    python benchmarks/events.py --head outputs/events/head             # score an existing head again

Everything generated (audio, features, the head) goes under `--output-dir` (default `outputs/events`, ignored by
git); a rerun with the same data and training settings reuses the head.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import _common
import numpy as np
from _common import REPO_ROOT, SAMPLING_RATE, SHARED_MODELS, machine
from _sound_scenes import (
    CLASSES,
    Event,
    Scene,
    SourceBank,
    long_scene,
    write_annotations,
    write_weak_clips,
)

ONSET_COLLAR = 1.0  # seconds (DCASE)
OFFSET_COLLAR_SHARE = 0.2  # offset collar: max(ONSET_COLLAR, 20 % of the reference event's length)
SEGMENT_SECONDS = 1.0


# ----------------------------------------------------------------------------------------------------------------------
# Data and training
# ----------------------------------------------------------------------------------------------------------------------
def build_test_scene(folder: Path, seconds: float, seed: int) -> Scene:
    """The long-form test scene from test material: `scene.wav` and its reference `scene.tsv` in `folder`."""
    import soundfile as sf

    scene = long_scene(SourceBank("test"), seconds, seed)
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "scene.wav", scene.audio, SAMPLING_RATE, subtype="PCM_16")
    write_annotations(folder / "scene.tsv", scene.events)
    return scene


def training_command(args: argparse.Namespace, train_csv: Path, eval_csv: Path, head_dir: Path) -> list[str]:
    """The `training/train_head.py` command line: clip-level labels, cached features, our 4 classes in order."""
    return [
        sys.executable, str(REPO_ROOT / "training" / "train_head.py"),
        "--model_name_or_path", args.model,
        "--train_file", str(train_csv), "--validation_file", str(eval_csv),
        "--label_separator", "|", "--class_names", *CLASSES,
        "--at_time_res", str(args.clip_seconds),
        "--cache_features", "--feature_cache_dir", str(head_dir.parent / "feature_cache"),
        "--encode_batch_size", "8",
        "--output_dir", str(head_dir),
        "--num_train_epochs", str(args.epochs), "--per_device_train_batch_size", str(args.batch_size),
        "--learning_rate", str(args.learning_rate), "--warmup_ratio", "0.05", "--seed", str(args.seed),
        "--save_total_limit", "1", "--logging_steps", "0", "--disable_tqdm", "true",
    ]  # fmt: skip


def train_weak_head(args: argparse.Namespace, folder: Path) -> Path:
    """Writes the weakly labelled clips and trains the head; reuses a head trained with the same settings."""
    settings = {
        key: getattr(args, key)
        for key in ("model", "train_clips", "eval_clips", "clip_seconds", "epochs", "batch_size", "learning_rate", "seed")
    }
    head_dir = folder / "head"
    record = folder / "head_settings.json"
    if (head_dir / "config.json").is_file() and record.is_file() and json.loads(record.read_text()) == settings:
        print(f"reusing the head in {head_dir} (same data and training settings)")
        return head_dir
    train_csv = write_weak_clips(folder / "train_clips", "train", args.train_clips, args.clip_seconds, args.seed)
    eval_csv = write_weak_clips(folder / "eval_clips", "train", args.eval_clips, args.clip_seconds, args.seed + 1)
    command = training_command(args, train_csv, eval_csv, head_dir)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": str(args.threads),  # on a busy machine, spinning OpenMP threads make training crawl
    }
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    print(f"trained the head in {time.perf_counter() - start:.0f} s")
    record.write_text(json.dumps(settings, indent=1))
    return head_dir


# ----------------------------------------------------------------------------------------------------------------------
# Scoring (sed_eval)
# ----------------------------------------------------------------------------------------------------------------------
def _sed_events(events: Sequence[Event], filename: str = "scene") -> list[dict]:
    return [{"event_label": e.label, "onset": e.onset, "offset": e.offset, "filename": filename} for e in events]


def sed_scores(reference: Sequence[Event], estimated: Sequence[Event], duration: float) -> dict:
    """sed_eval's event-based (onset collar 1 s, offset collar max(1 s, 20 %)) and segment-based (1 s) metrics:
    `{"event": {"classes": {label: {f, precision, recall, n_ref, n_sys}}, "macro_f", "micro_f"}, "segment": ...}`."""
    import sed_eval

    event_metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(CLASSES),
        t_collar=ONSET_COLLAR,
        percentage_of_length=OFFSET_COLLAR_SHARE,
        evaluate_onset=True,
        evaluate_offset=True,
    )
    segment_metric = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=list(CLASSES), time_resolution=SEGMENT_SECONDS
    )
    ref, est = _sed_events(reference), _sed_events(estimated)
    event_metric.evaluate(reference_event_list=ref, estimated_event_list=est)
    segment_metric.evaluate(reference_event_list=ref, estimated_event_list=est, evaluated_length_seconds=duration)
    return {"event": _sed_summary(event_metric), "segment": _sed_summary(segment_metric)}


def _sed_summary(metric) -> dict:
    classes = {}
    for label, values in metric.results_class_wise_metrics().items():
        classes[label] = {
            "f": values["f_measure"]["f_measure"],
            "precision": values["f_measure"]["precision"],
            "recall": values["f_measure"]["recall"],
            "n_ref": int(values["count"]["Nref"]),
            "n_sys": int(values["count"]["Nsys"]),
        }
    return {
        "classes": classes,
        "macro_f": metric.results_class_wise_average_metrics()["f_measure"]["f_measure"],
        "micro_f": metric.results_overall_metrics()["f_measure"]["f_measure"],
    }


def boundary_errors(reference: Sequence[Event], estimated: Sequence[Event]) -> dict[str, list[float]]:
    """Signed onset and offset errors (detected - reference, seconds) of each reference event matched to the
    detected event of its class that overlaps it most (reference events nothing overlaps are left out)."""
    errors: dict[str, list[float]] = {"onset": [], "offset": []}
    for ref in reference:
        overlaps = [
            (min(ref.offset, est.offset) - max(ref.onset, est.onset), est)
            for est in estimated
            if est.label == ref.label and est.onset < ref.offset and est.offset > ref.onset
        ]
        if overlaps:
            best = max(overlaps, key=lambda pair: pair[0])[1]
            errors["onset"].append(best.onset - ref.onset)
            errors["offset"].append(best.offset - ref.offset)
    return errors


def error_summary(values: Sequence[float]) -> dict[str, float]:
    """Mean and median of the absolute errors (NaN when nothing matched)."""
    absolute = [abs(value) for value in values]
    if not absolute:
        return {"mean": float("nan"), "median": float("nan"), "count": 0}
    return {"mean": statistics.fmean(absolute), "median": statistics.median(absolute), "count": len(absolute)}


# ----------------------------------------------------------------------------------------------------------------------
# Detection with the pipeline, and its cost
# ----------------------------------------------------------------------------------------------------------------------
def event_options(args: argparse.Namespace) -> dict[str, float]:
    """The pipeline's event options given on the command line (the others keep the defaults of `tags.py`)."""
    names = ("event_threshold", "event_offset_threshold", "event_min_duration", "event_min_gap")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def load_pipeline(head_dir: Path, dtype: str = "float32"):
    """`pipeline("whisper-at", model=head_dir, dtype=dtype)`, as a user loads a trained head (on CPU in float32:
    the shared Whisper weights are stored in float16, which CPUs run several times slower)."""
    import torch
    from transformers import pipeline

    import whisper_at_hf  # noqa: F401  (registers the "whisper-at" pipeline)

    return pipeline("whisper-at", model=str(head_dir), dtype=getattr(torch, dtype))


def detect(pipe, scene_path: Path, args: argparse.Namespace) -> tuple[list[Event], dict, dict]:
    """Runs the pipeline on the scene without and with `return_events=True`, interleaved `--repeats` times.
    Returns the detected events, the last result and `{"asr": [s...], "asr+events": [s...]}`."""
    options = {"return_events": True, **event_options(args)}
    decoding = {"chunk_length_s": args.chunk_length_s, "num_beams": args.num_beams}
    plain = {key: value for key, value in decoding.items() if value}
    options.update(plain)
    results: dict[str, dict] = {}

    def run(name: str, kwargs: dict) -> None:
        results[name] = pipe(str(scene_path), **kwargs)

    times = _common.interleaved(
        {"asr": lambda: run("asr", plain), "asr+events": lambda: run("asr+events", options)},
        repeats=args.repeats,
        warmup=0,
    )
    result = results["asr+events"]
    detected = [Event(float(e["start"]), float(e["end"]), str(e["label"])) for e in result["events"]]
    return detected, result, times


# ----------------------------------------------------------------------------------------------------------------------
# Sweep: other event windows, smoothing and thresholds on the same encoder passes
# ----------------------------------------------------------------------------------------------------------------------
def pooled_passes(model, feature_extractor, audio: np.ndarray) -> tuple[list, list]:
    """The pooled states `(L, 75, d)` of the aligned 30 s passes over `audio` and their spans, cut as the
    pipeline's long-form tag passes are (`timeline.pass_spans` / `pass_features`, features in the model's dtype)."""
    import torch

    from whisper_at_hf.timeline import pass_features, pass_spans

    features = feature_extractor(
        audio, sampling_rate=SAMPLING_RATE, return_tensors="pt", truncation=False, padding="longest"
    ).input_features[0].to(model.dtype)
    frame_samples = round(model.config.at_pooled_frame_seconds * SAMPLING_RATE)
    per_pass, segment_frames = model.config.at_pooled_frames_per_window, feature_extractor.nb_max_frames
    spans = pass_spans(-(-len(audio) // frame_samples), per_pass)
    with torch.no_grad():
        pooled = [model.encode(pass_features(features, span, per_pass, segment_frames)[None]) for span in spans]
    return [output.pooled_hidden_states[0] for output in pooled], spans


def event_curve(model, pooled: list, spans: list, window_seconds: float) -> np.ndarray:
    """`(points, C)` probabilities of the head on `window_seconds` windows sliding by the event hop of `tags.py`
    (`timeline.SlidingWindows`, as the pipeline slides them)."""
    import torch

    from whisper_at_hf.tags import EVENT_HOP_SECONDS
    from whisper_at_hf.timeline import SlidingWindows

    hop = max(round(EVENT_HOP_SECONDS / model.config.at_pooled_frame_seconds), 1)
    sliding = SlidingWindows(model.config.at_window_frames(window_seconds), hop)
    windows = torch.cat([sliding.push(states, span) for states, span in zip(pooled, spans)])
    with torch.no_grad():
        logits = torch.cat([model.tag_pooled(part, window_seconds)[:, 0] for part in windows.split(256)])
    return torch.sigmoid(logits.float()).numpy()


def curve_events(curve: np.ndarray, names: list[str], duration: float, smoothing: int, **options) -> list[Event]:
    """Events of a raw `(points, C)` curve through `tags.smooth_curve` and `tags.events_from_curve` (what the
    pipeline does with its curve); `options`: `threshold`, `offset_threshold`, `min_gap`, `min_duration`."""
    from whisper_at_hf.tags import EVENT_HOP_SECONDS, events_from_curve, smooth_curve

    found = events_from_curve(
        smooth_curve(curve, int(smoothing)), hop_seconds=EVENT_HOP_SECONDS, duration=duration, names=names, **options
    )
    return [Event(float(e["start"]), float(e["end"]), str(e["label"])) for e in found]


def scene_curves(pipe, scene: Scene, windows: Sequence[float]) -> tuple[list[str], dict[float, np.ndarray]]:
    """The class names and the event curve on `scene` for each window length, from one set of passes of the
    pipeline's own model."""
    model = pipe.model
    names = [model.config.id2label[index] for index in range(model.config.num_labels)]
    pooled, spans = pooled_passes(model, pipe.feature_extractor, scene.audio)
    return names, {window: event_curve(model, pooled, spans, window) for window in windows}


def sweep(names: list[str], curves: dict[float, np.ndarray], scene: Scene, grid: dict[str, list[float]]) -> list[dict]:
    """Scores every combination of the `curves`' windows and `grid` (`smoothing`, `threshold`, `offset_ratio`,
    `min_gap`); rows sorted best first (highest lowest-class event F1, then lowest median onset error)."""
    import itertools

    rows = []
    for window, curve in curves.items():
        for smoothing, threshold, ratio, gap in itertools.product(
            grid["smoothing"], grid["threshold"], grid["offset_ratio"], grid["min_gap"]
        ):
            detected = curve_events(
                curve, names, scene.duration, smoothing, threshold=threshold, offset_threshold=threshold * ratio,
                min_gap=gap,
            )  # fmt: skip
            scores = sed_scores(scene.events, detected, scene.duration)
            errors = boundary_errors(scene.events, detected)
            rows.append({
                "window": window, "smoothing": int(smoothing), "threshold": threshold, "offset_ratio": ratio,
                "min_gap": gap, "min_class_f": min(c["f"] for c in scores["event"]["classes"].values()),
                "event_f": scores["event"]["macro_f"], "segment_f": scores["segment"]["macro_f"],
                "onset_median": error_summary(errors["onset"])["median"],
                "offset_median": error_summary(errors["offset"])["median"],
            })  # fmt: skip
    return sorted(rows, key=lambda row: (-row["min_class_f"], row["onset_median"]))


def event_step_seconds(pipe, scene: Scene, repeats: int = 5) -> float:
    """Median seconds of what `return_events=True` adds once the encoder passes exist: the head on every event
    window, the median filter and the segmentation (the passes themselves are the transcript's, reused)."""
    from whisper_at_hf.tags import EVENT_SMOOTHING_POINTS, EVENT_WINDOW_SECONDS

    pooled, spans = pooled_passes(pipe.model, pipe.feature_extractor, scene.audio)
    names = [pipe.model.config.id2label[index] for index in range(pipe.model.config.num_labels)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        curve = event_curve(pipe.model, pooled, spans, EVENT_WINDOW_SECONDS)
        curve_events(curve, names, scene.duration, EVENT_SMOOTHING_POINTS)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_sweep(args: argparse.Namespace, pipe, scene: Scene, folder: Path, detected: list[Event]) -> bool:
    """Prints the sweep's best rows and writes them all to `sweep.json`. Returns whether the sweep's curve at the
    pipeline's settings gives exactly the pipeline's events (the sweep measures what the pipeline does)."""
    from whisper_at_hf.tags import EVENT_SMOOTHING_POINTS, EVENT_WINDOW_SECONDS

    windows = sorted({*args.sweep_windows, EVENT_WINDOW_SECONDS})
    names, curves = scene_curves(pipe, scene, windows)
    options = {key.removeprefix("event_"): value for key, value in event_options(args).items()}
    same = curve_events(curves[EVENT_WINDOW_SECONDS], names, scene.duration, EVENT_SMOOTHING_POINTS, **options)
    grid = {
        "smoothing": args.sweep_smoothing, "threshold": args.sweep_thresholds,
        "offset_ratio": args.sweep_offset_ratios, "min_gap": args.sweep_min_gaps,
    }  # fmt: skip
    rows = sweep(names, {window: curves[window] for window in args.sweep_windows}, scene, grid)
    print_sweep(rows, args.sweep_top)
    (folder / "sweep.json").write_text(json.dumps(rows, indent=1))
    matches = same == detected
    print(f"the sweep's curve at the pipeline's settings gives the pipeline's events: {matches}")
    return matches


def print_sweep(rows: list[dict], top: int) -> None:
    print("\n| window s | median points | onset thr | offset thr / onset | min gap s | min class event F1 | "
          "event F1 | segment F1 | onset err median | offset err median |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows[:top]:
        print(
            f"| {row['window']:g} | {row['smoothing']} | {row['threshold']:g} | {row['offset_ratio']:g} | "
            f"{row['min_gap']:g} | {row['min_class_f']:.3f} | {row['event_f']:.3f} | {row['segment_f']:.3f} | "
            f"{row['onset_median']:.2f} | {row['offset_median']:.2f} |"
        )


# ----------------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------------
def print_report(
    scores: dict, errors: dict[str, list[float]], times: dict, step: float, scene: Scene, detected: list[Event]
) -> None:
    print(f"\nscene: {scene.duration:.0f} s, {len(scene.events)} reference events, {len(detected)} detected")
    print("\n| class | ref | detected | event F1 | precision | recall | segment F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label in CLASSES:
        event, segment = scores["event"]["classes"][label], scores["segment"]["classes"][label]
        print(
            f"| {label} | {event['n_ref']} | {event['n_sys']} | {event['f']:.3f} | {event['precision']:.3f} | "
            f"{event['recall']:.3f} | {segment['f']:.3f} |"
        )
    for kind in ("macro_f", "micro_f"):
        print(f"| {kind.split('_')[0]} average | | | {scores['event'][kind]:.3f} | | | {scores['segment'][kind]:.3f} |")
    onset, offset = error_summary(errors["onset"]), error_summary(errors["offset"])
    print(
        f"\nboundary errors of {onset['count']} matched events (|detected - reference|): onset mean "
        f"{onset['mean']:.2f} s, median {onset['median']:.2f} s; offset mean {offset['mean']:.2f} s, median "
        f"{offset['median']:.2f} s"
    )
    asr, full = statistics.median(times["asr"]), statistics.median(times["asr+events"])
    print(
        f"wall time (median of {len(times['asr'])} interleaved runs): pipeline {asr:.1f} s, with return_events=True "
        f"{full:.1f} s ({100 * (full - asr) / full:+.1f} %, machine noise included); the events step alone (head on "
        f"the event windows, median filter, segmentation; median of 5) {step:.3f} s = {100 * step / full:.2f} % of "
        "the run"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(SHARED_MODELS / "whisper-tiny.en"), help="the frozen Whisper")
    parser.add_argument("--output-dir", default=str(REPO_ROOT / "outputs" / "events"))
    parser.add_argument("--head", help="score this trained head instead of training one")
    parser.add_argument("--test-seconds", type=float, default=300.0, help="length of the composed test scene")
    parser.add_argument("--train-clips", type=int, default=300)
    parser.add_argument("--eval-clips", type=int, default=60, help="held-out clips for train_head.py's mAP")
    parser.add_argument("--clip-seconds", type=float, default=10.0, help="training clip length (multiple of 0.4)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0, help="seeds the test scene, the training clips and training")
    parser.add_argument("--event-threshold", type=float)
    parser.add_argument("--event-offset-threshold", type=float)
    parser.add_argument("--event-min-duration", type=float)
    parser.add_argument("--event-min-gap", type=float)
    parser.add_argument("--chunk-length-s", type=float, help="chunked long-form (default: sequential)")
    parser.add_argument("--num-beams", type=int, help="beam size of the pipeline runs (default: the pipeline's, 5)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=1, help="timed pipeline runs with and without events")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of training and the pipeline runs")
    parser.add_argument("--sweep", action="store_true", help="also score a grid of event settings (below)")
    parser.add_argument("--sweep-windows", type=float, nargs="+", default=[0.4, 0.8, 1.2, 2.0])
    parser.add_argument("--sweep-smoothing", type=int, nargs="+", default=[3, 5, 7], help="median points (odd)")
    parser.add_argument("--sweep-thresholds", type=float, nargs="+", default=[0.5, 0.7, 0.8])
    parser.add_argument("--sweep-offset-ratios", type=float, nargs="+", default=[0.6, 0.8, 1.0])
    parser.add_argument("--sweep-min-gaps", type=float, nargs="+", default=[0.8])
    parser.add_argument("--sweep-top", type=int, default=12, help="rows of the sweep to print")
    args = parser.parse_args(argv)
    args.model = str(Path(args.model).resolve())  # the head records this path as its base
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    import torch

    args = parse_args(argv)
    folder = Path(args.output_dir)
    torch.set_num_threads(args.threads)
    print(machine())
    scene = build_test_scene(folder / "test", args.test_seconds, args.seed)
    head_dir = Path(args.head) if args.head else train_weak_head(args, folder)
    pipe = load_pipeline(head_dir, args.dtype)
    detected, _, times = detect(pipe, folder / "test" / "scene.wav", args)
    write_annotations(folder / "test" / "detected.tsv", detected)
    scores = sed_scores(scene.events, detected, scene.duration)
    errors = boundary_errors(scene.events, detected)
    step = event_step_seconds(pipe, scene)
    print_report(scores, errors, times, step, scene, detected)
    matches = run_sweep(args, pipe, scene, folder, detected) if args.sweep else None
    summary = {
        "scores": scores,
        "onset_error": error_summary(errors["onset"]),
        "offset_error": error_summary(errors["offset"]),
        "seconds": times,
        "event_step_seconds": step,
        "sweep_matches_pipeline": matches,
        "settings": {key: value for key, value in vars(args).items()},
    }
    (folder / "results.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
