"""`NAME.tags.png`: a time x label heat map of a result's strongest labels, with its transcript segments beneath.

matplotlib is an optional dependency (`pip install whisper-at-hf[plot]`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .writers import transcript_segments


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


def plot_tags(
    result: dict, label_names: list[str], path: str | Path, num_labels: int = 10, title: str | None = None
) -> Path:
    """Draws `result["audio_tag_logits"]` `(num_windows, num_labels)` as probabilities of the `num_labels` labels
    with the highest peak, window by window on the time axis, and the transcript segments in a strip below."""
    plt = _pyplot()
    logits = np.asarray(result["audio_tag_logits"], dtype=np.float64)
    scores = 1.0 / (1.0 + np.exp(-logits))
    top = np.argsort(-scores.max(axis=0))[: min(num_labels, scores.shape[1])]
    edges = [window["timestamp"][0] for window in result["audio_tags"]] + [result["audio_tags"][-1]["timestamp"][1]]
    segments = transcript_segments(result)

    figure, (heat_axis, text_axis) = plt.subplots(
        2, 1, figsize=(max(8.0, min(40.0, edges[-1] / 3 + 4)), 1.2 + 0.35 * len(top) + 1.2),
        gridspec_kw={"height_ratios": [max(len(top), 1), 2.5]}, sharex=True,
    )
    mesh = heat_axis.pcolormesh(edges, np.arange(len(top) + 1), scores[:, top].T, vmin=0.0, vmax=1.0, cmap="magma")
    heat_axis.set_yticks(np.arange(len(top)) + 0.5, [label_names[index] for index in top], fontsize=8)
    heat_axis.invert_yaxis()
    figure.colorbar(mesh, ax=heat_axis, label="probability", pad=0.01)
    if title:
        heat_axis.set_title(title, fontsize=10)

    text_axis.set_ylim(0, 3)
    text_axis.set_yticks([])
    for row, (start, end, text) in enumerate(segments):
        level = 2 - row % 3
        text_axis.broken_barh([(start, max(end - start, 0.05))], (level + 0.1, 0.8), alpha=0.25)
        text_axis.text(start, level + 0.5, text, fontsize=7, va="center", clip_on=True)
    text_axis.set_xlabel("time (s)")
    text_axis.set_xlim(edges[0], edges[-1])
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


__all__ = ["PlottingUnavailable", "plot_tags"]
