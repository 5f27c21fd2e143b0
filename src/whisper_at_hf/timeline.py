"""The tag timeline: pooled encoder frames on absolute time, cut into `at_time_res` windows (and, for sound events,
into short windows sliding along the frames), and the bookkeeping of a call's 30 s tag passes.

One place for the window arithmetic that the head, `model.tag()` and the pipeline share. Pooled frame `p` covers
`[p * frame_seconds, (p + 1) * frame_seconds)` of the input (0.4 s for Whisper: 20 encoder frames x 20 ms); a window
of `window` pooled frames is `at_time_res` seconds; windows start at time 0, the last one is completed with the
frames that follow it in its own 30 s pass (Whisper's padding, as in a single pass) and then with zeros.

Depends on torch only (it is copied beside saved checkpoints with the pipeline's code).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PooledSpan:
    """The pooled frames `[start, stop)` of an input's timeline that one 30 s encoder pass supplies.

    Args:
        offset: absolute pooled frame of the pass's frame 0 (its start in the input, in pooled frames).
        start / stop: the absolute frames this pass owns (the others belong to overlapping passes).
        final: whether this pass owns the input's last frame (the last window is then completed and emitted).
    """

    offset: int
    start: int
    stop: int
    final: bool


def num_windows(num_frames: int, window: int) -> int:
    """Windows of `window` pooled frames that cover `num_frames` frames (at least one)."""
    return max(math.ceil(num_frames / window), 1)


def windows_of(pooled: torch.Tensor, window: int) -> torch.Tensor:
    """`(batch, num_layers, frames, d)` -> `(batch, num_windows, num_layers, window, d)`, last window zero-padded."""
    batch, num_layers, frames, dim = pooled.shape
    count = num_windows(frames, window)
    padded = F.pad(pooled, (0, 0, 0, count * window - frames))
    return padded.view(batch, num_layers, count, window, dim).transpose(1, 2)


def pass_spans(total_frames: int, frames_per_pass: int) -> list[PooledSpan]:
    """Back-to-back 30 s passes (`frames_per_pass` pooled frames each) covering `total_frames` pooled frames."""
    spans = []
    for offset in range(0, max(total_frames, 1), frames_per_pass):
        stop = min(offset + frames_per_pass, total_frames)
        spans.append(PooledSpan(offset, offset, stop, offset + frames_per_pass >= total_frames))
    return spans


def _pass_frames(pooled: torch.Tensor, span: PooledSpan, expected_start: int) -> tuple[torch.Tensor, int]:
    """The frames `[span.start, span.stop)` of one pass's pooled states `(num_layers, frames, d)`, and the index in
    `pooled` where they end. Passes of one input arrive in time order: each starts where the last one stopped."""
    if span.start != expected_start:
        raise RuntimeError(f"pooled frames arrive out of order: expected frame {expected_start}, got {span.start}.")
    last = span.stop - span.offset
    return pooled[:, span.start - span.offset : last], last


class WindowAssembler:
    """One input's timeline, fed pass by pass in time order; hands out complete windows as soon as they exist.

    Only the frames of a window not yet complete are kept between pushes, so memory stays flat for hours of audio.
    """

    def __init__(self, window: int):
        self.window = window
        self._pending: torch.Tensor | None = None  # (num_layers, frames < window, d)
        self._next_frame = 0

    def push(self, pooled: torch.Tensor, span: PooledSpan) -> torch.Tensor:
        """`pooled`: `(num_layers, frames, d)`, one pass's pooled states whose frame 0 is `span.offset`.

        Returns the windows completed by this pass, `(n, num_layers, window, d)` (`n` may be 0).
        """
        piece, last = _pass_frames(pooled, span, self._next_frame)
        pending = piece if self._pending is None else torch.cat([self._pending, piece], dim=1)
        self._next_frame = span.stop
        if span.final:
            count = num_windows(pending.shape[1], self.window)
            missing = count * self.window - pending.shape[1]
            pending = torch.cat([pending, pooled[:, last : last + missing]], dim=1)  # the pass's own padding frames
            pending = F.pad(pending, (0, 0, 0, count * self.window - pending.shape[1]))
            self._pending = None
        else:
            count = pending.shape[1] // self.window
            self._pending = pending[:, count * self.window :]
            pending = pending[:, : count * self.window]
        num_layers, _, dim = pending.shape
        return pending.reshape(num_layers, count, self.window, dim).transpose(0, 1)


def pass_features(features: torch.Tensor, span: PooledSpan, frames_per_pass: int, segment_frames: int) -> torch.Tensor:
    """The log-mel features `(..., mel, segment_frames)` of the 30 s pass `span` of `(..., mel, n_frames)` features,
    zero-padded past their end (the one place audio is cut into aligned 30 s passes)."""
    start = span.offset * segment_frames // frames_per_pass
    segment = features[..., start : start + segment_frames]
    return F.pad(segment, (0, segment_frames - segment.shape[-1]))


class SlidingWindows:
    """One input's event windows, fed pass by pass in time order: curve point `j` (pooled frames `[j hop, (j + 1)
    hop)`) gets the `window` frames centred on it, moved inside the input at its ends (so every window holds only
    audio when the input is at least `window` frames long; a shorter input's one window is padded as the head's).

    Keeps at most about `window` frames between pushes (flat memory for hours of audio).
    """

    def __init__(self, window: int, hop: int):
        if hop > window:
            raise ValueError(f"an event hop of {hop} frames is longer than its window of {window} frames.")
        self.window, self.hop = window, hop
        self._frames: torch.Tensor | None = None  # (num_layers, n, d): absolute frames from `self._base`
        self._base = 0
        self._next_frame = 0
        self._next_point = 0

    def _start(self, point: int, total: int | None = None) -> int:
        start = max(point * self.hop - (self.window - self.hop) // 2, 0)
        return start if total is None else max(min(start, total - self.window), 0)

    def push(self, pooled: torch.Tensor, span: PooledSpan) -> torch.Tensor:
        """`pooled`: `(num_layers, frames, d)`, one pass's pooled states whose frame 0 is `span.offset`.

        Returns the windows of the curve points completed by this pass, `(n, num_layers, window, d)`.
        """
        piece, last = _pass_frames(pooled, span, self._next_frame)
        frames = piece if self._frames is None else torch.cat([self._frames, piece], dim=1)
        self._next_frame = span.stop
        if span.final:
            total = span.stop
            points = range(self._next_point, max(math.ceil(total / self.hop), 1))
            starts = [self._start(point, total) for point in points]
            missing = max(starts, default=0) + self.window - (self._base + frames.shape[1])
            if missing > 0:  # an input shorter than one window: the pass's own padding frames, then zeros
                frames = torch.cat([frames, pooled[:, last : last + missing]], dim=1)
                frames = F.pad(frames, (0, 0, 0, missing - (frames.shape[1] - (total - self._base))))
        else:
            available, point, starts = self._base + frames.shape[1], self._next_point, []
            while self._start(point) + self.window <= available:
                starts.append(self._start(point))
                point += 1
        windows = [frames[:, start - self._base : start - self._base + self.window] for start in starts]
        self._next_point += len(starts)
        if span.final:
            self._frames = None
        else:  # keep what later windows may need (at the input's end they may move back up to `window` frames)
            keep = max(min(self._start(self._next_point), self._base + frames.shape[1] - self.window), self._base)
            self._frames, self._base = frames[:, keep - self._base :], keep
        num_layers, _, dim = pooled.shape
        return torch.stack(windows) if windows else pooled.new_zeros(0, num_layers, self.window, dim)


class InputTimeline:
    """One input's tag windows and (with `event_window`) its sliding event windows, fed the same passes."""

    def __init__(self, window: int, event_window: int | None = None, event_hop: int | None = None):
        self.windows = WindowAssembler(window)
        self.events = SlidingWindows(event_window, event_hop) if event_window else None

    def push(self, pooled: torch.Tensor, span: PooledSpan) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`(num_layers, frames, d)` -> (tag windows `(n, L, window, d)`, event windows `(m, L, event_window, d)`)."""
        event_windows = self.events.push(pooled, span) if self.events is not None else None
        return self.windows.push(pooled, span), event_windows


class CallTimelines:
    """Per-call state of the tag timelines: the timeline of the input whose 30 s passes are arriving.

    One is made for every pipeline call and handed to its forward steps, so calls sharing one pipeline (threads)
    never share a timeline. Passes of one input arrive in time order and inputs one after the other, so one current
    timeline suffices.
    """

    def __init__(self, window: int, event_window: int | None = None, event_hop: int | None = None):
        self.shape = (window, event_window, event_hop)
        self.current: InputTimeline | None = None

    def new_input(self) -> InputTimeline:
        return InputTimeline(*self.shape)

    def push(self, pooled: torch.Tensor, span: PooledSpan) -> tuple[torch.Tensor, torch.Tensor | None]:
        if span.start == 0:
            self.current = self.new_input()
        return self.current.push(pooled, span)


# `(windows (n, L, window, d), at_time_res) -> logits (n, 1, C)`: the model's head (`model.tag_pooled`).
Head = Callable[[torch.Tensor, float | None], torch.Tensor]


def run_head(head: Head, pieces: list[torch.Tensor | None], at_time_res: float | None, num_labels: int) -> list:
    """One head call for the windows of all batch items: `(n_i, L, window, d)` pieces (`None` for an item without
    windows) -> `(n_i, C)` logits per item (`None` stays `None`)."""
    present = [piece for piece in pieces if piece is not None]
    if present and sum(piece.shape[0] for piece in present):
        logits = head(torch.cat(present), at_time_res)[:, 0]  # (n, 1, C) -> (n, C)
    else:
        logits = torch.zeros(0, num_labels)
    results, position = [], 0
    for piece in pieces:
        if piece is None:
            results.append(None)
            continue
        results.append(logits[position : position + piece.shape[0]])
        position += piece.shape[0]
    return results


def tag_passes(
    head: Head,
    pooled: torch.Tensor,
    spans: list[PooledSpan | None],
    timelines: CallTimelines | list[InputTimeline],
    at_time_res: float | None,
    event_seconds: float | None,
    num_labels: int,
) -> tuple[list, list]:
    """Head logits for the windows (and event windows) each item's 30 s pass completes.

    Args:
        pooled: `(B, L, 75, d)` pooled states of the batch's passes.
        spans: per item its place on its input's timeline (`None`: the item is not tagged from this pass).
        timelines: the call's [`CallTimelines`], or one [`InputTimeline`] per item.
        event_seconds: the event window in seconds (`None` without events).
    Returns:
        per item tag logits `(n, C)` and event logits `(m, C)` (`None` where there are none).
    """
    tag_pieces, event_pieces = [], []
    for index, span in enumerate(spans):
        if span is None:
            tag_pieces.append(None)
            event_pieces.append(None)
            continue
        timeline = timelines[index] if isinstance(timelines, list) else timelines
        windows, event_windows = timeline.push(pooled[index], span)
        tag_pieces.append(windows)
        event_pieces.append(event_windows)
    tags = run_head(head, tag_pieces, at_time_res, num_labels)
    events = run_head(head, event_pieces, event_seconds, num_labels) if event_seconds else [None] * len(spans)
    return tags, events


__all__ = [
    "CallTimelines",
    "InputTimeline",
    "PooledSpan",
    "SlidingWindows",
    "WindowAssembler",
    "num_windows",
    "pass_features",
    "pass_spans",
    "run_head",
    "tag_passes",
    "windows_of",
]
