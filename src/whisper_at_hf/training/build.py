"""Shared set-up of both training scripts: labelled splits, the model, features (cached or on the fly), metrics."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..modeling_whisper_at import WhisperForAudioTaggingAndASR
from .arguments import DataArguments, ModelArguments
from .data import LabelSet, SkippedRows, label_problems, load_raw_datasets
from .features import POOLED_COLUMN, cached_pooled_features, whisper_fingerprint
from .hub import record_base_model
from .recipe import (
    LABELS_KEY,
    AudioFeatureCollator,
    PooledFeatureCollator,
    find_unreadable_audio,
)

logger = logging.getLogger(f"transformers.{__name__}")  # under transformers: its verbosity rules ours


@dataclass
class PreparedData:
    """Label-encoded splits ready for a DataLoader, with the collator that fits them."""

    train: Any
    eval: Any | None
    label_set: LabelSet
    collator: Any
    cached: bool  # rows hold pooled states (else raw audio)
    skipped: list[SkippedRows]
    cache_reused: bool = False

    @property
    def train_targets(self) -> np.ndarray:
        return np.asarray(self.train[LABELS_KEY], dtype=np.float32)


def load_labelled_splits(data_args: DataArguments, label_names: list[str] | None = None, token: str | None = None):
    """Train/eval splits with an `audio_labels` multi-hot column, and the [`LabelSet`].

    Label names come from `data_args.class_names`, else `label_names` (e.g. a start head's), else the train split.
    Unknown names in any split raise `ValueError` listing the known ones.
    """
    raw = load_raw_datasets(
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        data_dir=data_args.data_dir,
        audio_column=data_args.audio_column_name,
        token=token,
    )
    if data_args.train_split_name not in raw:
        raise ValueError(f"No split {data_args.train_split_name!r} in the dataset (splits: {list(raw)}).")
    train = raw[data_args.train_split_name]
    evaluation = raw[data_args.eval_split_name] if data_args.eval_split_name in raw else None
    if data_args.max_train_samples is not None:
        train = train.select(range(min(data_args.max_train_samples, len(train))))
    if evaluation is not None and data_args.max_eval_samples is not None:
        evaluation = evaluation.select(range(min(data_args.max_eval_samples, len(evaluation))))
    column = data_args.label_column_name
    for split in (train, evaluation):
        if split is not None and column not in split.column_names:
            raise ValueError(f"No label column {column!r} (columns: {split.column_names}).")

    names = data_args.class_names or label_names
    label_set = (
        LabelSet(names, data_args.label_separator)
        if names
        else LabelSet.from_dataset(train, column, data_args.label_separator)
    )

    def encode(split):
        targets = [label_set.encode(cell) for cell in split[column]]  # raises on unknown names, listing known ones
        return split.add_column(LABELS_KEY, [t.tolist() for t in targets])

    train = encode(train)
    evaluation = encode(evaluation) if evaluation is not None else None
    audio_column = data_args.audio_column_name
    reports, train_audio = label_problems(train, "train", np.asarray(train[LABELS_KEY]), audio_column)
    if evaluation is not None:
        reports += label_problems(
            evaluation, "eval", np.asarray(evaluation[LABELS_KEY]), audio_column, seen_elsewhere=train_audio
        )[0]
    for report in reports:
        logger.warning(report)
    return train, evaluation, label_set


def build_model(model_args: ModelArguments, label_set: LabelSet) -> WhisperForAudioTaggingAndASR:
    """A frozen Whisper with a fresh head for `label_set`, optionally started from an existing head.

    From an existing head every weight is reused, except the classifier when the label names differ.
    """
    model = WhisperForAudioTaggingAndASR.from_whisper(
        model_args.model_name_or_path,
        dtype=torch.float32,
        at_low_dim=model_args.at_low_dim,
        at_time_res=model_args.at_time_res,
        num_labels=len(label_set),
        id2label=label_set.id2label,
        label2id=dict(label_set.label2id),
    )
    if model_args.head_name_or_path:
        source = WhisperForAudioTaggingAndASR.from_pretrained(
            model_args.head_name_or_path, dtype=torch.float32, cache_dir=model_args.cache_dir, token=model_args.token
        )
        if (source.config.d_model, source.config.at_num_layers, source.config.at_low_dim) != (
            model.config.d_model,
            model.config.at_num_layers,
            model.config.at_low_dim,
        ):
            raise ValueError(
                f"The start head {model_args.head_name_or_path} (d_model={source.config.d_model}, "
                f"layers={source.config.at_num_layers}, at_low_dim={source.config.at_low_dim}) does not fit "
                f"{model_args.model_name_or_path} (d_model={model.config.d_model}, layers={model.config.at_num_layers}, "
                f"at_low_dim={model.config.at_low_dim})."
            )
        state = source.audio_tagging_head.state_dict()
        same_labels = [source.config.id2label[i] for i in range(source.config.num_labels)] == label_set.names
        if not same_labels:
            state = {key: value for key, value in state.items() if not key.startswith("classifier.")}
            logger.info("Start head has other labels: its classifier is re-initialised for %d classes.", len(label_set))
        missing, unexpected = model.audio_tagging_head.load_state_dict(state, strict=False)
        if unexpected or any(not key.startswith("classifier.") for key in missing):
            raise ValueError(f"Start head weights do not fit: missing {missing}, unexpected {unexpected}.")
        del source
    model.eval()  # Whisper stays in eval mode; the scripts switch only the head to train mode
    return model


def start_head_label_names(model_args: ModelArguments) -> list[str] | None:
    """The label names of `--head_name_or_path`, when given (used when the data has no ClassLabel names)."""
    if not model_args.head_name_or_path:
        return None
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_args.head_name_or_path, cache_dir=model_args.cache_dir)
    return [config.id2label[i] for i in range(config.num_labels)]


def prepare_features(
    model: WhisperForAudioTaggingAndASR,
    feature_extractor: Any,
    train: Any,
    evaluation: Any | None,
    label_set: LabelSet,
    data_args: DataArguments,
    output_dir: str,
    at_time_res: float,
    state: Any = None,
) -> PreparedData:
    """Either the pooled-feature cache of both splits, or the raw-audio splits minus unreadable rows.

    Unreadable audio is logged with a count and skipped, never fatal.
    """
    audio_column = data_args.audio_column_name
    skipped: list[SkippedRows] = []
    if data_args.cache_features:
        cache_dir = data_args.feature_cache_dir or os.path.join(output_dir, "feature_cache")
        whisper_fp = whisper_fingerprint(model, feature_extractor, at_time_res)
        splits, reused = {}, True
        for name, split in (("train", train), ("eval", evaluation)):
            if split is None:
                splits[name] = None
                continue
            splits[name], report, split_reused = cached_pooled_features(
                model,
                feature_extractor,
                split,
                audio_column,
                cache_dir,
                at_time_res,
                split=name,
                batch_size=data_args.encode_batch_size,
                whisper_fp=whisper_fp,
                state=state,
            )
            skipped.append(report)
            reused = reused and split_reused
        for name in splits:  # numpy rows: converting (L, T, d) arrays to Python lists would dominate training time
            if splits[name] is not None:
                splits[name] = splits[name].with_format("numpy", columns=[POOLED_COLUMN, LABELS_KEY])
        collator = PooledFeatureCollator()
        prepared = PreparedData(splits["train"], splits["eval"], label_set, collator, True, skipped, reused)
    else:
        splits = {}
        for name, split in (("train", train), ("eval", evaluation)):
            if split is None:
                splits[name] = None
                continue
            errors = find_unreadable_audio(split, audio_column)
            skipped.append(SkippedRows(split=name, total=len(split), errors=errors))
            splits[name] = split.select([i for i in range(len(split)) if i not in errors]) if errors else split
        collator = AudioFeatureCollator(feature_extractor, audio_column, at_time_res)
        prepared = PreparedData(splits["train"], splits["eval"], label_set, collator, False, skipped)
    for report in skipped:
        (logger.warning if report.errors else logger.info)(report.report())
    if len(prepared.train) == 0:
        raise ValueError("No readable training audio left: " + skipped[0].report())
    return prepared


def setup_head_training(
    model_args: ModelArguments, data_args: DataArguments, output_dir: str, device: Any, state: Any = None
) -> tuple[WhisperForAudioTaggingAndASR, Any, PreparedData]:
    """The set-up both training scripts share: labelled splits -> a frozen Whisper with a head for their classes
    (the base's Hub id recorded for the card and later loading) on `device` -> the processor -> features prepared
    (cached pooled states or raw audio, unreadable rows reported). Returns `(model, processor, data)`."""
    from transformers import AutoProcessor

    train, evaluation, label_set = load_labelled_splits(
        data_args, start_head_label_names(model_args), token=model_args.token
    )
    model = build_model(model_args, label_set).to(device)
    record_base_model(model, model_args.model_name_or_path, model_args.base_model_id)
    processor = AutoProcessor.from_pretrained(model_args.model_name_or_path, token=model_args.token)
    logger.info("%d classes; %s", len(label_set), model.num_parameters_summary())
    data = prepare_features(
        model,
        processor.feature_extractor,
        train,
        evaluation,
        label_set,
        data_args,
        output_dir,
        model_args.at_time_res,
        state=state,
    )
    return model, processor, data


def batch_pooled_states(model: WhisperForAudioTaggingAndASR, batch: dict, at_time_res: float) -> torch.Tensor:
    """The first tagging window's pooled states `(B, L, window_frames, d)` of a collated batch: the cached
    `pooled_hidden_states` as they are, or raw `input_features` `(B, n_mels, frames)` through one frozen
    `model.encode()` pass (no gradients: Whisper stays frozen), cut to the window."""
    if POOLED_COLUMN in batch:
        return batch[POOLED_COLUMN]
    with torch.no_grad():
        pooled = model.encode(batch["input_features"]).pooled_hidden_states
    return pooled[:, :, : model.config.at_window_frames(at_time_res)]


def head_logits(model: WhisperForAudioTaggingAndASR, head: torch.nn.Module, batch: dict, at_time_res: float):
    """First-window logits `(B, C)` from a collated batch (see [`batch_pooled_states`]). `head` is
    `model.audio_tagging_head` or its Accelerate/DDP wrapper."""
    return head(batch_pooled_states(model, batch, at_time_res), at_time_res)[:, 0]


def head_optimizer(
    model: WhisperForAudioTaggingAndASR,
    learning_rate: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.AdamW:
    """AdamW over the audio-tagging head's parameters only; refuses a model whose Whisper is trainable."""
    head_params = {id(param) for param in model.audio_tagging_head.parameters()}
    trainable_whisper = [
        name for name, param in model.named_parameters() if param.requires_grad and id(param) not in head_params
    ]
    if trainable_whisper:
        raise ValueError(
            f"Whisper parameters are trainable ({trainable_whisper[:3]}...): head training keeps Whisper frozen; "
            "call model.freeze_whisper()."
        )
    params = [param for param in model.audio_tagging_head.parameters() if param.requires_grad]
    return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay, betas=betas)
