"""The tag plot (issue 13 item 7): heat map and transcript aligned in time, readable from 10 s to 2 h, AudioSet
names for a fresh 527-class head.

Before: `figure.colorbar(ax=heat_axis)` took width from the heat map only, so with the shared x axis the heat map's
0-89 s sat over the first ~75 s of the transcript strip; 89 s gave a 3366x590 px strip; labels read `LABEL_426`.
Alignment is checked on the saved PNG: the heat map's painted pixel columns, the axes' pixel extents and the
transcript bars' pixel positions.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib.image  # noqa: E402

from whisper_at_hf.original_format import read_original_label_names  # noqa: E402
from whisper_at_hf.plotting import DPI, display_label_names, format_time, row_seconds_for, tag_figure  # noqa: E402


def fake_result(seconds: float, window: float, num_labels: int = 527, speech_every: float = 20.0) -> dict:
    """A pipeline-shaped result: `window`-second tag windows over `seconds`, logits with a few strong classes, and
    transcript chunks of 10 s every `speech_every` seconds."""
    starts = np.arange(0.0, seconds, window)
    rng = np.random.default_rng(0)
    logits = rng.normal(-4.0, 1.0, (len(starts), num_labels))
    logits[:, 0] += 5.0  # index 0 ("Speech" in AudioSet) strong everywhere
    logits[len(starts) // 2 :, 137 % num_labels] += 6.0  # "Music" (AudioSet 137) in the second half
    tags = [{"timestamp": (float(s), float(min(s + window, seconds))), "tags": []} for s in starts]
    chunks = [
        {"timestamp": (float(s), float(min(s + 10.0, seconds))), "text": f" words at {format_time(s)}"}
        for s in np.arange(0.0, seconds, speech_every)
    ]
    return {"text": "".join(c["text"] for c in chunks), "audio_tags": tags, "audio_tag_logits": logits.tolist(),
            "chunks": chunks}  # fmt: skip


def _save_and_read(figure, path) -> np.ndarray:
    figure.savefig(path, dpi=DPI)
    image = matplotlib.image.imread(path)
    width, height = figure.get_size_inches() * DPI
    assert image.shape[:2] == (round(height), round(width))  # the PNG's pixels are the figure's display pixels
    return image


def _painted_columns(image: np.ndarray, extent, figure_height: float) -> np.ndarray:
    """Columns of the PNG strictly inside the axes `extent` (spines excluded) that are painted (not white) over its
    whole height: the heat map's cells."""
    top, bottom = int(figure_height - extent.y1) + 2, int(figure_height - extent.y0) - 2
    left, right = int(np.ceil(extent.x0)) + 2, int(extent.x1) - 2
    band = image[top:bottom, left:right, :3]
    return left + np.flatnonzero((band < 0.97).any(axis=2).mean(axis=0) > 0.9)


def test_89_seconds_at_2_s_windows_aligns_heat_map_and_transcript(tmp_path):
    """The issue's case: long_mix.wav's 89 s at --at-time-res 2."""
    names = [f"LABEL_{i}" for i in range(527)]
    figure, rows = tag_figure(fake_result(89.0, 2.0), names, title="long_mix.wav")
    image = _save_and_read(figure, tmp_path / "plot.png")
    figure_height = figure.get_size_inches()[1] * DPI
    colorbar = figure.colorbar_axis.get_window_extent()
    assert len(rows) == 3  # 30 s per row
    for row, (heat, text) in enumerate(rows):
        heat_box, text_box = heat.get_window_extent(), text.get_window_extent()
        assert abs(heat_box.x0 - text_box.x0) < 0.5 and abs(heat_box.x1 - text_box.x1) < 0.5
        assert colorbar.x0 > heat_box.x1  # the colour bar has its own column
        # the same time lands on the same pixel column in both panels
        for seconds in (30.0 * row, 30.0 * row + 15.0):
            heat_x = heat.transData.transform((seconds, 0))[0]
            text_x = text.transData.transform((seconds, 0))[0]
            assert abs(heat_x - text_x) < 0.5
        # the painted heat map spans the axis from its left edge to the row's last second
        painted = _painted_columns(image, heat_box, figure_height)
        row_end = min(30.0 * (row + 1), 89.0)
        assert abs(painted[0] - heat_box.x0) <= 3
        assert abs(painted[-1] - min(heat.transData.transform((row_end, 0))[0], heat_box.x1 - 3)) <= 2
        assert (row_end < 30.0 * (row + 1)) == (painted[-1] < heat_box.x1 - 10)  # the last row ends at 89 s
    # the last row's first transcript bar (the chunk at 60 s) starts on the heat map's 60 s column
    heat, text = rows[2]
    bar = next(patch for patch in text.collections if patch.get_paths())
    bar_x0 = min(text.transData.transform((path.vertices[:, 0].min(), 0))[0] for path in bar.get_paths())
    assert abs(bar_x0 - heat.transData.transform((60.0, 0))[0]) < 1.0  # first chunk of the row starts at 60 s


def test_fresh_527_class_head_shows_audioset_names():
    audioset = read_original_label_names().get("en")
    generic = [f"LABEL_{i}" for i in range(527)]
    assert display_label_names(generic) == audioset
    assert display_label_names(["Beep", "Music"]) == ["Beep", "Music"]
    figure, rows = tag_figure(fake_result(10.0, 2.0), generic)
    shown = [label.get_text() for label in rows[0][0].get_yticklabels()]
    assert audioset[0] in shown and audioset[137] in shown and not any(name.startswith("LABEL_") for name in shown)


@pytest.mark.parametrize(
    "seconds, window, rows_expected",
    [(10.0, 1.0, 1), (89.0, 2.0, 3), (600.0, 10.0, 5), (7200.0, 2.0, 8)],
)
def test_figure_stays_readable_from_10_seconds_to_2_hours(seconds, window, rows_expected, tmp_path):
    result = fake_result(seconds, window, num_labels=20, speech_every=30.0)
    figure, rows = tag_figure(result, [f"c{i}" for i in range(20)])
    width, height = figure.get_size_inches() * DPI
    assert len(rows) == rows_expected
    assert width == 1400 and height <= 3000  # fixed width; a row per stretch of time instead of a wider strip
    seconds_per_row = row_seconds_for(seconds)
    for heat, _ in rows:
        start, end = heat.get_xlim()
        assert end - start == pytest.approx(seconds_per_row)  # the same time scale in every row
        # no heat-map column is narrower than ~2 px: long recordings merge windows (max score)
        mesh = heat.collections[0]
        columns = mesh.get_array().shape[-1] if mesh.get_array().ndim == 2 else mesh.get_array().size // 10
        assert columns <= 600
    assert format_time(59) == "59" and format_time(75) == "1:15" and format_time(3725) == "1:02:05"
    _save_and_read(figure, tmp_path / "plot.png")


def _long_text_result(seconds: float) -> dict:
    """Segments of 9 s every 12 s whose text is far wider than the bar, the last one ending at the very end."""
    result = fake_result(seconds, 2.0)
    text = " The quick brown fox jumps over the lazy dog and keeps on running far, far away from here"
    starts = list(np.arange(0.0, seconds - 9.0, 12.0)) + [seconds - 5.0]
    result["chunks"] = [{"timestamp": (float(s), float(min(s + 9.0, seconds))), "text": text} for s in starts]
    return result


@pytest.mark.parametrize("seconds", [41.0, 89.0])
def test_transcript_text_stays_inside_its_bar_and_the_row(seconds, tmp_path):
    """Issue 22 item 9: the text ran past its segment bar, and the last cue was cut at the row's right edge."""
    result = _long_text_result(seconds)
    figure, rows = tag_figure(result, [f"c{i}" for i in range(527)])
    _save_and_read(figure, tmp_path / "plot.png")  # draws: text extents are final
    renderer = figure.canvas.get_renderer()
    shown = 0
    for _, text_axis in rows:
        axis_box = text_axis.get_window_extent()
        start, end = text_axis.get_xlim()
        for label in text_axis.texts:
            box = label.get_window_extent(renderer)
            x_start = text_axis.transData.inverted().transform((box.x0, 0))[0]
            chunk = max((c for c in result["chunks"] if c["timestamp"][0] <= x_start + 1e-6),
                        key=lambda c: c["timestamp"][0])  # fmt: skip
            bar_end = text_axis.transData.transform((min(chunk["timestamp"][1], end), 0))[0]
            assert box.x1 <= bar_end + 0.5 and box.x1 <= axis_box.x1 + 0.5, label.get_text()
            assert label.get_text().endswith("…") and len(label.get_text()) > 10  # cut, yet readable
            shown += 1
    assert shown >= len(result["chunks"])  # every segment shows its text (those crossing rows in both)


def test_events_are_bars_under_the_heat_map(tmp_path):
    result = fake_result(30.0, 2.0)
    result["events"] = [
        {"label": "Speech", "label_id": 0, "start": 0.0, "end": 30.0, "score": 0.9},
        {"label": "Music", "label_id": 137, "start": 15.0, "end": 30.0, "score": 0.8},
        {"label": "Bark", "label_id": 74, "start": 3.0, "end": 5.5, "score": 0.6},
        {"label": "Bark", "label_id": 74, "start": 8.0, "end": 9.0, "score": 0.4},
    ]
    names = [f"c{i}" for i in range(527)]
    figure, rows = tag_figure(result, names)
    _save_and_read(figure, tmp_path / "plot.png")
    (events_axis,) = figure.event_axes
    heat, text = rows[0]
    assert [label.get_text() for label in events_axis.get_yticklabels()] == ["c0", "c137", "c74"]
    heat_box, events_box, text_box = heat.get_window_extent(), events_axis.get_window_extent(), text.get_window_extent()
    assert heat_box.y0 >= events_box.y1 - 0.5 and events_box.y0 >= text_box.y1 - 0.5  # between heat map and text
    assert abs(events_box.x0 - heat_box.x0) < 0.5 and abs(events_box.x1 - heat_box.x1) < 0.5
    bars = [path for collection in events_axis.collections for path in collection.get_paths()]
    spans = sorted((round(p.vertices[:, 0].min(), 6), round(p.vertices[:, 0].max(), 6)) for p in bars)
    assert spans == [(0.0, 30.0), (3.0, 5.5), (8.0, 9.0), (15.0, 30.0)]
    for seconds in (3.0, 15.0):  # the same time on the same pixel column as the heat map
        assert abs(events_axis.transData.transform((seconds, 0))[0] - heat.transData.transform((seconds, 0))[0]) < 0.5
    figure, _ = tag_figure(fake_result(30.0, 2.0), names)
    assert figure.event_axes == []
