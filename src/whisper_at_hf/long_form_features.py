"""`LongFormFeatures`: Whisper's log-mel features of a whole long input, computed one window at a time on demand.

Whisper's sequential long-form `generate` reads its input features only by slicing one `(1, mel, <= 3000)` window
at a seek position (and the first 3000 frames for language detection). This object has the features' shape and
answers those slices, so hours of audio never have their whole log-mel (230 MB for 2 h) nor the feature
extractor's STFT intermediates (~2.4 GB per hour) in memory.

The values are those of the feature extractor on the whole input (`truncation=False, padding="longest"`), not of
each window on its own:
- frame `i` is the STFT of samples `[160 i - 200, 160 i + 200)` (`center=True`, reflected at the input's ends), so
  a slice of frames is computed from exactly the samples around it;
- the floor `max(log_spec) - 8` is the input's global maximum, found by one streaming pass over the whole input
  when the object is built (per-window maxima would change the quietest bins of every window whose own maximum is
  below the global one, and with them the transcript).

upstream-coupled: the feature extractor's torch path (`_torch_extract_fbank_features`) and the way
`WhisperGenerationMixin.generate` reads `input_features` (shape, device, 3-D slices); both pinned in
tests/test_upstream_pins.py (test_long_form_features_*).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# Frames per block of the global-maximum pass and of one computed slice (a 30 s window).
_BLOCK_FRAMES = 3000


class LongFormFeatures:
    """The `(1, num_mel_bins, num_samples // hop_length)` log-mel features of `audio`, computed per slice.

    Args:
        feature_extractor: the pipeline's `WhisperFeatureExtractor` (its `n_fft`, `hop_length`, `mel_filters`).
        audio: anything with `num_samples` and `read(start, stop) -> (n,) float32` at the extractor's rate (an
            [`Audio`] or a [`StreamedAudio`]).
        dtype: the dtype slices are returned in (the model's); computed in float32.
    """

    def __init__(self, feature_extractor: Any, audio: Any, dtype: torch.dtype | None = None):
        self._audio = audio
        self._n_fft, self._hop = feature_extractor.n_fft, feature_extractor.hop_length
        if getattr(feature_extractor, "dither", 0.0):
            raise ValueError("LongFormFeatures computes features without dither; the feature extractor has dither.")
        self._mel_filters = torch.from_numpy(np.asarray(feature_extractor.mel_filters, dtype=np.float32)).T
        self._window = torch.hann_window(self._n_fft)
        num_frames = audio.num_samples // self._hop  # the STFT's last frame is dropped, as the extractor does
        self.shape = torch.Size((1, self._mel_filters.shape[0], num_frames))
        self.dtype = dtype or torch.float32
        self.device = torch.device("cpu")
        self._floor = max(self._log_mel(start, min(start + _BLOCK_FRAMES, num_frames)).max().item()
                          for start in range(0, num_frames, _BLOCK_FRAMES)) - 8.0

    def dim(self) -> int:
        return 3

    def frames(self, start: int, stop: int) -> torch.Tensor:
        """Features of frames `[start, stop)` (clipped to the input): `(num_mel_bins, n)`."""
        start, stop = max(start, 0), min(stop, self.shape[-1])
        if stop <= start:
            return torch.zeros(self.shape[1], 0, dtype=self.dtype)
        log_spec = torch.maximum(self._log_mel(start, stop), torch.tensor(self._floor))
        return ((log_spec + 4.0) / 4.0).to(self.dtype)

    def __getitem__(self, key: Any) -> torch.Tensor:
        """`features[rows, :, a:b]` (rows selecting the one item, as `generate` slices) or `features[..., a:b]`:
        `(1, num_mel_bins, n)`."""
        if isinstance(key, tuple) and len(key) == 2 and key[0] is Ellipsis:  # features[..., a:b]
            key = (slice(None), slice(None), key[1])
        if not isinstance(key, tuple) or len(key) != 3 or key[1] != slice(None) or not isinstance(key[2], slice):
            raise TypeError(f"LongFormFeatures only answers [rows, :, start:stop] slices, not {key!r}.")
        rows, _, frames = key
        if range(self.shape[0])[rows] != range(1):
            raise IndexError(f"LongFormFeatures holds one item; rows {rows!r} select another.")
        start, stop, step = frames.indices(self.shape[-1])
        if step != 1:
            raise TypeError("LongFormFeatures slices frames with step 1 only.")
        return self.frames(start, stop)[None]

    def materialize(self) -> torch.Tensor:
        """All features at once `(1, num_mel_bins, num_frames)` (memory linear in the input's length)."""
        return self.frames(0, self.shape[-1])[None]

    def _log_mel(self, start: int, stop: int) -> torch.Tensor:
        """`log10` mel power of frames `[start, stop)`, before the floor: `(num_mel_bins, stop - start)`."""
        half, total = self._n_fft // 2, self._audio.num_samples
        low, high = start * self._hop - half, (stop - 1) * self._hop - half + self._n_fft
        samples = self._audio.read(max(low, 0), min(high, total))
        pieces = []
        if low < 0:  # reflected about sample 0, as torch.stft(center=True) pads
            pieces.append(samples[1 : 1 - low][::-1])
        pieces.append(samples)
        if high > total:  # reflected about the last sample
            end = samples.shape[0] - 1
            pieces.append(samples[end - (high - total) : end][::-1])
        signal = torch.from_numpy(np.ascontiguousarray(np.concatenate(pieces), dtype=np.float32))
        stft = torch.stft(signal, self._n_fft, self._hop, window=self._window, center=False, return_complex=True)
        magnitudes = (stft.abs() ** 2).contiguous()
        return torch.clamp(self._mel_filters @ magnitudes, min=1e-10).log10()


__all__ = ["LongFormFeatures"]
