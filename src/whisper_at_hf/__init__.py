"""whisper-at-hf: Whisper-AT (joint speech recognition and AudioSet audio tagging) for Hugging Face transformers."""

from transformers import AutoConfig, AutoModelForSpeechSeq2Seq
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_whisper_at import AUDIOSET_NUM_LABELS, WhisperATConfig
from .modeling_whisper_at import (
    WhisperATEncoderOutput,
    WhisperATGenerateOutput,
    WhisperATHead,
    WhisperATSeq2SeqOutput,
    WhisperForAudioTaggingAndASR,
)
from .original_release import DefaultPipelineModel, released_checkpoint
from .pipeline_asr_whisper_at import WhisperATSpeechRecognitionPipeline, save_asr_pipeline_code
from .pipeline_whisper_at import WhisperATPipeline, save_pipeline_code

__version__ = "0.1.0"

AutoConfig.register(WhisperATConfig.model_type, WhisperATConfig, exist_ok=True)
AutoModelForSpeechSeq2Seq.register(WhisperATConfig, WhisperForAudioTaggingAndASR, exist_ok=True)
# save_pretrained then writes the code and `auto_map`, so the checkpoint loads with trust_remote_code=True
# in an environment without this package.
WhisperATConfig.register_for_auto_class()
WhisperForAudioTaggingAndASR.register_for_auto_class("AutoModelForSpeechSeq2Seq")

# pipeline("whisper-at", ...); saved checkpoints carry the pipeline's code and `custom_pipelines` too.
# Without a model, the default released variant is resolved (downloaded once) when transformers asks for it.
PIPELINE_REGISTRY.register_pipeline(
    "whisper-at",
    pipeline_class=WhisperATPipeline,
    pt_model=AutoModelForSpeechSeq2Seq,
    default=DefaultPipelineModel(),
    type="multimodal",
)
if save_pipeline_code not in WhisperForAudioTaggingAndASR.save_hooks:
    WhisperForAudioTaggingAndASR.save_hooks.append(save_pipeline_code)
# ... and the stock ASR task's entry (after the hook above, which resets `custom_pipelines`): the Hub's snippet
# pipeline("automatic-speech-recognition", model=REPO, trust_remote_code=True) then transcribes as plain Whisper.
if save_asr_pipeline_code not in WhisperForAudioTaggingAndASR.save_hooks:
    WhisperForAudioTaggingAndASR.save_hooks.append(save_asr_pipeline_code)

__all__ = [
    "AUDIOSET_NUM_LABELS",
    "WhisperATConfig",
    "WhisperATEncoderOutput",
    "WhisperATGenerateOutput",
    "WhisperATHead",
    "WhisperATSeq2SeqOutput",
    "WhisperATPipeline",
    "WhisperATSpeechRecognitionPipeline",
    "WhisperForAudioTaggingAndASR",
    "released_checkpoint",
]
