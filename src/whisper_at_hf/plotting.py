"""`NAME.tags.png`: a time x label heat map of a result's strongest labels, with its transcript segments beneath.

Layout: the heat map and the transcript strip of a row share one time axis and the same horizontal pixel extent;
the colour bar has its own axis beside them, so it takes no width from either. A recording longer than one row wraps
into up to [`MAX_ROWS`] rows of equal length in a figure of fixed width, and windows narrower than a couple of pixels
are merged (maximum score per merged column) so 10 s and 2 h both stay readable.

matplotlib is an optional dependency (`pip install whisper-at-hf[plot]`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from .writers import transcript_segments

FIGURE_WIDTH_IN = 14.0
DPI = 100
MAX_ROWS = 8
# row lengths (seconds) a recording is wrapped into: the shortest that keeps it within MAX_ROWS
ROW_SECONDS = (30, 60, 120, 300, 600, 900, 1200, 1800, 3600)
MAX_COLUMNS_PER_ROW = 600  # heat-map columns per row (about 2 px each at the figure's width)
_GENERIC_LABEL = re.compile(r"LABEL_(\d+)$")


class PlottingUnavailable(ImportError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise PlottingUnavailable(
            "--plot needs matplotlib, which is not installed: pip install 'whisper-at-hf[plot]' (or matplotlib)"
        ) from error
    return plt


def display_label_names(label_names: list[str]) -> list[str]:
    """The names to draw: a fresh 527-class head's generic `LABEL_i` become AudioSet's class names when the original
    release's label files are installed (the `whisper-at` package); otherwise the names as given."""
    from .configuration_whisper_at import AUDIOSET_NUM_LABELS

    generic = all(
        (match := _GENERIC_LABEL.match(str(name))) and int(match.group(1)) == index
        for index, name in enumerate(label_names)
    )
    if len(label_names) != AUDIOSET_NUM_LABELS or not generic:
        return list(label_names)
    from .original_format import read_original_label_names

    try:
        return read_original_label_names().get("en")
    except (FileNotFoundError, OSError, ValueError):
        return list(label_names)


def format_time(seconds: float, _position: Any = None) -> str:
    """`75` -> `"1:15"`, `3725` -> `"1:02:05"`; below a minute, seconds (`"9.5"`)."""
    if seconds < 60:
        return f"{seconds:g}"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def row_seconds_for(duration: float) -> float:
    """How many seconds one row shows: the whole recording when it is short, else the shortest of [`ROW_SECONDS`]
    that fits it into [`MAX_ROWS`] rows."""
    if duration <= ROW_SECONDS[1]:
        return max(duration, 1e-6)
    for seconds in ROW_SECONDS:
        if math.ceil(duration / seconds) <= MAX_ROWS:
            return float(seconds)
    return float(math.ceil(duration / MAX_ROWS / 600) * 600)


def _tick_step(row_seconds: float) -> float:
    """A round tick spacing (1 s ... 30 min) giving at most 12 ticks per row."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800):
        if row_seconds / step <= 12:
            return float(step)
    return 3600.0


def _row_grid(edges: np.ndarray, scores: np.ndarray, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    """The windows overlapping `[start, end)`, clipped to it, merged (max) into at most MAX_COLUMNS_PER_ROW columns:
    `(column edges, column scores (columns, labels))`."""
    inside = np.flatnonzero((edges[1:] > start) & (edges[:-1] < end))
    row_edges = np.clip(np.append(edges[inside], edges[inside[-1] + 1]), start, end)
    row_scores = scores[inside]
    if len(inside) > MAX_COLUMNS_PER_ROW:
        groups = np.array_split(np.arange(len(inside)), MAX_COLUMNS_PER_ROW)
        row_scores = np.stack([row_scores[group].max(axis=0) for group in groups])
        row_edges = np.append([row_edges[group[0]] for group in groups], row_edges[-1])
    return row_edges, row_scores


def tag_figure(result: dict, label_names: list[str], num_labels: int = 10, title: str | None = None):
    """Builds the figure of [`plot_tags`]; returns `(figure, rows)` where `rows` is a list of
    `(heat_axis, transcript_axis)` pairs (one per row of time) and `figure.colorbar_axis` is the colour bar's."""
    plt = _pyplot()
    from matplotlib.gridspec import GridSpec
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    logits = np.asarray(result["audio_tag_logits"], dtype=np.float64)
    scores = 1.0 / (1.0 + np.exp(-logits))
    top = np.argsort(-scores.max(axis=0), kind="stable")[: min(num_labels, scores.shape[1])]
    names = display_label_names(label_names)
    windows = result["audio_tags"]
    edges = np.array([window["timestamp"][0] for window in windows] + [windows[-1]["timestamp"][1]], dtype=float)
    duration = float(edges[-1])
    row_seconds = row_seconds_for(duration - edges[0])
    num_rows = max(1, math.ceil((duration - edges[0]) / row_seconds - 1e-9))
    segments = transcript_segments(result)

    heat_height = 0.22 * max(len(top), 1)
    text_height = 0.75
    gap_height = 0.45  # room for a row's time labels above the next row
    title_height = 0.3 if title else 0.0
    height = 0.35 + title_height + num_rows * (heat_height + text_height) + (num_rows - 1) * gap_height + 0.5
    figure = plt.figure(figsize=(FIGURE_WIDTH_IN, height), dpi=DPI)
    height_ratios = []
    for row in range(num_rows):
        height_ratios += [heat_height, text_height] + ([gap_height] if row < num_rows - 1 else [])
    grid = GridSpec(
        len(height_ratios), 2, figure=figure, width_ratios=[1.0, 0.012], height_ratios=height_ratios, wspace=0.015,
        hspace=0.0, left=0.17, right=0.94, top=1 - (0.35 + title_height) / height, bottom=0.5 / height,
    )  # fmt: skip
    rows, mesh = [], None
    for row in range(num_rows):
        start = edges[0] + row * row_seconds
        end = min(start + row_seconds, duration)
        heat_axis = figure.add_subplot(grid[3 * row, 0])
        text_axis = figure.add_subplot(grid[3 * row + 1, 0], sharex=heat_axis)
        row_edges, row_scores = _row_grid(edges, scores, start, end)
        mesh = heat_axis.pcolormesh(
            row_edges, np.arange(len(top) + 1), row_scores[:, top].T, vmin=0.0, vmax=1.0, cmap="magma"
        )
        heat_axis.set_yticks(np.arange(len(top)) + 0.5, [names[index] for index in top], fontsize=8)
        heat_axis.invert_yaxis()
        heat_axis.tick_params(axis="x", labelbottom=False)

        text_axis.set_ylim(0, 3)
        text_axis.set_yticks([])
        pixels_per_second = FIGURE_WIDTH_IN * DPI * (0.94 - 0.17) / row_seconds
        for index, (seg_start, seg_end, text) in enumerate(segments):
            if seg_end <= start or seg_start >= end:
                continue
            level = 2 - index % 3
            text_axis.broken_barh([(seg_start, max(seg_end - seg_start, 0.05))], (level + 0.1, 0.8), alpha=0.25)
            if (seg_end - seg_start) * pixels_per_second >= 30:  # room for a few characters
                text_axis.text(max(seg_start, start), level + 0.5, text, fontsize=7, va="center", clip_on=True)
        # after every artist is in (bars would autoscale the shared axis): the same length of time is the same
        # width in every row, the last row included
        text_axis.set_xlim(start, start + row_seconds, auto=False)
        text_axis.xaxis.set_major_locator(MultipleLocator(_tick_step(row_seconds)))
        text_axis.xaxis.set_major_formatter(FuncFormatter(format_time))
        text_axis.tick_params(axis="x", labelsize=8)
        if row == num_rows - 1:
            unit = "h:mm:ss" if duration >= 3600 else "m:ss" if duration >= 60 else "s"
            text_axis.set_xlabel(f"time ({unit})")
        rows.append((heat_axis, text_axis))
    colorbar_axis = figure.add_subplot(grid[0, 1])
    figure.colorbar(mesh, cax=colorbar_axis, label="probability")
    colorbar_axis.yaxis.label.set_size(8)
    colorbar_axis.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    figure.colorbar_axis = colorbar_axis
    return figure, rows


def plot_tags(
    result: dict, label_names: list[str], path: str | Path, num_labels: int = 10, title: str | None = None
) -> Path:
    """Draws `result["audio_tag_logits"]` `(num_windows, num_labels)` as probabilities of the `num_labels` labels
    with the highest peak, window by window on the time axis, and the transcript segments in a strip below, and saves
    it to `path` (PNG at [`DPI`])."""
    plt = _pyplot()
    figure, _ = tag_figure(result, label_names, num_labels=num_labels, title=title)
    path = Path(path)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


__all__ = ["PlottingUnavailable", "display_label_names", "format_time", "plot_tags", "row_seconds_for", "tag_figure"]
