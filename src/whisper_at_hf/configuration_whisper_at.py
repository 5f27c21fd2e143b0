"""Whisper-AT configuration: a Whisper config plus every shape and switch of the TL-TR audio-tagging head."""

from __future__ import annotations

import copy
from typing import Any

from transformers import WhisperConfig

from .option_rules import window_frames

# AudioSet ontology size used by every released Whisper-AT head.
AUDIOSET_NUM_LABELS = 527
# Whisper's mel frame rate and its encoder's 2x convolutional downsampling.
MEL_FRAMES_PER_SECOND = 100
ENCODER_DOWNSAMPLING = 2


class WhisperATConfig(WhisperConfig):
    r"""
    Configuration of [`WhisperForAudioTaggingAndASR`]: every [`WhisperConfig`] argument, plus the TL-TR
    (time- and layer-wise transformer) audio-tagging head that reads the encoder's per-layer states.

    Args:
        at_low_dim (`int`, *optional*, defaults to `None`):
            `None` for the full-width head (TL-TR, works at `d_model`); an integer (512 in the released
            "low compute" heads) first applies LayerNorm + Linear `d_model -> at_low_dim` (TL-TR-512).
        at_time_heads (`int`, *optional*, defaults to 1):
            Attention heads of the time transformer block (runs over the pooled frames of one window and layer).
        at_layer_heads (`int`, *optional*, defaults to 8):
            Attention heads of the layer transformer block (runs over the encoder layers of one window).
        at_pool_stride (`int`, *optional*, defaults to 20):
            Encoder frames averaged into one pooled frame; 20 encoder frames = 0.4 s, so 30 s give 75 pooled frames.
        at_time_res (`float`, *optional*, defaults to 10.0):
            Default tagging window in seconds; a positive multiple of `at_pool_stride` frames (0.4 s).
            The released heads were trained at 10 s.
        at_num_layers (`int`, *optional*, defaults to `None`):
            Encoder layers the head reads; `None` means all `encoder_layers`.
        base_model_name_or_path (`str`, *optional*):
            The Whisper the head was attached to (head-only checkpoints load it from here).
        base_model_revision (`str`, *optional*):
            Revision of `base_model_name_or_path`, when known.
        num_labels / id2label / label2id:
            The tag classes; 527 AudioSet classes when not given.

    Example:

    ```python
    >>> from transformers import WhisperConfig
    >>> from whisper_at_hf import WhisperATConfig
    >>> config = WhisperATConfig.from_whisper_config(WhisperConfig(), at_low_dim=512)
    >>> config.at_window_frames(10.0)
    25
    ```
    """

    model_type = "whisper_at"

    at_low_dim: int | None = None
    at_time_heads: int = 1
    at_layer_heads: int = 8
    at_pool_stride: int = 20
    at_time_res: float = 10.0
    at_num_layers: int | None = None
    base_model_name_or_path: str | None = None
    base_model_revision: str | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        if self.id2label is None and kwargs.get("num_labels") is None:
            kwargs["num_labels"] = AUDIOSET_NUM_LABELS
        super().__post_init__(**kwargs)
        if self.at_num_layers is None:
            self.at_num_layers = self.encoder_layers
        if self.at_num_layers != self.encoder_layers:
            raise ValueError(
                f"at_num_layers={self.at_num_layers} but the encoder has encoder_layers={self.encoder_layers}; "
                "the TL-TR head reads every encoder layer."
            )
        if self.max_source_positions % self.at_pool_stride:
            raise ValueError(
                f"max_source_positions={self.max_source_positions} is not a multiple of at_pool_stride="
                f"{self.at_pool_stride}."
            )
        head_dim = self.at_hidden_size
        for name in ("at_time_heads", "at_layer_heads"):
            heads = getattr(self, name)
            if heads < 1 or head_dim % heads:
                raise ValueError(f"{name}={heads} must divide the head width {head_dim}.")
        self.at_time_res = float(self.at_time_res)
        self.at_window_frames(self.at_time_res)  # validates the default resolution

    @property
    def at_hidden_size(self) -> int:
        """Width the head's transformer blocks work at: `at_low_dim` if set, else `d_model`."""
        return self.at_low_dim if self.at_low_dim else self.d_model

    @property
    def at_pooled_frame_seconds(self) -> float:
        """Seconds covered by one pooled frame (0.4 s for Whisper)."""
        return self.at_pool_stride * ENCODER_DOWNSAMPLING / MEL_FRAMES_PER_SECOND

    @property
    def at_pooled_frames_per_window(self) -> int:
        """Pooled frames per 30 s encoder window (75 for Whisper)."""
        return self.max_source_positions // self.at_pool_stride

    def at_window_frames(self, at_time_res: float | None = None) -> int:
        """Pooled frames per tagging window for `at_time_res` seconds (25 for 10 s).

        Raises `ValueError` unless `at_time_res` is a positive multiple of the pooled frame (0.4 s) and at most
        what one encoder pass sees (30 s): a longer window means nothing to the head (and would only cost memory).
        """
        if at_time_res is None:
            at_time_res = self.at_time_res
        return window_frames(at_time_res, self.at_pooled_frame_seconds, self.at_pooled_frames_per_window)

    # ----- upstream-coupled: pinned by tests/test_upstream_pins.py::test_one_sided_text_config_is_a_deep_copy -------
    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> WhisperConfig:
        """As [`PretrainedConfig.get_text_config`], but a one-sided copy leaves the tag classes out.

        For a flat encoder-decoder config, transformers answers `decoder=True` (or `encoder=True`) with a deep copy of
        the whole config, and `generate` asks for it three times per call. The 527-class `id2label`/`label2id` make
        that copy ~6x Whisper's (~1 ms each, several % of a short clip's tagging cost); they belong to the tagging
        head, not to the text side, whose copy gets Whisper's default two labels instead.
        """
        if decoder == encoder:  # transformers returns `self` here: no copy to save
            return super().get_text_config(decoder=decoder, encoder=encoder)
        unlabeled = copy.copy(self)  # shallow: `self` is never modified, so concurrent callers are safe
        unlabeled.id2label = {0: "LABEL_0", 1: "LABEL_1"}
        unlabeled.label2id = {"LABEL_0": 0, "LABEL_1": 1}
        return super(WhisperATConfig, unlabeled).get_text_config(decoder=decoder, encoder=encoder)

    @classmethod
    def from_whisper_config(cls, whisper_config: WhisperConfig, **head_kwargs: Any) -> "WhisperATConfig":
        """Builds a Whisper-AT config from any Whisper config, adding the head settings in `head_kwargs`."""
        config_dict = whisper_config.to_dict()
        for key in ("model_type", "architectures", "auto_map", "transformers_version", "id2label", "label2id"):
            config_dict.pop(key, None)
        config_dict.update(head_kwargs)
        if "num_labels" not in config_dict and "id2label" not in config_dict:
            config_dict["num_labels"] = AUDIOSET_NUM_LABELS
        return cls(**config_dict)


__all__ = ["WhisperATConfig", "AUDIOSET_NUM_LABELS"]
