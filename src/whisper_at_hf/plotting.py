"""`NAME.tags.png`: a time x label heat map of a result's strongest labels, its sound events as bars beneath (one
lane per class) and its transcript segments below them (each text cut with `…` to its bar).

Layout: the heat map, the event strip and the transcript strip of a row share one time axis and the same horizontal
pixel extent; the colour bar has its own axis beside them, so it takes no width from either. A recording longer than
one row wraps into up to [`MAX_ROWS`] rows of equal length in a figure of fixed width, and windows narrower than a
couple of pixels are merged (maximum score per merged column) so 10 s and 2 h both stay readable.

matplotlib is an optional dependency (`pip install whisper-at-hf[plot]`).
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from .captions import transcript_segments
from .configuration_whisper_at import AUDIOSET_NUM_LABELS
from .file_utils import atomic_write
from .original_format import read_original_label_names

FIGURE_WIDTH_IN = 14.0
DPI = 100
MAX_ROWS = 8
# row lengths (seconds) a recording is wrapped into: the shortest that keeps it within MAX_ROWS
ROW_SECONDS = (30, 60, 120, 300, 600, 900, 1200, 1800, 3600)
MAX_COLUMNS_PER_ROW = 600  # heat-map columns per row (about 2 px each at the figure's width)
MAX_EVENT_LANES = 8  # classes drawn in the event strip (those with the strongest events)
AXES_LEFT, AXES_RIGHT = 0.17, 0.94  # the time axes' horizontal extent (figure fraction)
TEXT_PADDING_PX = 3.0  # between a transcript bar's edges and its text
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
    generic = all(
        (match := _GENERIC_LABEL.match(str(name))) and int(match.group(1)) == index
        for index, name in enumerate(label_names)
    )
    if len(label_names) != AUDIOSET_NUM_LABELS or not generic:
        return list(label_names)
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


class _Layout:
    """Heights (inches) of a figure's parts: per row of time a heat map, an event strip (when there are events) and
    the transcript strip, a gap between rows for the time labels."""

    def __init__(self, num_labels: int, num_lanes: int, num_rows: int, title: bool):
        self.heat = 0.22 * max(num_labels, 1)
        self.events = 0.2 * num_lanes + 0.1 if num_lanes else 0.0
        self.text = 0.75
        self.gap = 0.45
        self.top = 0.35 + (0.3 if title else 0.0)
        self.bottom = 0.5
        self.num_rows = num_rows

    @property
    def height(self) -> float:
        rows = self.num_rows * (self.heat + self.events + self.text) + (self.num_rows - 1) * self.gap
        return self.top + rows + self.bottom

    def ratios(self) -> list[float]:
        """GridSpec height ratios: `heat, events, text` per row (`events` 0 when there are none), `gap` between."""
        out: list[float] = []
        for row in range(self.num_rows):
            out += [self.heat, max(self.events, 1e-6), self.text] + ([self.gap] if row < self.num_rows - 1 else [])
        return out


def _event_lanes(events: list[dict], max_lanes: int = MAX_EVENT_LANES) -> list[int]:
    """The classes of `events` that get a lane in the event strip: the `max_lanes` with the highest peak score,
    in order of their first event."""
    best: dict[int, float] = {}
    for event in events:
        best[int(event["label_id"])] = max(best.get(int(event["label_id"]), 0.0), float(event["score"]))
    kept = set(sorted(best, key=lambda label: -best[label])[:max_lanes])
    return [label for label in best if label in kept]


def tag_figure(result: dict, label_names: list[str], num_labels: int = 10, title: str | None = None):
    """Builds the figure of [`plot_tags`]; returns `(figure, rows)` where `rows` is a list of
    `(heat_axis, transcript_axis)` pairs (one per row of time), `figure.event_axes` the rows' event strips (empty
    when the result has no events) and `figure.colorbar_axis` the colour bar's axis."""
    plt = _pyplot()
    from matplotlib.gridspec import GridSpec

    logits = np.asarray(result["audio_tag_logits"], dtype=np.float64)
    scores = 1.0 / (1.0 + np.exp(-logits))
    top = np.argsort(-scores.max(axis=0), kind="stable")[: min(num_labels, scores.shape[1])]
    names = display_label_names(label_names)
    windows = result["audio_tags"]
    edges = np.array([window["timestamp"][0] for window in windows] + [windows[-1]["timestamp"][1]], dtype=float)
    duration = float(edges[-1])
    row_seconds = row_seconds_for(duration - edges[0])
    num_rows = max(1, math.ceil((duration - edges[0]) / row_seconds - 1e-9))
    events = list(result.get("events") or [])
    lanes = _event_lanes(events)
    layout = _Layout(len(top), len(lanes), num_rows, bool(title))
    figure = plt.figure(figsize=(FIGURE_WIDTH_IN, layout.height), dpi=DPI)
    grid = GridSpec(
        len(layout.ratios()), 2, figure=figure, width_ratios=[1.0, 0.012], height_ratios=layout.ratios(),
        wspace=0.015, hspace=0.0, left=AXES_LEFT, right=AXES_RIGHT, top=1 - layout.top / layout.height,
        bottom=layout.bottom / layout.height,
    )  # fmt: skip
    rows, event_axes, mesh = [], [], None
    segments = transcript_segments(result)
    for row in range(num_rows):
        start = edges[0] + row * row_seconds
        end = min(start + row_seconds, duration)
        heat_axis = figure.add_subplot(grid[4 * row, 0])
        text_axis = figure.add_subplot(grid[4 * row + 2, 0], sharex=heat_axis)
        mesh = _draw_heat(heat_axis, *_row_grid(edges, scores, start, end), top, names)
        if lanes:
            event_axis = figure.add_subplot(grid[4 * row + 1, 0], sharex=heat_axis)
            _draw_events(event_axis, events, lanes, names, start, end)
            event_axes.append(event_axis)
        _time_axis(text_axis, start, row_seconds, duration if row == num_rows - 1 else None)
        _draw_transcript(figure, text_axis, segments, start, end)
        rows.append((heat_axis, text_axis))
    colorbar_axis = figure.add_subplot(grid[0, 1])
    figure.colorbar(mesh, cax=colorbar_axis, label="probability")
    colorbar_axis.yaxis.label.set_size(8)
    colorbar_axis.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=10, y=1 - 0.12 / layout.height, va="top")
    figure.colorbar_axis = colorbar_axis
    figure.event_axes = event_axes
    return figure, rows


def _draw_heat(axis, row_edges: np.ndarray, row_scores: np.ndarray, top: np.ndarray, names: list[str]):
    mesh = axis.pcolormesh(row_edges, np.arange(len(top) + 1), row_scores[:, top].T, vmin=0.0, vmax=1.0, cmap="magma")
    axis.set_yticks(np.arange(len(top)) + 0.5, [names[index] for index in top], fontsize=8)
    axis.invert_yaxis()
    axis.tick_params(axis="x", labelbottom=False)
    return mesh


def _draw_events(
    axis, events: list[dict], lanes: list[int], names: list[str], start: float, end: float
) -> None:
    """One lane per class of `lanes` (top to bottom), a bar per event, darker for a higher score."""
    import matplotlib

    colours = matplotlib.colormaps["tab10"]
    for lane, label_id in enumerate(lanes):
        spans = [
            (float(e["start"]), float(e["end"]) - float(e["start"]), float(e["score"]))
            for e in events
            if int(e["label_id"]) == label_id and float(e["end"]) > start and float(e["start"]) < end
        ]
        for begin, width, score in spans:
            axis.broken_barh([(begin, width)], (lane + 0.15, 0.7), color=colours(lane % 10), alpha=0.35 + 0.65 * score)
    axis.set_ylim(len(lanes), 0)
    axis.set_yticks(np.arange(len(lanes)) + 0.5, [_event_name(label_id, names) for label_id in lanes], fontsize=7)
    axis.tick_params(axis="x", labelbottom=False, length=0)


def _event_name(label_id: int, names: list[str]) -> str:
    return names[label_id] if 0 <= label_id < len(names) else str(label_id)


def _draw_transcript(figure, axis, segments: list, start: float, end: float) -> None:
    """Each segment of the row as a bar on one of three levels, its text inside the bar (cut with `…` to the bar's
    visible width: never past the bar, never past the row's end). Needs the axis' final time limits."""
    axis.set_ylim(0, 3)
    axis.set_yticks([])
    renderer = figure.canvas.get_renderer()
    to_pixels = axis.transData.transform
    for index, (seg_start, seg_end, text) in enumerate(segments):
        if seg_end <= start or seg_start >= end:
            continue
        level = 2 - index % 3
        axis.broken_barh([(seg_start, max(seg_end - seg_start, 0.05))], (level + 0.1, 0.8), alpha=0.25)
        left, right = to_pixels((max(seg_start, start), 0))[0], to_pixels((min(seg_end, end), 0))[0]
        room = right - left - 2 * TEXT_PADDING_PX
        if room < 30 or not text:  # no room for a few characters
            continue
        x = axis.transData.inverted().transform((left + TEXT_PADDING_PX, 0))[0]
        _fit_text(axis.text(x, level + 0.5, text, fontsize=7, va="center"), text, room, renderer)


def _fit_text(label, text: str, room: float, renderer) -> None:
    """Shortens `label` (showing `text`) to the longest prefix, with `…`, whose width is at most `room` pixels."""
    if label.get_window_extent(renderer).width <= room:
        return
    low, high = 0, len(text)  # the longest prefix that fits lies in [low, high)
    while high - low > 1:
        middle = (low + high) // 2
        label.set_text(text[:middle].rstrip() + "…")
        if label.get_window_extent(renderer).width <= room:
            low = middle
        else:
            high = middle
    label.set_text(text[:low].rstrip() + "…" if low else "")


def _time_axis(axis, start: float, row_seconds: float, duration: float | None) -> None:
    """Fixed limits, autoscaling off (bars drawn later must not widen the shared axis): the same length of time is
    the same width in every row, the last row (the one given `duration`, which gets the axis label) included."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    axis.set_xlim(start, start + row_seconds, auto=False)
    axis.xaxis.set_major_locator(MultipleLocator(_tick_step(row_seconds)))
    axis.xaxis.set_major_formatter(FuncFormatter(format_time))
    axis.tick_params(axis="x", labelsize=8)
    if duration is not None:
        unit = "h:mm:ss" if duration >= 3600 else "m:ss" if duration >= 60 else "s"
        axis.set_xlabel(f"time ({unit})")


def plot_tags(
    result: dict, label_names: list[str], path: str | Path, num_labels: int = 10, title: str | None = None
) -> Path:
    """Draws `result["audio_tag_logits"]` `(num_windows, num_labels)` as probabilities of the `num_labels` labels
    with the highest peak, window by window on the time axis, `result["events"]` (if any) as bars beneath and the
    transcript segments in a strip below, and saves it to `path` (PNG at [`DPI`], written atomically)."""
    plt = _pyplot()
    figure, _ = tag_figure(result, label_names, num_labels=num_labels, title=title)
    path = Path(path)
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, dpi=DPI, format="png")
    finally:
        plt.close(figure)
    atomic_write(path, buffer.getvalue())
    return path


__all__ = ["PlottingUnavailable", "display_label_names", "format_time", "plot_tags", "row_seconds_for", "tag_figure"]
