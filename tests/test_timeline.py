"""timeline: pooled frames on absolute time, windows, and the assembler that streams them."""

from __future__ import annotations

import pytest
import torch

from whisper_at_hf.timeline import (
    PooledSpan,
    WindowAssembler,
    num_windows,
    pass_spans,
    windows_of,
)


def test_windows_of_pads_the_last_window():
    pooled = torch.arange(2 * 3 * 7 * 4, dtype=torch.float32).view(2, 3, 7, 4)
    windows = windows_of(pooled, 5)
    assert windows.shape == (2, 2, 3, 5, 4)
    torch.testing.assert_close(windows[:, 0], pooled[:, :, :5])
    torch.testing.assert_close(windows[:, 1, :, :2], pooled[:, :, 5:])
    assert windows[:, 1, :, 2:].abs().sum() == 0
    assert num_windows(0, 5) == 1 and num_windows(10, 5) == 2 and num_windows(11, 5) == 3


def test_pass_spans_cover_the_timeline_back_to_back():
    spans = pass_spans(223, 75)
    assert spans == [PooledSpan(0, 0, 75, False), PooledSpan(75, 75, 150, False), PooledSpan(150, 150, 223, True)]
    assert pass_spans(20, 75) == [PooledSpan(0, 0, 20, True)]
    assert pass_spans(75, 75) == [PooledSpan(0, 0, 75, True)]


@pytest.mark.parametrize("window", [1, 7, 25, 75])
def test_assembler_streams_the_same_windows_as_the_whole_timeline(window):
    """Three 75-frame passes of an input of 200 frames: the streamed windows equal windowing the whole timeline,
    the last one completed with the last pass's own padding frames (then zeros past the pass)."""
    generator = torch.Generator().manual_seed(0)
    passes = [torch.randn(2, 75, 3, generator=generator) for _ in range(3)]
    timeline = torch.cat(passes, dim=1)  # (L, 225, d): frames 200..224 are the last pass's padding
    assembler = WindowAssembler(window)
    streamed = [assembler.push(pooled, span) for pooled, span in zip(passes, pass_spans(200, 75))]
    streamed = torch.cat(streamed)
    count = num_windows(200, window)
    expected = windows_of(timeline[None], window)[0, :count]
    assert streamed.shape == (count, 2, window, 3)
    torch.testing.assert_close(streamed, expected)


def test_assembler_takes_overlapping_chunks_by_ownership():
    """Chunks overlap; each supplies only the frames it owns, in order."""
    timeline = torch.randn(1, 120, 2)
    chunks = [
        (0, PooledSpan(0, 0, 62, False)),
        (50, PooledSpan(50, 62, 112, False)),
        (100, PooledSpan(100, 112, 120, True)),
    ]
    assembler = WindowAssembler(25)
    out = torch.cat([assembler.push(timeline[:, offset : offset + 75], span) for offset, span in chunks])
    torch.testing.assert_close(out, windows_of(timeline[None], 25)[0])
    with pytest.raises(RuntimeError, match="out of order"):
        WindowAssembler(25).push(timeline[:, :75], PooledSpan(0, 10, 20, False))

