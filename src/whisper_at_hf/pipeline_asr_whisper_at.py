"""The stock `pipeline("automatic-speech-recognition", ...)` for Whisper-AT checkpoints.

The Hub shows a Whisper-AT repo (`pipeline_tag: automatic-speech-recognition`, custom code) with the snippet
`pipeline("automatic-speech-recognition", model=REPO, trust_remote_code=True)`. transformers' ASR pipeline picks
Whisper's pre/post-processing only for `config.model_type == "whisper"`; any other model type whose class is not a
built-in seq2seq class is treated as CTC (`'NoneType' object has no attribute 'argmax'`). Checkpoints therefore carry
this subclass as their `custom_pipelines["automatic-speech-recognition"]` entry (code copied beside the weights), so
the Hub's snippet transcribes exactly as plain Whisper does: long-form, timestamps, language and all.

This module is copied into checkpoints and loaded as remote code: it imports nothing from this package.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from transformers import AutomaticSpeechRecognitionPipeline

TASK = "automatic-speech-recognition"
# The value of `AutomaticSpeechRecognitionPipeline.type` that selects Whisper's processing (set in its __init__ from
# `model.config.model_type == "whisper"`). tests/test_pipeline_asr_whisper_at.py pins it on plain Whisper.
WHISPER_PROCESSING = "seq2seq_whisper"


class WhisperATSpeechRecognitionPipeline(AutomaticSpeechRecognitionPipeline):
    """transformers' ASR pipeline, with Whisper's processing for a Whisper-AT model (text only, no tags: use
    `pipeline("whisper-at")` for tags). Takes every argument of [`AutomaticSpeechRecognitionPipeline`]."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # The one transformers internal relied on here: the processing branch chosen from `self.type`.
        self.type = WHISPER_PROCESSING


def custom_pipelines_entry() -> dict:
    """The `config.custom_pipelines` entry that routes the stock ASR task to this class under trust_remote_code."""
    return {
        TASK: {
            "impl": f"{__name__.rsplit('.', 1)[-1]}.{WhisperATSpeechRecognitionPipeline.__name__}",
            "pt": ("AutoModelForSpeechSeq2Seq",),
            "type": "audio",
        }
    }


def save_asr_pipeline_code(model: Any, save_directory: str | os.PathLike) -> None:
    """Save hook: adds the ASR entry to `model.config.custom_pipelines` and copies this module beside the weights."""
    os.makedirs(save_directory, exist_ok=True)
    existing = getattr(model.config, "custom_pipelines", None) or {}
    model.config.custom_pipelines = {**existing, **custom_pipelines_entry()}
    shutil.copyfile(os.path.abspath(__file__), os.path.join(save_directory, os.path.basename(__file__)))


__all__ = ["WhisperATSpeechRecognitionPipeline", "custom_pipelines_entry", "save_asr_pipeline_code"]
