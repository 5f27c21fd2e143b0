"""timeline: pooled frames on absolute time, windows, and the assembler that streams them."""

from __future__ import annotations

import pytest
import torch

from whisper_at_hf.timeline import (
    CallTimelines,
    PooledSpan,
    SlidingWindows,
    WindowAssembler,
    num_windows,
    pass_spans,
    tag_passes,
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



def _sliding_reference(timeline: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """Point j's window: `window` frames centred on frames [j hop, (j + 1) hop), moved inside the input."""
    total = timeline.shape[1]
    padded = torch.nn.functional.pad(timeline, (0, 0, 0, max(window - total, 0)))
    starts = [max(min(max(j * hop - (window - hop) // 2, 0), total - window), 0) for j in range(-(-total // hop))]
    return torch.stack([padded[:, start : start + window] for start in starts])


@pytest.mark.parametrize("window, hop", [(5, 1), (4, 2), (25, 1), (1, 1), (6, 3)])
def test_sliding_windows_across_passes_equal_windows_of_the_whole_timeline(window, hop):
    """Fed back-to-back 30 s passes (or overlapping chunk passes), the event windows are those of the whole timeline:
    windows straddling a pass boundary hold frames of both passes."""
    timeline = torch.randn(3, 223, 4)
    back_to_back = [(span, timeline[:, span.offset : span.offset + 75]) for span in pass_spans(223, 75)]
    overlapping = []  # chunks of 75 frames every 50, each owning its middle (as chunked decoding gives them)
    for offset in range(0, 223, 50):
        final = offset + 75 >= 223
        own = PooledSpan(offset, 0 if offset == 0 else offset + 12, 223 if final else offset + 62, final)
        overlapping.append((own, timeline[:, offset : offset + 75]))
        if final:
            break
    for passes in (back_to_back, overlapping):
        sliding = SlidingWindows(window, hop)
        out = torch.cat([sliding.push(pooled, span) for span, pooled in passes])
        torch.testing.assert_close(out, _sliding_reference(timeline, window, hop))


def test_sliding_windows_of_a_short_input_use_the_pass_padding_then_zeros():
    pooled = torch.randn(2, 75, 3)  # one pass; the input holds its first 3 frames
    out = SlidingWindows(5, 1).push(pooled, PooledSpan(0, 0, 3, True))
    assert out.shape == (3, 2, 5, 3)
    for point in range(3):
        torch.testing.assert_close(out[point], pooled[:, :5])  # the pass's own padding frames, like the head's
    with pytest.raises(ValueError, match="longer than its window"):
        SlidingWindows(2, 3)
    with pytest.raises(RuntimeError, match="out of order"):
        SlidingWindows(5, 1).push(pooled, PooledSpan(0, 10, 20, False))


def test_tag_passes_run_one_head_call_for_tags_and_one_for_events():
    calls = []

    def head(windows: torch.Tensor, at_time_res: float | None) -> torch.Tensor:
        calls.append((windows.shape, at_time_res))
        return windows.mean(dim=(1, 2, 3))[:, None, None].expand(-1, 1, 2)

    timelines = CallTimelines(25, 5, 1)
    pooled = torch.randn(2, 3, 75, 4)
    spans = [PooledSpan(0, 0, 40, True), None]
    tags, events = tag_passes(head, pooled, spans, timelines, 10.0, 2.0, 2)
    assert tags[0].shape == (2, 2) and events[0].shape == (40, 2) and tags[1] is None and events[1] is None
    assert calls == [((2, 3, 25, 4), 10.0), ((40, 3, 5, 4), 2.0)]
    tags, events = tag_passes(head, pooled, spans, CallTimelines(25), 10.0, None, 2)
    assert events == [None, None] and len(calls) == 3
