"""The tag timeline: pooled encoder frames on absolute time, cut into `at_time_res` windows.

One place for the window arithmetic that the head, `model.tag()` and the pipeline share. Pooled frame `p` covers
`[p * frame_seconds, (p + 1) * frame_seconds)` of the input (0.4 s for Whisper: 20 encoder frames x 20 ms); a window
of `window` pooled frames is `at_time_res` seconds; windows start at time 0, the last one is completed with the
frames that follow it in its own 30 s pass (Whisper's padding, as in a single pass) and then with zeros.

Depends on torch only (it is copied beside saved checkpoints with the pipeline's code).
"""

from __future__ import annotations

import math
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
        if span.start != self._next_frame:
            raise RuntimeError(
                f"pooled frames arrive out of order: expected frame {self._next_frame}, got {span.start}."
            )
        first, last = span.start - span.offset, span.stop - span.offset
        piece = pooled[:, first:last]
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


__all__ = [
    "PooledSpan",
    "WindowAssembler",
    "num_windows",
    "pass_spans",
    "windows_of",
]
