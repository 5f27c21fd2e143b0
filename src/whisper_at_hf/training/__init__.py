"""Head training shared by `training/train_head.py` (Accelerate) and `training/train_head_trainer.py` (Trainer):
data loading and label parsing, the pooled-feature cache, collators, recipe pieces and Hub upload."""

from .arguments import DataArguments, LoopArguments, ModelArguments, RecipeArguments
from .build import PreparedData, build_model, head_logits, load_labelled_splits, prepare_features, start_head_label_names
from .data import AudioDecodeError, LabelSet, SkippedRows, crop_or_pad, decode_audio, load_raw_datasets
from .features import POOLED_COLUMN, cached_pooled_features, encode_pooled, whisper_fingerprint
from .hub import push_trained_head, save_trained_head, training_card
from .recipe import (
    LABELS_KEY,
    AudioFeatureCollator,
    EpochSampler,
    PooledFeatureCollator,
    WeightAverager,
    balanced_sample_weights,
    mixup,
    smooth_labels,
    step_rng,
)

__all__ = [
    "LABELS_KEY",
    "POOLED_COLUMN",
    "AudioDecodeError",
    "AudioFeatureCollator",
    "DataArguments",
    "EpochSampler",
    "LabelSet",
    "LoopArguments",
    "ModelArguments",
    "PooledFeatureCollator",
    "PreparedData",
    "RecipeArguments",
    "SkippedRows",
    "WeightAverager",
    "balanced_sample_weights",
    "build_model",
    "cached_pooled_features",
    "crop_or_pad",
    "decode_audio",
    "encode_pooled",
    "head_logits",
    "load_labelled_splits",
    "load_raw_datasets",
    "mixup",
    "prepare_features",
    "push_trained_head",
    "save_trained_head",
    "smooth_labels",
    "start_head_label_names",
    "step_rng",
    "training_card",
    "whisper_fingerprint",
]
