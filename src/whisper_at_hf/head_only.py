"""Head-only checkpoints, in the way of PEFT adapters: save only the small trained part, name the base it belongs to.

A head-only checkpoint is `audio_tagging_head.safetensors` (keys `audio_tagging_head.*`, a few MB) plus a
`config.json` whose `base_model_name_or_path` / `base_model_revision` name the Whisper it was trained on (and, for
`trust_remote_code`, the code files and `auto_map`). Loading fetches the base Whisper and attaches the head.

`WhisperForAudioTaggingAndASR.save_pretrained(dir, head_only=True)` and its `from_pretrained` call these functions;
this module never imports the model (the model class is passed in).
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Any

from torch import nn

from .configuration_whisper_at import WhisperATConfig
from .hub_utils import find_file, hub_kwargs, upload_folder
from .labels import load_label_names
from .remote_code import save_remote_code

HEAD_PREFIX = "audio_tagging_head"
HEAD_WEIGHTS_NAME = "audio_tagging_head.safetensors"
FULL_WEIGHTS_NAMES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# config fields that describe the head (everything else comes from the base Whisper's config)
HEAD_CONFIG_KEYS = (
    "at_low_dim", "at_time_heads", "at_layer_heads", "at_pool_stride", "at_time_res", "id2label", "label2id"
)
# Whisper dims the head depends on: a head attaches only to a Whisper that agrees on all of them
HEAD_WHISPER_DIMS = ("d_model", "encoder_layers", "num_mel_bins", "max_source_positions")


# ----- finding ------------------------------------------------------------------------------------------------------
def find_head_only_weights(name_or_path: str | os.PathLike, **kwargs: Any) -> str | None:
    """Path of the head weights if `name_or_path` (a local folder or Hub repo) is a head-only checkpoint: it has
    `audio_tagging_head.safetensors` and no full model weights. `None` otherwise (also when it does not exist: the
    full-weights loader then reports that). `kwargs`: `from_pretrained` kwargs (`revision`, `subfolder`, `token`...)."""
    location = dict(revision=kwargs.get("revision"), subfolder=kwargs.get("subfolder"), **hub_kwargs(kwargs))
    head_file = find_file(name_or_path, HEAD_WEIGHTS_NAME, **location)
    if head_file is None:
        return None
    if any(find_file(name_or_path, name, **location) for name in FULL_WEIGHTS_NAMES[:2]):
        return None
    local = os.path.join(os.fspath(name_or_path), kwargs.get("subfolder") or "")
    if os.path.isdir(local) and any(os.path.isfile(os.path.join(local, name)) for name in FULL_WEIGHTS_NAMES[2:]):
        return None
    return head_file


# ----- loading ------------------------------------------------------------------------------------------------------
def check_whisper_fits_head(head_config: Any, whisper_config: Any, whisper_name: str | None = None) -> None:
    """Raises `ValueError` naming every dim in which a Whisper config disagrees with what a head was built for
    (`d_model`, `encoder_layers`, `num_mel_bins`, `max_source_positions`)."""
    mismatches = [
        f"{dim}: head {getattr(head_config, dim)} vs Whisper {getattr(whisper_config, dim)}"
        for dim in HEAD_WHISPER_DIMS
        if getattr(head_config, dim) != getattr(whisper_config, dim)
    ]
    if mismatches:
        raise ValueError(
            f"the audio-tagging head does not fit the Whisper {whisper_name or ''}: " + "; ".join(mismatches) + "."
        )


def load_head_weights(head: nn.Module, path: str | os.PathLike) -> None:
    """Loads `audio_tagging_head.*` weights from a safetensors file into `head`.

    Raises `ValueError` when weights are missing, unexpected or of the wrong shape.
    """
    from safetensors.torch import load_file

    state = load_file(os.fspath(path))
    prefix = f"{HEAD_PREFIX}."
    foreign = sorted(key for key in state if not key.startswith(prefix))
    head_state = {key[len(prefix) :]: tensor for key, tensor in state.items() if key.startswith(prefix)}
    expected = head.state_dict()
    wrong_shape = [
        f"{key}: {tuple(tensor.shape)} vs {tuple(expected[key].shape)}"
        for key, tensor in head_state.items()
        if key in expected and tensor.shape != expected[key].shape
    ]
    missing = sorted(set(expected) - set(head_state))
    unexpected = sorted(set(head_state) - set(expected))
    if wrong_shape or missing or unexpected or foreign:
        raise ValueError(
            f"head weights in {path} do not fit this model's head (wrong shape: {wrong_shape[:3]}, missing: "
            f"{missing[:6]}, unexpected: {unexpected[:6]}, not head weights: {foreign[:6]})."
        )
    head.load_state_dict(head_state)


def load_head_only(
    model_class: Any,
    head_name_or_path: str | os.PathLike,
    head_file: str,
    base_model: Any = None,
    **kwargs: Any,
) -> Any:
    """Loads the base Whisper of a head-only checkpoint (or `base_model`) and attaches the head.

    `kwargs` are `from_pretrained` kwargs: `revision`/`subfolder`/`config` concern the head checkpoint, the rest
    (`dtype`, `device_map`, `cache_dir`, `token`, ...) the base Whisper. Returns `(model, loading_info)`.
    """
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = kwargs.pop("config", None)
    revision, subfolder = kwargs.pop("revision", None), kwargs.pop("subfolder", None) or ""
    location = hub_kwargs(kwargs)
    if config is None:
        config = WhisperATConfig.from_pretrained(head_name_or_path, revision=revision, subfolder=subfolder, **location)
    if getattr(config, "model_type", None) != WhisperATConfig.model_type:
        raise ValueError(f"{head_name_or_path} has model_type {config.model_type!r}, not a Whisper-AT head.")

    if isinstance(base_model, WhisperForConditionalGeneration):
        whisper, base_name, base_revision = base_model, base_model.name_or_path or None, None
    else:
        base_name = os.fspath(base_model) if base_model is not None else config.base_model_name_or_path
        base_revision = None if base_model is not None else config.base_model_revision
        if not base_name:
            raise ValueError(
                f"{head_name_or_path} is a head-only checkpoint whose config names no base Whisper "
                "(base_model_name_or_path); pass base_model=PATH_OR_ID_OR_MODEL."
            )
        # check the dims on the config before loading (possibly GBs of) weights
        try:
            base_config = WhisperConfig.from_pretrained(base_name, revision=base_revision, **location)
        except (OSError, ValueError) as error:  # a missing local path surfaces as a "Repo id must be ..." error
            where = "given as base_model=" if base_model is not None else "recorded in config.json"
            raise OSError(
                f"{head_name_or_path} is a head-only checkpoint: the base Whisper `{base_name}` {where} was not "
                f"found; pass `base_model=` (a local path, Hub id or loaded WhisperForConditionalGeneration). "
                f"({type(error).__name__}: {error})"
            ) from error
        check_whisper_fits_head(config, base_config, base_name)
        whisper = WhisperForConditionalGeneration.from_pretrained(
            base_name, revision=base_revision, **base_loading_kwargs(kwargs)
        )
    check_whisper_fits_head(config, whisper.config, base_name)

    head_kwargs = {key: getattr(config, key) for key in HEAD_CONFIG_KEYS}
    model = model_class.from_whisper(
        whisper, base_model_name_or_path=base_name, base_model_revision=base_revision, **head_kwargs
    )
    try:
        load_head_weights(model.audio_tagging_head, head_file)
    except Exception as error:
        if type(error).__name__ == "SafetensorError":
            raise unreadable_weights_error(head_file, None, error) from error
        raise
    # the head checkpoint is the model's name, not the base Whisper; its label names travel with the model
    model.config.name_or_path = model.name_or_path = os.fspath(head_name_or_path)
    model.label_names = load_label_names(head_name_or_path, model.config.id2label, revision=revision)
    model.eval()
    return model, {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}


# ----- upstream-coupled (transformers) ------------------------------------------------------------------------------
# `AutoModel*.from_pretrained` hands the model class bookkeeping kwargs about the repo it resolved (`_from_auto`,
# `_commit_hash`, `trust_remote_code`, `code_revision`, `adapter_kwargs`). They concern the head repo, and the base
# Whisper's loader must not get them. Pinned by tests/test_upstream_pins.py::test_auto_class_bookkeeping_kwargs.
AUTO_CLASS_BOOKKEEPING_KWARGS = ("trust_remote_code", "code_revision", "adapter_kwargs")


def base_loading_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """`from_pretrained` kwargs for the base Whisper: all but the Auto classes' bookkeeping (private `_*` ones too)."""
    return {
        key: value
        for key, value in kwargs.items()
        if not key.startswith("_") and key not in AUTO_CLASS_BOOKKEEPING_KWARGS and key != "output_loading_info"
    }


# ----- saving -------------------------------------------------------------------------------------------------------
def save_head_only(
    model: Any,
    save_directory: str | os.PathLike,
    is_main_process: bool = True,
    push_to_hub: bool = False,
    **kwargs: Any,
) -> None:
    """Writes a head-only checkpoint of `model` to `save_directory` (see the module docstring).

    With `push_to_hub=True` the folder is uploaded to `repo_id` (default: the folder name); `token`, `private`,
    `commit_message` are passed on. Other `save_pretrained` kwargs do not apply and are ignored.
    """
    if not model.config.base_model_name_or_path:
        raise ValueError(
            "a head-only checkpoint must name its base Whisper: set model.config.base_model_name_or_path "
            "(and base_model_revision) to the Whisper path or Hub id the head belongs to."
        )
    if not is_main_process:
        return
    from safetensors.torch import save_file

    os.makedirs(save_directory, exist_ok=True)
    if any(os.path.isfile(os.path.join(save_directory, name)) for name in FULL_WEIGHTS_NAMES):
        warnings.warn(
            f"{save_directory} also holds full model weights; from_pretrained will load those, not the head-only "
            "checkpoint. Save head-only checkpoints to their own folder."
        )
    config = copy.deepcopy(model.config)
    config.architectures = [type(model).__name__]
    config.dtype = str(model.audio_tagging_head.classifier.weight.dtype).removeprefix("torch.")
    config.save_pretrained(save_directory)
    state = {
        f"{HEAD_PREFIX}.{key}": tensor.detach().to("cpu").contiguous()
        for key, tensor in model.audio_tagging_head.state_dict().items()
    }
    save_file(state, os.path.join(save_directory, HEAD_WEIGHTS_NAME), metadata={"format": "pt"})
    save_remote_code(save_directory, type(model))
    if push_to_hub:
        upload_folder(
            save_directory,
            repo_id=kwargs.get("repo_id"),
            token=kwargs.get("token"),
            private=kwargs.get("private"),
            commit_message=kwargs.get("commit_message") or "Upload Whisper-AT head",
        )


def unreadable_weights_error(name_or_path: Any, subfolder: str | None, error: Exception) -> OSError:
    """An `OSError` naming the safetensors file(s) that cannot be read (truncated or garbled), with safetensors' own
    message; for a Hub id, the repo (its files are in the cache)."""
    from safetensors import safe_open

    path = os.path.join(os.fspath(name_or_path), subfolder or "")
    files = [path] if os.path.isfile(path) else []
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            if name.endswith(".safetensors"):
                try:
                    with safe_open(os.path.join(path, name), framework="pt"):
                        pass
                except Exception:  # noqa: BLE001  (any failure to open names the file)
                    files.append(os.path.join(path, name))
    where = ", ".join(files) if files else f"the weights of {name_or_path}"
    return OSError(
        f"cannot read {where}: the file is truncated or corrupt (safetensors: {error}); download or save it again."
    )


def trainable_parameters_summary(model: nn.Module) -> str:
    """PEFT-style `trainable params: N || all params: M || trainable%: P`."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"


__all__ = [
    "HEAD_PREFIX",
    "HEAD_WEIGHTS_NAME",
    "check_whisper_fits_head",
    "find_head_only_weights",
    "load_head_only",
    "load_head_weights",
    "save_head_only",
]
