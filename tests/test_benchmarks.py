"""Benchmark building blocks: flops.py's two FLOP counts agree; events.py's composed scenes and sed_eval scoring."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, tiny_whisper_config

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import _sound_scenes as scenes
import events
import flops
from _sound_scenes import Event


def test_tiny_random_config_counts_match_analytic():
    config = tiny_whisper_config()
    assert flops.count_encoder(config, batch=2) == flops.analytic_encoder(config, batch=2)
    assert flops.count_decoder(config, 4, prompt_tokens=2) == flops.analytic_decoder(config, 4, prompt_tokens=2)
    assert flops.count_head(config, 32, 0.4, batch=2) == flops.analytic_head(config, 32, 0.4, batch=2)
    assert flops.count_head(config, None, 30.0) == flops.analytic_head(config, None, 30.0)


def test_whisper_tiny_dims_and_ast_within_one_percent():
    config = flops.whisper_config("tiny")
    encoder, head = flops.count_encoder(config), flops.count_head(config)
    assert abs(encoder - flops.analytic_encoder(config)) <= 0.01 * encoder
    assert abs(head - flops.analytic_head(config)) <= 0.01 * head
    # sanity of the magnitudes: the head is a few percent of the encoder, AST (10 s) costs more than tiny's encoder
    assert 0.01 < head / encoder < 0.06
    ast = flops.count_ast()
    assert abs(ast - flops.analytic_ast()) <= 0.01 * ast
    assert ast > encoder
    # the comparison is sensitive: one more decoded token is a different count
    small = tiny_whisper_config()
    assert flops.count_decoder(small, 3) != flops.analytic_decoder(small, 2)


# ----- benchmarks/events.py: the composed scenes and the sed_eval scoring ---------------------------------------------


@pytest.fixture(scope="module")
def test_scene(shared_dir):
    return scenes.long_scene(scenes.SourceBank("test"), 200.0, seed=3)


def _frame_levels(audio: np.ndarray) -> np.ndarray:
    frames = len(audio) // 160
    return np.sqrt((audio[: frames * 160].reshape(frames, 160).astype(np.float64) ** 2).mean(axis=1))


@pytest.mark.needs_shared
def test_scene_annotations_match_its_audio(test_scene):
    audio, reference = test_scene.audio, test_scene.events
    assert test_scene.duration == pytest.approx(200.0) and audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    covered = np.zeros(len(audio), dtype=bool)
    for event in reference:
        first, last = round(event.onset * 16000), round(event.offset * 16000)
        covered[first:last] = True
        # sound right at both annotated boundaries: the first and last 10 ms of every event are active
        for edge in (audio[first : first + 160], audio[last - 160 : last]):
            assert np.sqrt(np.mean(edge.astype(np.float64) ** 2)) > 1e-3, event
    assert not np.any(audio[~covered]), "sound outside every annotated event"
    assert {e.label for e in reference} == set(scenes.CLASSES)
    assert min(sum(e.label == label for e in reference) for label in scenes.CLASSES) >= 4
    silence = len(audio) - covered.sum()
    assert silence > 0.1 * len(audio)  # silence is part of the scene
    overlapping = [a for a, b in itertools.pairwise(reference) if b.onset < a.offset]
    assert overlapping, "no two events overlap"
    assert all(a.label != b.label for a in reference for b in reference if a is not b and b.onset < a.offset and a.onset < b.offset)
    # the same seed gives the same scene; another seed another one
    again = scenes.long_scene(scenes.SourceBank("test"), 200.0, seed=3)
    assert again.events == reference and np.array_equal(again.audio, audio)
    assert scenes.long_scene(scenes.SourceBank("test"), 200.0, seed=4).events != reference


@pytest.mark.needs_shared
def test_weak_clip_labels_are_the_audible_classes(tmp_path):
    bank, rng = scenes.SourceBank("train"), np.random.default_rng(0)
    for _ in range(20):
        audio, labels = scenes.weak_clip(bank, 4.0, rng)
        assert audio.shape == (64000,) and labels == [c for c in scenes.CLASSES if c in labels]
        assert (not labels) == (not np.any(audio))
    table = scenes.write_weak_clips(tmp_path, "train", 5, 2.0, seed=1)
    rows = table.read_text().splitlines()
    assert rows[0] == "audio,label" and len(rows) == 6 and (tmp_path / "clip_00004.wav").is_file()


@pytest.mark.needs_shared
def test_train_and_test_material_are_disjoint():
    train, test = scenes.SourceBank("train"), scenes.SourceBank("test")
    for label in scenes.CLASSES:
        for piece in test.pieces[label]:
            probe = piece[8000:8160]  # 10 ms from inside the test material
            for source in train.pieces[label]:
                windows = np.lib.stride_tricks.sliding_window_view(source, len(probe))
                assert not np.any(np.all(windows == probe, axis=1)), label


def test_sed_scores_perfect_shifted_and_missed():
    reference = [Event(1.0, 5.0, "Music"), Event(7.0, 9.0, "Speech"), Event(3.0, 13.0, "White noise"),
                 Event(20.0, 24.0, "Beep, bleep")]  # fmt: skip
    perfect = events.sed_scores(reference, reference, 30.0)
    for kind in ("event", "segment"):
        assert all(perfect[kind]["classes"][label]["f"] == 1.0 for label in scenes.CLASSES)
    # onsets 0.8 s late: inside the 1 s onset collar; offsets 1.8 s late: inside 20 % of the 10 s noise only
    late = [Event(e.onset + 0.8, e.offset + 1.8, e.label) for e in reference]
    scores = events.sed_scores(reference, late, 30.0)["event"]["classes"]
    assert scores["White noise"]["f"] == 1.0
    assert scores["Music"]["f"] == scores["Speech"]["f"] == scores["Beep, bleep"]["f"] == 0.0
    # 1.2 s late onsets miss the collar everywhere; segment F1 falls with the shifted 1 s segments but stays > 0
    shifted = [Event(e.onset + 1.2, e.offset + 1.2, e.label) for e in reference]
    both = events.sed_scores(reference, shifted, 30.0)
    assert all(both["event"]["classes"][label]["f"] == 0.0 for label in scenes.CLASSES)
    assert all(0.3 < both["segment"]["classes"][label]["f"] < 1.0 for label in scenes.CLASSES)
    # a missed event and a false alarm: precision 1/2, recall 1/2 for that class
    wrong = [e for e in reference if e.label != "Speech"] + [Event(15.0, 17.0, "Speech")]
    speech = events.sed_scores(reference, wrong, 30.0)["event"]["classes"]["Speech"]
    assert (speech["precision"], speech["recall"], speech["f"]) == (0.0, 0.0, 0.0)
    speech = events.sed_scores(reference, reference + [Event(15.0, 17.0, "Speech")], 30.0)["event"]["classes"]["Speech"]
    assert speech["precision"] == pytest.approx(0.5) and speech["recall"] == 1.0


def test_boundary_errors_match_by_overlap():
    reference = [Event(1.0, 5.0, "Music"), Event(7.0, 9.0, "Speech"), Event(20.0, 22.0, "Music")]
    detected = [Event(1.4, 4.0, "Music"), Event(4.5, 4.8, "Music"), Event(6.5, 9.5, "Speech"), Event(7.0, 9.0, "Music")]
    errors = events.boundary_errors(reference, detected)
    assert errors["onset"] == pytest.approx([0.4, -0.5]) and errors["offset"] == pytest.approx([-1.0, 0.5])
    summary = events.error_summary(errors["onset"])
    assert summary["count"] == 2 and summary["mean"] == pytest.approx(0.45) and summary["median"] == pytest.approx(0.45)
    assert events.error_summary([])["count"] == 0


@pytest.mark.slow  # trains a head (subprocess) and runs the pipeline twice: ~2 min on 2 CPU cores
@pytest.mark.needs_shared
def test_events_benchmark_end_to_end_with_tiny_settings(tmp_path, capsys):
    out = tmp_path / "events"
    argv = ["--output-dir", str(out), "--train-clips", "12", "--eval-clips", "4", "--epochs", "1",
            "--test-seconds", "35", "--sweep", "--sweep-windows", "2.0", "--sweep-smoothing", "3",
            "--sweep-thresholds", "0.5", "--sweep-offset-ratios", "0.6", "--sweep-min-gaps", "0.8"]  # fmt: skip
    summary = events.main(argv)
    printed = capsys.readouterr().out
    reference = scenes.read_annotations(out / "test" / "scene.tsv")
    assert reference and reference[-1].offset <= 35.0
    for kind in ("event", "segment"):
        for label in scenes.CLASSES:
            assert 0.0 <= summary["scores"][kind]["classes"][label]["f"] <= 1.0 or np.isnan(
                summary["scores"][kind]["classes"][label]["f"]
            )
    assert sum(c["n_ref"] for c in summary["scores"]["event"]["classes"].values()) == len(reference)
    detected = scenes.read_annotations(out / "test" / "detected.tsv") if (out / "test" / "detected.tsv").read_text() else []
    assert all(0.0 <= e.onset < e.offset <= 35.0 and e.label in scenes.CLASSES for e in detected)
    assert "| Speech |" in printed and "events" in printed and "wall time" in printed
    assert (out / "head" / "config.json").is_file() and (out / "sweep.json").is_file()
    # the sweep's curve is the pipeline's: at the pipeline's defaults it finds the same events
    assert summary["sweep_matches_pipeline"] is True
    # a second run with the same settings reuses the trained head
    args = events.parse_args(argv)
    assert events.train_weak_head(args, out) == out / "head" and "reusing the head" in capsys.readouterr().out


def test_long_audio_files_are_written_in_blocks_to_length(shared_dir, tmp_path):
    import soundfile

    import long_audio

    path = long_audio.write_long_wav(tmp_path / "x.wav", 0.75)
    info = soundfile.info(path)
    assert info.samplerate == 16000 and info.channels == 1 and info.frames == 45 * 16000
    samples = soundfile.read(path, dtype="float32")[0]
    assert np.abs(samples[:16000]).max() > 0.05  # starts with a clip
    assert info.frames > 30 * 16000  # long enough for the long-form path


@pytest.mark.slow  # two CLI runs on 0.6 and 1.2 min of audio with tiny.en (~1-2 min on 2 CPU cores)
def test_long_audio_benchmark_end_to_end_with_short_lengths(shared_dir, capsys):
    import long_audio

    rows = long_audio.main(["--minutes", "1.2", "0.6", "--cli-args", "--max-new-tokens 16 -f txt"])
    assert [row["minutes"] for row in rows] == [0.6, 1.2]
    assert all(row["peak_rss_mb"] > 50 and row["wall_s"] > 0 for row in rows)
    assert rows[0]["rss_ratio"] == 1.0
    out = capsys.readouterr().out
    assert "peak RSS MB" in out and "1.2 min" in out and "target" in out
