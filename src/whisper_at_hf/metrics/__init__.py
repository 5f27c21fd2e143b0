"""`evaluate` metric modules shipped with the package; they load offline by path."""

from pathlib import Path

AUDIO_TAGGING_METRIC = str(Path(__file__).resolve().parent / "audio_tagging" / "audio_tagging.py")


def load_audio_tagging_metric(**kwargs):
    """`evaluate.load` of the macro-mAP / accuracy metric, from the package (no network)."""
    import evaluate

    return evaluate.load(AUDIO_TAGGING_METRIC, **kwargs)


__all__ = ["AUDIO_TAGGING_METRIC", "load_audio_tagging_metric"]
