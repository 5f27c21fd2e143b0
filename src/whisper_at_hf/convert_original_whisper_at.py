"""Conversion of the original Whisper-AT checkpoints (`*_ori.pth`, `*_low.pth` TL-TR heads) to this package.

The original head is an `ATModel` whose state dict keys start with `at_model.` in the released files. This module
owns the mapping of those names to `WhisperATHead`'s and the inference of the head settings from the tensors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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


__all__ = ["ORIGINAL_PREFIX", "convert_original_head_state_dict", "original_head_key_to_hf"]
