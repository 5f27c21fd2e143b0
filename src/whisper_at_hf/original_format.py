"""The original Whisper-AT formats, read and written: the TL-TR head files (`*_ori.pth`, `*_low.pth`, keys
`at_model.*`) and OpenAI Whisper checkpoints (`tiny.pt` ... `large-v2.pt`).

The names of both formats and ours are ONE two-way table per part ([`HEAD_TOP`], [`BLOCK`], [`OPENAI_TOP`],
[`OPENAI_BLOCK`]), read one way to load and the other way to export. Files are read with
`torch.load(weights_only=True)` only.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .head_only import HEAD_PREFIX
from .labels import LabelNames

ORIGINAL_PREFIX = "at_model."
# the original release's AudioSet label files (English by index; all languages)
ORIGINAL_LABELS_CSV = "class_labels_indices.csv"
ORIGINAL_LABEL_NAME_DICT = "label_name_dict.json"
_PARAMS = ("weight", "bias")


class TwoWayTable:
    """A one-to-one name table: `to_hf[original] -> ours`, `to_original[ours] -> original`."""

    def __init__(self, pairs: Mapping[str, str]):
        self.to_hf: dict[str, str] = dict(pairs)
        self.to_original: dict[str, str] = {ours: original for original, ours in pairs.items()}
        if len(self.to_original) != len(self.to_hf):
            raise ValueError("a two-way name table must be one-to-one")

    def __or__(self, other: TwoWayTable) -> TwoWayTable:
        return TwoWayTable({**self.to_hf, **other.to_hf})


# a block (Whisper's `ResidualAttentionBlock` -> `WhisperATBlock` / transformers' Whisper layer)
BLOCK = TwoWayTable(
    {
        "attn.query": "self_attn.q_proj",
        "attn.key": "self_attn.k_proj",
        "attn.value": "self_attn.v_proj",
        "attn.out": "self_attn.out_proj",
        "attn_ln": "self_attn_layer_norm",
        "mlp.0": "fc1",
        "mlp.2": "fc2",
        "mlp_ln": "final_layer_norm",
    }
)
# the head's top-level modules (`at_model.<top>` -> `WhisperATHead.<top>`)
HEAD_TOP = TwoWayTable(
    {
        "time_tr": "time_block",
        "layer_tr": "layer_block",
        "down_layer.0": "input_norm",
        "down_layer.1": "input_proj",
        "mlp_layer.0": "classifier_norm",
        "mlp_layer.1": "classifier",
    }
)
# the head's top-level modules made of blocks
_HEAD_BLOCK_TOPS = {"time_tr": "time_block", "layer_tr": "layer_block"}
# OpenAI Whisper's top-level weights (full names, parameter appended) and its decoder blocks' cross-attention
OPENAI_TOP = TwoWayTable(
    {
        "encoder.conv1": "model.encoder.conv1",
        "encoder.conv2": "model.encoder.conv2",
        "encoder.positional_embedding": "model.encoder.embed_positions.weight",
        "encoder.ln_post": "model.encoder.layer_norm",
        "decoder.token_embedding": "model.decoder.embed_tokens",
        "decoder.positional_embedding": "model.decoder.embed_positions.weight",
        "decoder.ln": "model.decoder.layer_norm",
    }
)
OPENAI_BLOCK = BLOCK | TwoWayTable(
    {
        "cross_attn.query": "encoder_attn.q_proj",
        "cross_attn.key": "encoder_attn.k_proj",
        "cross_attn.value": "encoder_attn.v_proj",
        "cross_attn.out": "encoder_attn.out_proj",
        "cross_attn_ln": "encoder_attn_layer_norm",
    }
)
_OPENAI_BLOCK_PATTERN = re.compile(
    r"^(?P<stack>encoder|decoder)\.blocks\.(?P<index>\d+)\.(?P<module>.+)\.(?P<param>weight|bias)$"
)
_HF_BLOCK_PATTERN = re.compile(
    r"^model\.(?P<stack>encoder|decoder)\.layers\.(?P<index>\d+)\.(?P<module>.+)\.(?P<param>weight|bias)$"
)


def _head_parts(name: str, tops: Mapping[str, str]) -> tuple[str, str, str] | None:
    """`TOP[.BLOCK].PARAM` -> `(top, block, param)` for a `top` of `tops` (block `""` when absent), else `None`."""
    for top in tops:
        if name.startswith(top + "."):
            block, _, param = name[len(top) + 1 :].rpartition(".")
            return (top, block, param) if param in _PARAMS else None
    return None


def _rename_head(name: str, tops: Mapping[str, str], blocks: Mapping[str, str], block_tops) -> str | None:
    parts = _head_parts(name, tops)
    if parts is None:
        return None
    top, block, param = parts
    if not block:
        return f"{tops[top]}.{param}"
    if top not in block_tops or block not in blocks:
        return None
    return f"{tops[top]}.{blocks[block]}.{param}"


def original_head_key_to_hf(key: str) -> str:
    """Maps one original head key (`at_model.time_tr.attn.query.weight`) to ours (`time_block.self_attn.q_proj.weight`).

    Raises `KeyError` for names that are not part of a TL-TR head.
    """
    name = key.removeprefix(ORIGINAL_PREFIX)
    ours = _rename_head(name, HEAD_TOP.to_hf, BLOCK.to_hf, _HEAD_BLOCK_TOPS)
    if ours is None:
        raise KeyError(f"{key!r} is not a Whisper-AT TL-TR head weight.")
    return ours


def hf_head_key_to_original(key: str) -> str:
    """The inverse of [`original_head_key_to_hf`]: `time_block.self_attn.q_proj.weight` (with or without the model's
    `audio_tagging_head.` prefix) -> `at_model.time_tr.attn.query.weight`."""
    name = key.removeprefix(f"{HEAD_PREFIX}.")
    original = _rename_head(name, HEAD_TOP.to_original, BLOCK.to_original, _HEAD_BLOCK_TOPS.values())
    if original is None:
        raise KeyError(f"{key!r} is not a TL-TR head weight.")
    return ORIGINAL_PREFIX + original


def _rename_whisper(key: str, pattern: re.Pattern, blocks: Mapping[str, str], block_format: str,
                    tops: Mapping[str, str]) -> str | None:  # fmt: skip
    match = pattern.match(key)
    if match is not None:
        module = blocks.get(match.group("module"))
        return None if module is None else block_format.format(**{**match.groupdict(), "module": module})
    for name, renamed in tops.items():
        if key == name:
            return renamed
        if key.startswith(name + ".") and key[len(name) + 1 :] in _PARAMS:
            return f"{renamed}.{key[len(name) + 1 :]}"
    return None


def openai_whisper_key_to_hf(key: str) -> str:
    """Maps an OpenAI Whisper weight name (`encoder.blocks.0.attn.query.weight`) to transformers'
    (`model.encoder.layers.0.self_attn.q_proj.weight`). Raises `KeyError` for names that are not Whisper's."""
    ours = _rename_whisper(key, _OPENAI_BLOCK_PATTERN, OPENAI_BLOCK.to_hf, "model.{stack}.layers.{index}.{module}.{param}",
                           OPENAI_TOP.to_hf)  # fmt: skip
    if ours is None:
        raise KeyError(f"{key!r} is not an OpenAI Whisper weight.")
    return ours


def hf_key_to_openai_whisper(key: str) -> str:
    """The inverse of [`openai_whisper_key_to_hf`]. Raises `KeyError` for names that have no OpenAI counterpart."""
    original = _rename_whisper(key, _HF_BLOCK_PATTERN, OPENAI_BLOCK.to_original, "{stack}.blocks.{index}.{module}.{param}",
                               OPENAI_TOP.to_original)  # fmt: skip
    if original is None:
        raise KeyError(f"{key!r} has no OpenAI Whisper counterpart.")
    return original


def _is_head_key(name: str) -> bool:
    """Whether an unprefixed key names one of the head's top-level modules (a full checkpoint's Whisper keys do not)."""
    return _head_parts(name, HEAD_TOP.to_hf) is not None


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
        if not key.startswith(ORIGINAL_PREFIX) and not _is_head_key(key):
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
# OpenAI Whisper checkpoints (`tiny.pt` ... `large-v2.pt`) <-> transformers
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
# special token ids of the two OpenAI vocabularies (English-only: 51864 entries, multilingual: 51865)
_ENGLISH_VOCAB_SIZE = 51864
_SPECIAL_TOKENS = {
    True: {"bos_token_id": 50256, "eos_token_id": 50256, "pad_token_id": 50256, "decoder_start_token_id": 50257},
    False: {"bos_token_id": 50257, "eos_token_id": 50257, "pad_token_id": 50257, "decoder_start_token_id": 50258},
}



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
        if key.startswith(f"{HEAD_PREFIX}."):
            head_state[hf_head_key_to_original(key)] = tensor.detach().cpu().clone()
        else:
            whisper_state[hf_key_to_openai_whisper(key)] = tensor.detach().cpu().clone()
    return {"dims": dims, "model_state_dict": whisper_state}, head_state




# --------------------------------------------------------------------------------------------------------------------
# The AudioSet label names of the original release
# --------------------------------------------------------------------------------------------------------------------
def original_assets_dir() -> Path:
    """The data folder of an installed original `whisper-at` package (holds the AudioSet label files)."""
    import importlib.util

    spec = importlib.util.find_spec("whisper_at")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the original AudioSet label files were not found: pass a folder holding "
            f"{ORIGINAL_LABELS_CSV} and {ORIGINAL_LABEL_NAME_DICT}, or `pip install --no-deps whisper-at`."
        )
    return Path(spec.origin).parent / "assets"


def read_original_label_names(folder: str | os.PathLike | None = None) -> LabelNames:
    """Reads the original release's AudioSet names: `class_labels_indices.csv` (English, by index) and
    `label_name_dict.json` (per language), from `folder` or the installed `whisper-at` package."""
    folder = Path(folder) if folder is not None else original_assets_dir()
    csv_path, dict_path = folder / ORIGINAL_LABELS_CSV, folder / ORIGINAL_LABEL_NAME_DICT
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path} not found (need {ORIGINAL_LABELS_CSV} with index,mid,display_name).")
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: int(row["index"]))
    names: dict[str, list[str]] = {"en": [row["display_name"] for row in rows]}
    if dict_path.is_file():
        with open(dict_path, encoding="utf-8") as handle:
            for language, language_names in json.load(handle).items():
                if language != "en":
                    names[language] = list(language_names)
    return LabelNames(names)


__all__ = [
    "BLOCK",
    "HEAD_TOP",
    "OPENAI_BLOCK",
    "OPENAI_TOP",
    "ORIGINAL_PREFIX",
    "TwoWayTable",
    "convert_original_head_state_dict",
    "export_original_checkpoint",
    "hf_head_key_to_original",
    "hf_key_to_openai_whisper",
    "load_openai_whisper",
    "load_original_head",
    "load_torch_checkpoint",
    "openai_dims_to_whisper_config",
    "openai_whisper_key_to_hf",
    "original_assets_dir",
    "original_head_key_to_hf",
    "read_original_label_names",
]
