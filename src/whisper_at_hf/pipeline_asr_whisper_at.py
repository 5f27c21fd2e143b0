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

from transformers import AutomaticSpeechRecognitionPipeline

# The value of `AutomaticSpeechRecognitionPipeline.type` that selects Whisper's processing (set in its __init__ from
# `model.config.model_type == "whisper"`). tests/test_pipeline_asr_whisper_at.py pins it on plain Whisper.
WHISPER_PROCESSING = "seq2seq_whisper"

# ----- upstream-coupled: the one transformers internal relied on here, the processing branch chosen from `self.type`.
# `AutomaticSpeechRecognitionPipeline.__init__` assigns `self.type` from `model_type == "whisper"` (ours is
# "whisper_at") *before* `Pipeline.__init__` checks the init-time kwargs (`return_language=True`, ...), so a value set
# after `super().__init__` comes too late, and one set before is overwritten. A class-level property that ignores the
# assignment is right from the start. Both pipelines of this package use this one. Pins:
# tests/test_upstream_pins.py::test_asr_pipeline_takes_the_whisper_path_only_for_model_type_whisper and the init-time
# kwargs tests in tests/test_pipeline_asr_whisper_at.py and tests/test_pipeline_whisper_at.py.
whisper_processing_type = property(
    lambda self: WHISPER_PROCESSING,
    lambda self, value: None,
    doc="Always Whisper's processing: a Whisper-AT model is Whisper (the ASR pipeline's own assignment is ignored).",
)


class WhisperATSpeechRecognitionPipeline(AutomaticSpeechRecognitionPipeline):
    """transformers' ASR pipeline, with Whisper's processing for a Whisper-AT model (text only, no tags: use
    `pipeline("whisper-at")` for tags). Takes every argument of [`AutomaticSpeechRecognitionPipeline`]."""

    type = whisper_processing_type


__all__ = ["WhisperATSpeechRecognitionPipeline", "whisper_processing_type"]
