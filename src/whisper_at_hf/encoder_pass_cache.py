"""`EncoderPassCache`: encoder passes already made, handed explicitly to the calls that may reuse them.

The model's `generate(..., encoder_pass_cache=cache)` passes it down through generate's model kwargs to the encoder
(and to Whisper's language detection), which answers calls on windows the cache holds. It is made per call, read-only,
and never stored on the model, so concurrent calls sharing one model cannot see each other's passes. Its own module
so the pipeline can build one without importing the model.
"""

from __future__ import annotations

from typing import Any

import torch


class EncoderPassCache:
    """Encoder passes made on known 30 s windows.

    Args:
        input_features: `(n, num_mel_bins, 3000)`, the windows the pass ran on.
        encoder_outputs: the pass on them (`last_hidden_state` `(n, 1500, d_model)`, and `pooled_hidden_states`
            `(n, num_layers, 75, d_model)` when the cache should also answer `model.encode()`).
    """

    def __init__(self, input_features: torch.Tensor, encoder_outputs: Any):
        last_hidden_state = encoder_outputs[0]
        if input_features.shape[0] != last_hidden_state.shape[0]:
            raise ValueError(
                f"{input_features.shape[0]} windows of features but {last_hidden_state.shape[0]} encoder states."
            )
        self.input_features = input_features
        self.last_hidden_state = last_hidden_state
        self.pooled_hidden_states = getattr(encoder_outputs, "pooled_hidden_states", None)

    def lookup(self, features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """`(last_hidden_state, pooled_hidden_states or None)` for `features` `(b, num_mel_bins, 3000)` when each of
        its rows is one of the held windows (in any order: the batch, a subset of it, windows of long audio)."""
        held = self.input_features
        if features is None or features.dim() != 3 or features.shape[1:] != held.shape[1:]:
            return None
        if features.shape == held.shape and torch.equal(features, held):
            return self.last_hidden_state, self.pooled_hidden_states
        rows = []
        for row in features:
            match = next((index for index, window in enumerate(held) if torch.equal(row, window)), None)
            if match is None:
                return None
            rows.append(match)
        index = torch.tensor(rows, device=self.last_hidden_state.device)
        pooled = None if self.pooled_hidden_states is None else self.pooled_hidden_states[index]
        return self.last_hidden_state[index], pooled


__all__ = ["EncoderPassCache"]
