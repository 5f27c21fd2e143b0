"""Conversion of the original Whisper-AT checkpoints (`*_ori.pth`, `*_low.pth` TL-TR heads) to this package.

The original head is an `ATModel` whose state dict keys start with `at_model.` in the released files. This module
owns the mapping of those names to `WhisperATHead`'s, the inference of the head settings from the tensors, the
conversion of OpenAI Whisper checkpoints (`tiny.pt` ... `large-v2.pt`) to transformers' layout, and the
`whisper-at-convert` command that writes a complete (or head-only) checkpoint with labels and a model card:

    whisper-at-convert --whisper openai/whisper-large-v2 --at-checkpoint large-v2_ori.pth --output whisper-at-large-v2
    whisper-at-convert --whisper large-v2.pt --processor openai/whisper-large-v2 --at-checkpoint large-v2_low.pth \
        --output whisper-at-large-v2-low --head-only --base-model openai/whisper-large-v2

With `--variant` and no `--at-checkpoint`, the released head and its Whisper are downloaded (and cached) first:

    whisper-at-convert --variant large-v2 --output whisper-at-large-v2     # a portable checkpoint folder
    whisper-at-convert --variant small --download-only                     # pre-fetch into the cache (offline use)
    whisper-at-convert --variant all --push-to-hub whisper-at-hf           # maintainers: publish all 16
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

ORIGINAL_PREFIX = "at_model."

# original block sub-module -> ours (a Whisper-style `ResidualAttentionBlock` -> `WhisperATBlock`)
_BLOCK_KEYS = {
    "attn.query": "self_attn.q_proj",
    "attn.key": "self_attn.k_proj",
    "attn.value": "self_attn.v_proj",
    "attn.out": "self_attn.out_proj",
    "attn_ln": "self_attn_layer_norm",
    "mlp.0": "fc1",
    "mlp.2": "fc2",
    "mlp_ln": "final_layer_norm",
}
_TOP_KEYS = {
    "time_tr": "time_block",
    "layer_tr": "layer_block",
    "down_layer.0": "input_norm",
    "down_layer.1": "input_proj",
    "mlp_layer.0": "classifier_norm",
    "mlp_layer.1": "classifier",
}
_KEY_PATTERN = re.compile(
    r"^(?P<top>time_tr|layer_tr|down_layer\.[01]|mlp_layer\.[01])\.(?:(?P<block>.+)\.)?(?P<param>weight|bias)$"
)


def original_head_key_to_hf(key: str) -> str:
    """Maps one original head key (`at_model.time_tr.attn.query.weight`) to ours (`time_block.self_attn.q_proj.weight`).

    Raises `KeyError` for names that are not part of a TL-TR head.
    """
    name = key[len(ORIGINAL_PREFIX) :] if key.startswith(ORIGINAL_PREFIX) else key
    match = _KEY_PATTERN.match(name)
    if match is None:
        raise KeyError(f"{key!r} is not a Whisper-AT TL-TR head weight.")
    top, block, param = match.group("top"), match.group("block"), match.group("param")
    parts = [_TOP_KEYS[top]]
    if block is not None:
        if top not in ("time_tr", "layer_tr") or block not in _BLOCK_KEYS:
            raise KeyError(f"{key!r} is not a Whisper-AT TL-TR head weight.")
        parts.append(_BLOCK_KEYS[block])
    return ".".join([*parts, param])


def convert_original_head_state_dict(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Renames an original TL-TR head state dict and infers its settings from the tensor shapes.

    Args:
        state_dict: keys with or without the `at_model.` prefix; other keys (a full Whisper-AT state dict's
            `encoder.*`/`decoder.*`) are ignored.
    Returns:
        `(head_state_dict, head_settings)`: keys for `WhisperATHead` (no `audio_tagging_head.` prefix) and
        `{"d_model", "at_low_dim", "num_labels"}` read from the shapes. The layer count is not in the head's
        weights; it comes from the Whisper the head is attached to.
    """
    head_state: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        name = key[len(ORIGINAL_PREFIX) :] if key.startswith(ORIGINAL_PREFIX) else key
        if not key.startswith(ORIGINAL_PREFIX) and not _KEY_PATTERN.match(name):
            continue  # Whisper weights of a full original checkpoint
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{key!r} holds a {type(tensor).__name__}, not a tensor.")
        head_state[original_head_key_to_hf(key)] = tensor
    if "classifier.weight" not in head_state or "time_block.self_attn.q_proj.weight" not in head_state:
        raise ValueError(
            "no Whisper-AT TL-TR head found (expected keys such as 'at_model.mlp_layer.1.weight' and "
            "'at_model.time_tr.attn.query.weight')."
        )
    num_labels, width = head_state["classifier.weight"].shape
    if "input_proj.weight" in head_state:
        low_dim, d_model = head_state["input_proj.weight"].shape
        settings = {"d_model": d_model, "at_low_dim": low_dim, "num_labels": num_labels}
    else:
        settings = {"d_model": width, "at_low_dim": None, "num_labels": num_labels}
    return head_state, settings


# --------------------------------------------------------------------------------------------------------------------
# Reading checkpoint files safely
# --------------------------------------------------------------------------------------------------------------------
def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """`torch.load(path, weights_only=True)` on CPU, with clear errors.

    Only tensors and plain containers are unpickled, never arbitrary objects. Raises `FileNotFoundError` for a
    missing file and `ValueError` for an empty, truncated, corrupt or not-weights-only file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found.")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes).")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only refuses anything but tensors and plain containers; also raised for garbage bytes
        raise ValueError(
            f"checkpoint {path} could not be read as plain PyTorch weights (corrupt, or it holds arbitrary Python "
            f"objects, which are never unpickled here): {str(error).splitlines()[0]}"
        ) from None
    except Exception as error:  # noqa: BLE001 - any failure to parse these bytes means a damaged file
        raise ValueError(
            f"checkpoint {path} is truncated or corrupt ({type(error).__name__}: {str(error).splitlines()[0]})."
        ) from None


def load_original_head(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Reads an original TL-TR head file (`large-v2_ori.pth`, `small_low.pth`, ...) and converts it.

    Returns `(head_state_dict, head_settings)` as [`convert_original_head_state_dict`] does.
    """
    checkpoint = load_torch_checkpoint(path)
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("model_state_dict"), Mapping):
        checkpoint = checkpoint["model_state_dict"]
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a state dict of a Whisper-AT head.")
    try:
        return convert_original_head_state_dict(checkpoint)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None


# --------------------------------------------------------------------------------------------------------------------
# OpenAI Whisper checkpoints (`tiny.pt` ... `large-v2.pt`) -> transformers
# --------------------------------------------------------------------------------------------------------------------
_OPENAI_DIMS = (
    "n_mels",
    "n_audio_ctx",
    "n_audio_state",
    "n_audio_head",
    "n_audio_layer",
    "n_vocab",
    "n_text_ctx",
    "n_text_state",
    "n_text_head",
    "n_text_layer",
)
_OPENAI_TOP_KEYS = {
    "encoder.conv1": "model.encoder.conv1",
    "encoder.conv2": "model.encoder.conv2",
    "encoder.positional_embedding": "model.encoder.embed_positions.weight",
    "encoder.ln_post": "model.encoder.layer_norm",
    "decoder.token_embedding": "model.decoder.embed_tokens",
    "decoder.positional_embedding": "model.decoder.embed_positions.weight",
    "decoder.ln": "model.decoder.layer_norm",
}
_OPENAI_BLOCK_KEYS = {
    **_BLOCK_KEYS,
    "cross_attn.query": "encoder_attn.q_proj",
    "cross_attn.key": "encoder_attn.k_proj",
    "cross_attn.value": "encoder_attn.v_proj",
    "cross_attn.out": "encoder_attn.out_proj",
    "cross_attn_ln": "encoder_attn_layer_norm",
}
_OPENAI_BLOCK_PATTERN = re.compile(
    r"^(?P<stack>encoder|decoder)\.blocks\.(?P<index>\d+)\.(?P<module>.+)\.(?P<param>weight|bias)$"
)
# special token ids of the two OpenAI vocabularies (English-only: 51864 entries, multilingual: 51865)
_ENGLISH_VOCAB_SIZE = 51864
_SPECIAL_TOKENS = {
    True: {"bos_token_id": 50256, "eos_token_id": 50256, "pad_token_id": 50256, "decoder_start_token_id": 50257},
    False: {"bos_token_id": 50257, "eos_token_id": 50257, "pad_token_id": 50257, "decoder_start_token_id": 50258},
}


def openai_whisper_key_to_hf(key: str) -> str:
    """Maps an OpenAI Whisper weight name (`encoder.blocks.0.attn.query.weight`) to transformers'
    (`model.encoder.layers.0.self_attn.q_proj.weight`). Raises `KeyError` for names that are not Whisper's."""
    match = _OPENAI_BLOCK_PATTERN.match(key)
    if match is not None:
        module = _OPENAI_BLOCK_KEYS.get(match.group("module"))
        if module is None:
            raise KeyError(f"{key!r} is not an OpenAI Whisper weight.")
        return f"model.{match.group('stack')}.layers.{match.group('index')}.{module}.{match.group('param')}"
    for original, ours in _OPENAI_TOP_KEYS.items():
        if key == original:
            return ours
        if key.startswith(original + ".") and key[len(original) + 1 :] in ("weight", "bias"):
            return f"{ours}.{key[len(original) + 1 :]}"
    raise KeyError(f"{key!r} is not an OpenAI Whisper weight.")


def openai_dims_to_whisper_config(dims: Mapping[str, int], **overrides: Any):
    """A transformers `WhisperConfig` from an OpenAI checkpoint's `dims` (special token ids from the vocab size)."""
    from transformers import WhisperConfig

    missing = [name for name in _OPENAI_DIMS if name not in dims]
    if missing:
        raise ValueError(f"OpenAI Whisper dims lack {missing}.")
    if dims["n_audio_state"] != dims["n_text_state"]:
        raise ValueError(
            f"n_audio_state={dims['n_audio_state']} differs from n_text_state={dims['n_text_state']}; "
            "transformers' Whisper uses one d_model for both."
        )
    kwargs = dict(
        vocab_size=dims["n_vocab"],
        num_mel_bins=dims["n_mels"],
        max_source_positions=dims["n_audio_ctx"],
        max_target_positions=dims["n_text_ctx"],
        d_model=dims["n_audio_state"],
        encoder_layers=dims["n_audio_layer"],
        encoder_attention_heads=dims["n_audio_head"],
        encoder_ffn_dim=4 * dims["n_audio_state"],
        decoder_layers=dims["n_text_layer"],
        decoder_attention_heads=dims["n_text_head"],
        decoder_ffn_dim=4 * dims["n_text_state"],
        **_SPECIAL_TOKENS[dims["n_vocab"] <= _ENGLISH_VOCAB_SIZE],
    )
    kwargs.update(overrides)
    return WhisperConfig(**kwargs)


def load_openai_whisper(path: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """Reads an OpenAI Whisper checkpoint (a dict with `dims` and `model_state_dict`) into a transformers
    `WhisperForConditionalGeneration` (no generation config: take it from the matching transformers processor)."""
    from transformers import WhisperForConditionalGeneration

    checkpoint = load_torch_checkpoint(path)
    if not (
        isinstance(checkpoint, Mapping)
        and isinstance(checkpoint.get("dims"), Mapping)
        and isinstance(checkpoint.get("model_state_dict"), Mapping)
    ):
        raise ValueError(f"{path} is not an OpenAI Whisper checkpoint (a dict with 'dims' and 'model_state_dict').")
    config = openai_dims_to_whisper_config(checkpoint["dims"])
    state_dict = {}
    for key, tensor in checkpoint["model_state_dict"].items():
        if key.startswith(ORIGINAL_PREFIX):
            continue  # a Whisper-AT head saved alongside: converted separately
        try:
            state_dict[openai_whisper_key_to_hf(key)] = tensor.to(dtype)
        except KeyError as error:
            raise ValueError(f"{path}: {error.args[0]}") from None
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(state_dict, strict=False, assign=True)
    missing = [key for key in missing if key != "proj_out.weight"]  # tied to the token embedding
    if missing or unexpected:
        raise ValueError(
            f"{path}: Whisper weights do not fit its dims (missing {missing[:5]}, unexpected {unexpected[:5]})."
        )
    model.proj_out.weight = model.model.decoder.embed_tokens.weight
    return model.eval()


# --------------------------------------------------------------------------------------------------------------------
# Back to the original formats
# --------------------------------------------------------------------------------------------------------------------
_HF_BLOCK_PATTERN = re.compile(r"^model\.(?P<stack>encoder|decoder)\.layers\.(?P<index>\d+)\.(?P<module>.+)\.(?P<param>weight|bias)$")
_HF_HEAD_PATTERN = re.compile(
    r"^(?P<top>time_block|layer_block|input_norm|input_proj|classifier_norm|classifier)\.(?:(?P<block>.+)\.)?"
    r"(?P<param>weight|bias)$"
)
_HEAD_PREFIX = "audio_tagging_head."


def hf_key_to_openai_whisper(key: str) -> str:
    """The inverse of [`openai_whisper_key_to_hf`]. Raises `KeyError` for names that have no OpenAI counterpart."""
    match = _HF_BLOCK_PATTERN.match(key)
    if match is not None:
        module = {ours: original for original, ours in _OPENAI_BLOCK_KEYS.items()}.get(match.group("module"))
        if module is None:
            raise KeyError(f"{key!r} has no OpenAI Whisper counterpart.")
        return f"{match.group('stack')}.blocks.{match.group('index')}.{module}.{match.group('param')}"
    for original, ours in _OPENAI_TOP_KEYS.items():
        if key == ours:
            return original
        if key.startswith(ours + ".") and key[len(ours) + 1 :] in ("weight", "bias"):
            return f"{original}.{key[len(ours) + 1 :]}"
    raise KeyError(f"{key!r} has no OpenAI Whisper counterpart.")


def hf_head_key_to_original(key: str) -> str:
    """The inverse of [`original_head_key_to_hf`]: `time_block.self_attn.q_proj.weight` (with or without the model's
    `audio_tagging_head.` prefix) -> `at_model.time_tr.attn.query.weight`."""
    name = key[len(_HEAD_PREFIX) :] if key.startswith(_HEAD_PREFIX) else key
    match = _HF_HEAD_PATTERN.match(name)
    blocks = {ours: original for original, ours in _BLOCK_KEYS.items()}
    if match is None or (match.group("block") is not None and match.group("block") not in blocks):
        raise KeyError(f"{key!r} is not a TL-TR head weight.")
    parts = [{ours: original for original, ours in _TOP_KEYS.items()}[match.group("top")]]
    if match.group("block") is not None:
        parts.append(blocks[match.group("block")])
    return ORIGINAL_PREFIX + ".".join([*parts, match.group("param")])


def export_original_checkpoint(model: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A [`WhisperForAudioTaggingAndASR`] in the original release's two formats, e.g. to run a head trained with this
    project in the original `whisper-at` package or tools built on it.

    Returns:
        `(whisper_checkpoint, head_state_dict)`: OpenAI's `{"dims", "model_state_dict"}` (what `whisper.load_model`
        reads from `tiny.pt` ...) and the head's `{"at_model.*": tensor}` (what the original loads from
        `large-v2_ori.pth`, `small_low.pth`, ...); `torch.save` each. Tensors are CPU copies in the model's dtype.
    """
    config = model.config
    dims = {
        "n_mels": config.num_mel_bins,
        "n_audio_ctx": config.max_source_positions,
        "n_audio_state": config.d_model,
        "n_audio_head": config.encoder_attention_heads,
        "n_audio_layer": config.encoder_layers,
        "n_vocab": config.vocab_size,
        "n_text_ctx": config.max_target_positions,
        "n_text_state": config.d_model,
        "n_text_head": config.decoder_attention_heads,
        "n_text_layer": config.decoder_layers,
    }
    whisper_state, head_state = {}, {}
    for key, tensor in model.state_dict().items():
        if key == "proj_out.weight":
            continue  # tied to the token embedding in both
        if key.startswith(_HEAD_PREFIX):
            head_state[hf_head_key_to_original(key)] = tensor.detach().cpu().clone()
        else:
            whisper_state[hf_key_to_openai_whisper(key)] = tensor.detach().cpu().clone()
    return {"dims": dims, "model_state_dict": whisper_state}, head_state


def _is_openai_checkpoint_file(whisper: Any) -> bool:
    return isinstance(whisper, (str, os.PathLike)) and Path(whisper).is_file()


# --------------------------------------------------------------------------------------------------------------------
# The converter
# --------------------------------------------------------------------------------------------------------------------
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
    Returns:
        The converted model (fp32 unless `dtype`), in eval mode.
    Raises:
        ValueError: when the head does not fit the Whisper (naming the dims that disagree), files are corrupt,
            or the processor's vocabulary does not match the Whisper.
    """
    from transformers import GenerationConfig, WhisperForConditionalGeneration, WhisperProcessor

    from .labels import read_original_label_names
    from .model_card import (
        ORIGINAL_VARIANTS_BY_NAME,
        WHISPER_SIZES,
        find_original_variant,
        model_card_for_model,
        original_variant_card,
    )
    from .modeling_whisper_at import WhisperForAudioTaggingAndASR

    head_state, settings = load_original_head(at_checkpoint)
    label_names = read_original_label_names(labels)
    if len(label_names) != settings["num_labels"]:
        raise ValueError(
            f"the head predicts {settings['num_labels']} classes but the label files list {len(label_names)} names."
        )

    # --- Whisper --------------------------------------------------------------------------------------------------
    if isinstance(whisper, WhisperForConditionalGeneration):
        whisper_model, whisper_name = whisper.float(), whisper.name_or_path or None
    elif _is_openai_checkpoint_file(whisper):
        if processor is None:
            raise ValueError(
                f"{whisper} is an OpenAI checkpoint: pass processor=/--processor with the matching transformers "
                "Whisper (dir or Hub id) for the tokenizer, feature extractor and generation config."
            )
        whisper_model, whisper_name = load_openai_whisper(whisper), None
        whisper_model.generation_config = GenerationConfig.from_pretrained(processor)
    else:
        whisper_name = os.fspath(whisper)
        whisper_model = WhisperForConditionalGeneration.from_pretrained(whisper_name, dtype=torch.float32).eval()
    processor = processor if processor is not None else whisper_name
    if base_model_name_or_path is None and whisper_name:
        local = Path(whisper_name)
        base_model_name_or_path = str(local.resolve()) if local.is_dir() else whisper_name
    if head_only and not base_model_name_or_path:
        raise ValueError(
            "a head-only checkpoint must name its base Whisper: give base_model_name_or_path/--base-model "
            "(the transformers Whisper dir or Hub id matching the OpenAI checkpoint)."
        )

    mismatches = []
    if settings["d_model"] != whisper_model.config.d_model:
        mismatches.append(f"width: head {settings['d_model']} vs Whisper d_model {whisper_model.config.d_model}")
    if mismatches:
        mode = f"TL-TR-{settings['at_low_dim']}" if settings["at_low_dim"] else "TL-TR"
        raise ValueError(
            f"the {mode} head in {at_checkpoint} does not fit the Whisper {whisper_name or whisper}: "
            + "; ".join(mismatches)
            + f" (that Whisper has {whisper_model.config.encoder_layers} encoder layers; the head was trained for "
            "a Whisper of its width)."
        )

    # --- model ----------------------------------------------------------------------------------------------------
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
    model.eval()
    if dtype is not None:
        model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    if output_dir is None:
        return model

    # --- files ----------------------------------------------------------------------------------------------------
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir, head_only=head_only)
    if processor is not None:
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
        whisper_processor.save_pretrained(output_dir)
    label_names.save(output_dir)
    known = find_original_variant(variant or Path(at_checkpoint).name)
    if variant is not None and known is None:
        raise ValueError(f"--variant {variant!r} is not one of {sorted(ORIGINAL_VARIANTS_BY_NAME)}.")
    if known is not None and (known.at_low_dim, WHISPER_SIZES[known.size][1]) != (
        model.config.at_low_dim,
        model.config.d_model,
    ):
        known = None  # a file named like a release but of another shape: describe what it is, claim no metrics
    if known is not None:
        card = original_variant_card(
            known, head_only=head_only, base_model=model.config.base_model_name_or_path, repo_id=output_dir.name
        )
    else:
        card = model_card_for_model(
            model,
            output_dir.name,
            head_only=head_only,
            training=f"Converted from the original-format head `{Path(at_checkpoint).name}`; not one of the "
            "released variants, so no published metrics apply.",
        )
    (output_dir / "README.md").write_text(card, encoding="utf-8")
    return model


def main(argv: Sequence[str] | None = None) -> int:
    """`whisper-at-convert`: original Whisper-AT checkpoints -> transformers checkpoints."""
    parser = argparse.ArgumentParser(
        prog="whisper-at-convert",
        description="Convert an original Whisper-AT head (*_ori.pth / *_low.pth) and its Whisper into a "
        "transformers checkpoint (WhisperForAudioTaggingAndASR), or a head-only checkpoint. With --variant and no "
        "--at-checkpoint, the released head and its Whisper are downloaded first.",
    )
    parser.add_argument(
        "--whisper",
        help="transformers Whisper dir or Hub id (e.g. openai/whisper-large-v2), or an OpenAI .pt checkpoint "
        "(default with --variant: the variant's openai/whisper-*)",
    )
    parser.add_argument("--at-checkpoint", help="original head file, e.g. large-v2_ori.pth (default: download it)")
    parser.add_argument(
        "--output", help="output folder (with several variants: one subfolder whisper-at-NAME per variant)"
    )
    parser.add_argument("--head-only", action="store_true", help="write only the head, naming the base Whisper")
    parser.add_argument(
        "--labels",
        help="folder with class_labels_indices.csv and label_name_dict.json (default: the installed whisper-at's)",
    )
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None, help="weights dtype")
    parser.add_argument(
        "--processor", help="transformers Whisper dir or Hub id for tokenizer/feature extractor/generation config"
    )
    parser.add_argument("--base-model", help="base Whisper to record in the config (default: --whisper)")
    parser.add_argument("--base-model-revision", help="revision of the base Whisper, if known")
    parser.add_argument(
        "--variant",
        help="released variant (large-v2, small_low, ...; 'all' or a comma list to download and convert several); "
        "with --at-checkpoint only names the model card",
    )
    parser.add_argument(
        "--download-only",
        action="store_true",
        help="with --variant: resolve into the cache (as `whisper-at --model NAME` does on first use) and print the "
        "path; nothing else is written",
    )
    parser.add_argument(
        "--push-to-hub", metavar="ORG", help="with --variant: push each converted checkpoint to ORG/whisper-at-NAME"
    )
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create private repos")
    args = parser.parse_args(argv)
    try:
        if args.variant and not args.at_checkpoint:
            return _convert_released(args)
        if args.download_only or args.push_to_hub:
            parser.error("--download-only and --push-to-hub need --variant without --at-checkpoint")
        if not args.at_checkpoint or not args.output:
            parser.error("give --at-checkpoint and --output (or --variant NAME to download the released head)")
        if args.whisper is None:
            from .original_release import get_variant

            if not args.variant:
                parser.error("give --whisper (or --variant NAME for its Whisper)")
            args.whisper = get_variant(args.variant).base_model
        model = convert_whisper_at_checkpoint(
            args.whisper,
            args.at_checkpoint,
            args.output,
            head_only=args.head_only,
            labels=args.labels,
            dtype=args.dtype,
            processor=args.processor,
            base_model_name_or_path=args.base_model,
            base_model_revision=args.base_model_revision,
            variant=args.variant,
        )
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"whisper-at-convert: error: {error}", file=sys.stderr)
        return 1
    _report(model, args.output, args.head_only)
    return 0


def _report(model: Any, output: str | os.PathLike, head_only: bool) -> None:
    kind = "head-only checkpoint" if head_only else "checkpoint"
    mode = f"TL-TR-{model.config.at_low_dim}" if model.config.at_low_dim else "TL-TR"
    print(
        f"wrote {kind} to {output}: {mode} head on {model.config.encoder_layers} layers x "
        f"d_model {model.config.d_model}, {model.config.num_labels} labels"
    )


def _convert_released(args: argparse.Namespace) -> int:
    """`--variant NAME|all|A,B` without `--at-checkpoint`: download (cached), convert, write / push / just cache."""
    import tempfile

    from .model_card import original_variant_card
    from .original_release import (
        download_release_head,
        download_whisper,
        get_variant,
        released_checkpoint,
        variant_names,
    )

    names = variant_names() if args.variant == "all" else [name.strip() for name in args.variant.split(",") if name]
    variants = [get_variant(name) for name in names]  # unknown names fail before any download
    if args.download_only:
        for variant in variants:
            print(f"{variant.name}: {released_checkpoint(variant)}")
        return 0
    if not args.output and not args.push_to_hub:
        raise ValueError("give --output DIR, --push-to-hub ORG or --download-only with --variant")
    api = None
    if args.push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
    for variant in variants:
        whisper_dir = download_whisper(variant)
        whisper_config = json.loads((whisper_dir / "config.json").read_text())
        head = download_release_head(variant, whisper_config=whisper_config, whisper=variant.base_model)
        with tempfile.TemporaryDirectory(prefix="whisper-at-convert-") as scratch:
            if args.output:
                output = Path(args.output) / variant.repo_name if len(variants) > 1 else Path(args.output)
            else:
                output = Path(scratch) / variant.repo_name
            model = convert_whisper_at_checkpoint(
                str(whisper_dir),
                head.path,
                output,
                head_only=args.head_only,
                labels=args.labels,
                dtype=args.dtype,
                processor=str(whisper_dir),
                base_model_name_or_path=variant.base_model,
                base_model_revision=whisper_dir.name,
                variant=variant.name,
            )
            _report(model, output, args.head_only)
            if api is not None:
                repo_id = f"{args.push_to_hub}/{variant.repo_name}"
                card = original_variant_card(variant, head_only=args.head_only, repo_id=repo_id)
                (output / "README.md").write_text(card, encoding="utf-8")
                api.create_repo(repo_id, private=args.private, exist_ok=True)
                api.upload_folder(
                    repo_id=repo_id,
                    folder_path=str(output),
                    commit_message=f"{variant.head_file} converted onto {variant.base_model}@{whisper_dir.name[:12]}",
                )
                print(f"pushed {variant.name} to {repo_id}")
    return 0


__all__ = [
    "ORIGINAL_PREFIX",
    "convert_original_head_state_dict",
    "convert_whisper_at_checkpoint",
    "export_original_checkpoint",
    "hf_head_key_to_original",
    "hf_key_to_openai_whisper",
    "load_openai_whisper",
    "load_original_head",
    "load_torch_checkpoint",
    "main",
    "openai_dims_to_whisper_config",
    "openai_whisper_key_to_hf",
    "original_head_key_to_hf",
]


if __name__ == "__main__":
    sys.exit(main())
