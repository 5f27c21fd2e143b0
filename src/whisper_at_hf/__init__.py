"""whisper-at-hf: Whisper-AT (joint speech recognition and AudioSet audio tagging) for Hugging Face transformers."""

from transformers import AutoConfig, AutoModelForSpeechSeq2Seq
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_whisper_at import AUDIOSET_NUM_LABELS, WhisperATConfig
from .modeling_whisper_at import (
    EncoderPassCache,
    WhisperATEncoder,
    WhisperATEncoderOutput,
    WhisperATGenerateOutput,
    WhisperATHead,
    WhisperATSeq2SeqOutput,
    WhisperForAudioTaggingAndASR,
)
from .original_variants import DEFAULT_VARIANT, get_variant
from .release_resolver import released_checkpoint
from .pipeline_asr_whisper_at import WhisperATSpeechRecognitionPipeline
from .remote_code import PIPELINE_TASK
from .pipeline_whisper_at import WhisperATPipeline
from whisper_at_hf_cli import __version__  # the one version: the light command-line package's (setup.cfg reads it)

AutoConfig.register(WhisperATConfig.model_type, WhisperATConfig, exist_ok=True)
AutoModelForSpeechSeq2Seq.register(WhisperATConfig, WhisperForAudioTaggingAndASR, exist_ok=True)
# A saved config then carries its code and `auto_map`. The model class is not registered (see remote_code.py):
# its save_pretrained writes the model's and the pipelines' code and `auto_map` itself, so a checkpoint loads with
# trust_remote_code=True in an environment without this package.
WhisperATConfig.register_for_auto_class()

# pipeline("whisper-at", ...). Without a model it loads the default variant's published converted checkpoint, a Hub id
# like every task default; `released_checkpoint(name)` resolves any variant, also where nothing is published.
PIPELINE_REGISTRY.register_pipeline(
    PIPELINE_TASK,
    pipeline_class=WhisperATPipeline,
    pt_model=AutoModelForSpeechSeq2Seq,
    default={"model": (get_variant(DEFAULT_VARIANT).hub_id(), None)},
    type="multimodal",
)

__all__ = [
    "__version__",
    "AUDIOSET_NUM_LABELS",
    "EncoderPassCache",
    "WhisperATConfig",
    "WhisperATEncoder",
    "WhisperATEncoderOutput",
    "WhisperATGenerateOutput",
    "WhisperATHead",
    "WhisperATSeq2SeqOutput",
    "WhisperATPipeline",
    "WhisperATSpeechRecognitionPipeline",
    "WhisperForAudioTaggingAndASR",
    "released_checkpoint",
]
