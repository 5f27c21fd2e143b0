"""The converter: an original Whisper-AT head (+ its Whisper) -> a [`WhisperForAudioTaggingAndASR`] checkpoint
folder (full or head-only) with processor, label names and a model card. `whisper-at-convert` and the release
resolver call [`convert_whisper_at_checkpoint`].
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig, WhisperForConditionalGeneration, WhisperProcessor

from .checkpoint_folder import output_folder_problem, staged_folder, write_checkpoint_folder
from .labels import LabelNames
from .model_card import model_card_for_model, original_variant_card
from .modeling_whisper_at import WhisperForAudioTaggingAndASR
from .original_format import load_openai_whisper, load_original_head, read_original_label_names
from .original_variants import ORIGINAL_VARIANTS_BY_NAME, WHISPER_SIZES, find_original_variant


def convert_whisper_at_checkpoint(
    whisper: str | os.PathLike | Any,
    at_checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    head_only: bool = False,
    labels: str | os.PathLike | None = None,
    dtype: torch.dtype | str | None = None,
    processor: str | os.PathLike | None = None,
    base_model_name_or_path: str | None = None,
    base_model_revision: str | None = None,
    variant: str | None = None,
    overwrite: bool = False,
):
    """Converts an original Whisper-AT head (+ its Whisper) into a [`WhisperForAudioTaggingAndASR`] checkpoint.

    Args:
        whisper: a transformers Whisper dir or Hub id, a loaded `WhisperForConditionalGeneration`, or an OpenAI
            `.pt` file (dict with `dims` and `model_state_dict`; then `processor` is required).
        at_checkpoint: the original TL-TR head (`large-v2_ori.pth`, `small_low.pth`, ...; keys `at_model.*`).
        output_dir: where to write; `None` only returns the model.
        head_only: write a head-only checkpoint naming the base Whisper instead of all weights.
        labels: folder with the original `class_labels_indices.csv` and `label_name_dict.json`; default: the
            installed `whisper-at` package's assets.
        dtype: dtype of the written weights (`"float16"`, `torch.bfloat16`, ...); default float32.
        processor: transformers Whisper dir / Hub id with tokenizer, feature extractor and generation config;
            defaults to `whisper` when that is a transformers checkpoint.
        base_model_name_or_path / base_model_revision: the Whisper recorded in the config (what head-only
            checkpoints load); default `whisper` when it is a dir or Hub id (local dirs as absolute paths).
        variant: original variant name for the model card (`"large-v2_low"`); default from the head's file name.
        overwrite: replace a non-empty `output_dir` (which is otherwise refused before anything loads).
    Returns:
        The converted model (fp32 unless `dtype`), in eval mode.
    Raises:
        ValueError: when the head does not fit the Whisper (naming the dims that disagree), files are corrupt,
            the processor's vocabulary does not match the Whisper, or `variant` is unknown; nothing is written then.
        FileExistsError: `output_dir` is a file, or a non-empty folder without `overwrite`.
    """
    if output_dir is not None and (problem := output_folder_problem(output_dir, overwrite)):
        raise FileExistsError(problem)
    head_state, settings = load_original_head(at_checkpoint)
    label_names = read_original_label_names(labels)
    if len(label_names) != settings["num_labels"]:
        raise ValueError(
            f"the head predicts {settings['num_labels']} classes but the label files list {len(label_names)} names."
        )
    whisper_model, whisper_name = _load_whisper(whisper, processor)
    processor = processor if processor is not None else whisper_name
    if base_model_name_or_path is None and whisper_name:
        local = Path(whisper_name)
        base_model_name_or_path = str(local.resolve()) if local.is_dir() else whisper_name
    if head_only and not base_model_name_or_path:
        raise ValueError(
            "a head-only checkpoint must name its base Whisper: give base_model_name_or_path/--base-model "
            "(the transformers Whisper dir or Hub id matching the OpenAI checkpoint)."
        )
    _check_head_fits(settings, whisper_model, at_checkpoint, whisper_name or whisper)
    model = _attach_head(whisper_model, head_state, settings, label_names, at_checkpoint,
                         base_model_name_or_path, base_model_revision)  # fmt: skip
    if dtype is not None:
        model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    if output_dir is None:
        return model
    # everything that can refuse the conversion runs before a file is written; then a folder beside the output
    # is filled and moved into place
    output_dir = Path(output_dir)
    whisper_processor = _matching_processor(processor, model) if processor is not None else None
    card = _conversion_card(model, at_checkpoint, variant, head_only, output_dir.name)
    with staged_folder(output_dir, overwrite=overwrite) as staging:
        write_checkpoint_folder(model, staging, head_only=head_only, processor=whisper_processor,
                                label_names=label_names, card=card)  # fmt: skip
    return model


def _is_openai_checkpoint_file(whisper: Any) -> bool:
    return isinstance(whisper, (str, os.PathLike)) and Path(whisper).is_file()


def _load_whisper(whisper: Any, processor: str | os.PathLike | None) -> tuple[WhisperForConditionalGeneration, str | None]:
    """The fp32 Whisper and its name (`None` for an OpenAI file or a model without one)."""
    if isinstance(whisper, WhisperForConditionalGeneration):
        return whisper.float(), whisper.name_or_path or None
    if _is_openai_checkpoint_file(whisper):
        if processor is None:
            raise ValueError(
                f"{whisper} is an OpenAI checkpoint: pass processor=/--processor with the matching transformers "
                "Whisper (dir or Hub id) for the tokenizer, feature extractor and generation config."
            )
        whisper_model = load_openai_whisper(whisper)
        whisper_model.generation_config = GenerationConfig.from_pretrained(processor)
        return whisper_model, None
    name = os.fspath(whisper)
    return WhisperForConditionalGeneration.from_pretrained(name, dtype=torch.float32).eval(), name


def _check_head_fits(settings: dict[str, Any], whisper_model: Any, at_checkpoint: Any, whisper_name: Any) -> None:
    if settings["d_model"] == whisper_model.config.d_model:
        return
    mode = f"TL-TR-{settings['at_low_dim']}" if settings["at_low_dim"] else "TL-TR"
    raise ValueError(
        f"the {mode} head in {at_checkpoint} does not fit the Whisper {whisper_name}: "
        f"width: head {settings['d_model']} vs Whisper d_model {whisper_model.config.d_model}"
        f" (that Whisper has {whisper_model.config.encoder_layers} encoder layers; the head was trained for "
        "a Whisper of its width)."
    )


def _attach_head(
    whisper_model: Any,
    head_state: dict[str, torch.Tensor],
    settings: dict[str, Any],
    label_names: LabelNames,
    at_checkpoint: Any,
    base_model_name_or_path: str | None,
    base_model_revision: str | None,
) -> WhisperForAudioTaggingAndASR:
    english = label_names.get("en")
    model = WhisperForAudioTaggingAndASR.from_whisper(
        whisper_model,
        at_low_dim=settings["at_low_dim"],
        id2label=dict(enumerate(english)),
        label2id={name: index for index, name in enumerate(english)},
        base_model_name_or_path=base_model_name_or_path,
        base_model_revision=base_model_revision,
    )
    missing, unexpected = model.audio_tagging_head.load_state_dict(head_state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{at_checkpoint}: head weights do not fit a TL-TR head of this layout "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})."
        )
    return model.eval()


def _matching_processor(processor: str | os.PathLike, model: Any) -> WhisperProcessor:
    """The processor, checked against the model's vocabulary (English-only and multilingual differ)."""
    whisper_processor = WhisperProcessor.from_pretrained(processor)
    tokenizer = whisper_processor.tokenizer
    start_id = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    if len(tokenizer) > model.config.vocab_size or start_id != model.config.decoder_start_token_id:
        raise ValueError(
            f"the processor {processor} does not match the Whisper (tokenizer of {len(tokenizer)} tokens with "
            f"<|startoftranscript|>={start_id}; Whisper vocab_size {model.config.vocab_size}, "
            f"decoder_start_token_id {model.config.decoder_start_token_id}): English-only and multilingual "
            "Whisper use different vocabularies."
        )
    return whisper_processor


def _conversion_card(model: Any, at_checkpoint: Any, variant: str | None, head_only: bool, name: str) -> str:
    """The released variant's card when the head is one (by name and shape), else a card claiming no metrics."""
    known = find_original_variant(variant or Path(at_checkpoint).name)
    if variant is not None and known is None:
        raise ValueError(f"--variant {variant!r} is not one of {sorted(ORIGINAL_VARIANTS_BY_NAME)}.")
    shape = (model.config.at_low_dim, model.config.d_model)
    if known is not None and (known.at_low_dim, WHISPER_SIZES[known.size][1]) == shape:
        return original_variant_card(known, head_only=head_only, base_model=model.config.base_model_name_or_path,
                                     repo_id=name)  # fmt: skip
    # a file named like a release but of another shape: describe what it is, claim no metrics
    return model_card_for_model(
        model,
        name,
        head_only=head_only,
        training=f"Converted from the original-format head `{Path(at_checkpoint).name}`; not one of the "
        "released variants, so no published metrics apply.",
    )


__all__ = ["convert_whisper_at_checkpoint"]
