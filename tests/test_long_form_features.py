"""LongFormFeatures: per-slice log-mel equal to the feature extractor on the whole input (global floor included)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from conftest import SHARED_AUDIO, SHARED_MODELS

from whisper_at_hf.audio import Audio
from whisper_at_hf.long_form_features import LongFormFeatures

pytestmark = pytest.mark.needs_shared


@pytest.fixture(scope="module")
def extractor(shared_dir):
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor.from_pretrained(SHARED_MODELS / "whisper-tiny.en")


@pytest.fixture(scope="module")
def long_mix(shared_dir) -> np.ndarray:
    return soundfile.read(SHARED_AUDIO / "long_mix.wav", dtype="float32")[0]


def _whole(extractor, waveform: np.ndarray) -> torch.Tensor:
    return extractor(waveform, sampling_rate=16000, truncation=False, padding="longest", return_tensors="pt")[
        "input_features"
    ]


@pytest.mark.parametrize("length", [1424025, 16000 * 40 + 77, 16000 * 31])  # long_mix, odd and exact hop multiples
def test_slices_equal_the_whole_input_features(extractor, long_mix, length):
    waveform = np.resize(long_mix, length)
    whole = _whole(extractor, waveform)
    lazy = LongFormFeatures(extractor, Audio(waveform, 16000, "x"))
    assert lazy.shape == whole.shape
    frames = whole.shape[-1]
    for start, stop in [(0, 3000), (1234, 4234), (frames - 1000, frames + 500), (frames - 1, frames)]:
        torch.testing.assert_close(lazy[0:1, :, start:stop], whole[0:1, :, start:stop], rtol=0, atol=1e-6)
    torch.testing.assert_close(lazy[..., 10:20], whole[..., 10:20], rtol=0, atol=1e-6)
    torch.testing.assert_close(lazy[:, :, :3000], whole[:, :, :3000], rtol=0, atol=1e-6)


def test_the_floor_is_the_whole_inputs_maximum(extractor, long_mix):
    """A loud second half lifts the floor of the quiet first window: per-window features would differ there."""
    waveform = np.concatenate([long_mix[: 40 * 16000] * 1e-3, long_mix[: 40 * 16000]])
    lazy = LongFormFeatures(extractor, Audio(waveform, 16000, "x"))
    whole = _whole(extractor, waveform)
    alone = extractor(waveform[: 30 * 16000], sampling_rate=16000, return_tensors="pt")["input_features"]
    torch.testing.assert_close(lazy[:, :, :3000], whole[:, :, :3000], rtol=0, atol=1e-6)
    assert (lazy[:, :, :3000] - alone).abs().max() > 0.1  # what a per-window floor would have given


def test_only_generates_slices_are_answered(extractor, long_mix):
    lazy = LongFormFeatures(extractor, Audio(long_mix, 16000, "x"))
    with pytest.raises(TypeError, match="slices"):
        lazy[0]
    with pytest.raises(IndexError, match="one item"):
        lazy[1:2, :, 0:10]
    assert lazy.dtype == torch.float32 and lazy.device.type == "cpu"
    assert LongFormFeatures(extractor, Audio(long_mix, 16000, "x"), torch.float16)[:, :, :5].dtype == torch.float16
