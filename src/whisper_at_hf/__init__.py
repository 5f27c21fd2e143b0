"""whisper-at-hf: Whisper-AT (joint speech recognition and AudioSet audio tagging) for Hugging Face transformers."""

from transformers import AutoConfig, AutoModelForSpeechSeq2Seq

from .configuration_whisper_at import AUDIOSET_NUM_LABELS, WhisperATConfig
from .modeling_whisper_at import (
    WhisperATEncoderOutput,
    WhisperATGenerateOutput,
    WhisperATHead,
    WhisperATSeq2SeqOutput,
    WhisperForAudioTaggingAndASR,
)

__version__ = "0.1.0"

AutoConfig.register(WhisperATConfig.model_type, WhisperATConfig, exist_ok=True)
AutoModelForSpeechSeq2Seq.register(WhisperATConfig, WhisperForAudioTaggingAndASR, exist_ok=True)
# save_pretrained then writes the code and `auto_map`, so the checkpoint loads with trust_remote_code=True
# in an environment without this package.
WhisperATConfig.register_for_auto_class()
WhisperForAudioTaggingAndASR.register_for_auto_class("AutoModelForSpeechSeq2Seq")

__all__ = [
    "AUDIOSET_NUM_LABELS",
    "WhisperATConfig",
    "WhisperATEncoderOutput",
    "WhisperATGenerateOutput",
    "WhisperATHead",
    "WhisperATSeq2SeqOutput",
    "WhisperForAudioTaggingAndASR",
]
