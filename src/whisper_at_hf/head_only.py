"""Head-only checkpoints, in the way of PEFT adapters: save only the small trained part, name the base it belongs to.

A head-only checkpoint is `audio_tagging_head.safetensors` (keys `audio_tagging_head.*`, a few MB) plus a
`config.json` whose `base_model_name_or_path` / `base_model_revision` name the Whisper it was trained on (and, for
`trust_remote_code`, the code files and `auto_map`). Loading fetches the base Whisper and attaches the head.

It is recognised by `"whisper_at_head_only": true` in its `config.json` (as PEFT recognises an adapter by its own
config file), read with the config `from_pretrained` loads anyway: no probing for files, and a network error stays an
error. Checkpoints written before the marker are recognised in a local folder by their files (the head weights and
no full weights); on the Hub, save them again (or add the marker to their `config.json`).

`WhisperForAudioTaggingAndASR.from_pretrained` calls these functions (saving is `saving.py`'s: the format's names
are here); this module never imports the model (the model class is passed in).
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn
from transformers import PretrainedConfig
from transformers.utils import logging

from .configuration_whisper_at import WhisperATConfig
from .hub_utils import find_file, hub_kwargs
from .labels import load_label_names

logger = logging.get_logger(f"transformers.{__name__}")  # under transformers: its verbosity rules ours

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
HEAD_ONLY_MARKER = "whisper_at_head_only"  # config.json key: true in head-only checkpoints
# from_pretrained kwargs the config loader reads (where the checkpoint is), which the weights' loader needs too
CONFIG_LOCATION_KWARGS = (
    "cache_dir", "force_download", "proxies", "local_files_only", "token", "revision", "subfolder", "_from_auto",
    "_from_pipeline", "_commit_hash",
)

# ----- upstream-coupled: `PreTrainedModel.from_pretrained` takes these for the weights before it loads the config;
# handed to the config loader, `dtype` (a config attribute in transformers 5) would be set on the config and lost for
# the weights. Pin: tests/test_upstream_pins.py::test_model_loading_kwargs_are_taken_before_the_config.
MODEL_LOADING_KWARGS = (
    "state_dict", "dtype", "torch_dtype", "device_map", "max_memory", "offload_folder", "offload_buffers",
    "quantization_config", "variant", "generation_config", "gguf_file", "distributed_config", "device_mesh", "tp_plan",
    "tp_size", "key_mapping", "attn_implementation", "use_kernels", "kernel_config", "tqdm_class",
)


def load_checkpoint_config(
    config_class: type[PretrainedConfig], name_or_path: str | os.PathLike, kwargs: dict[str, Any]
) -> tuple[PretrainedConfig, dict[str, Any]]:
    """A checkpoint's config, loaded once as `PreTrainedModel.from_pretrained` loads it (kwargs that name config
    attributes, e.g. `output_attentions=True`, are applied to it), and the kwargs left for loading the weights.

    A `config=` object in `kwargs` is used as it is; a `config=` path is loaded instead of `name_or_path`'s.
    """
    kwargs = dict(kwargs)
    config = kwargs.pop("config", None)
    if isinstance(config, PretrainedConfig):
        return config, kwargs
    location = {key: kwargs.pop(key) for key in CONFIG_LOCATION_KWARGS if key in kwargs}
    loading = {key: kwargs.pop(key) for key in MODEL_LOADING_KWARGS if key in kwargs}
    location["revision"] = resolved_revision(name_or_path, location.get("revision"), location)
    config, unused = config_class.from_pretrained(
        name_or_path if config is None else config, return_unused_kwargs=True, **location, **kwargs
    )
    return config, {**location, **loading, **unused}


# ----- upstream-coupled: transformers resolves a revision to its commit once per load (`resolve_revision`, one
# request) and answers a `ResolvedRevision` as it is. Resolving once here and handing it on keeps a load of our
# checkpoints at plain Whisper's requests. Pin: tests/test_hub_utils.py::test_checkpoint_kind_costs_no_requests...
def resolved_revision(name_or_path: str | os.PathLike, revision: str | None, location: dict[str, Any]) -> str | None:
    """`revision` (default: the main branch) of `name_or_path` resolved to its commit (unchanged for local paths)."""
    from transformers.utils.hub import resolve_revision

    return resolve_revision(
        name_or_path,
        revision or "main",
        token=location.get("token"),
        local_files_only=bool(location.get("local_files_only")),
        cache_dir=location.get("cache_dir"),
    )


def is_head_only_checkpoint(
    config: PretrainedConfig, name_or_path: str | os.PathLike, subfolder: str | None = None
) -> bool:
    """Whether the checkpoint whose config this is holds only the head: its config carries the marker, or (written
    before the marker) it is a local folder with the head weights and no full weights. Reads no file but the config."""
    if getattr(config, HEAD_ONLY_MARKER, False):
        return True
    local = os.path.join(os.fspath(name_or_path), subfolder or "")
    return (
        os.path.isdir(local)
        and os.path.isfile(os.path.join(local, HEAD_WEIGHTS_NAME))
        and not any(os.path.isfile(os.path.join(local, name)) for name in FULL_WEIGHTS_NAMES)
    )


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
    model_class: Any, head_name_or_path: str | os.PathLike, base_model: Any = None, **kwargs: Any
) -> tuple[Any, dict]:
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
    head_file = find_file(head_name_or_path, HEAD_WEIGHTS_NAME, revision=revision, subfolder=subfolder, **location)
    if head_file is None:
        raise OSError(f"{head_name_or_path} is a head-only checkpoint (config.json) without {HEAD_WEIGHTS_NAME}.")

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
        resolved = resolved_revision(base_name, base_revision, location)  # once, for its config and its weights
        # check the dims on the config before loading (possibly GBs of) weights
        try:
            base_config = WhisperConfig.from_pretrained(base_name, revision=resolved, **location)
        except (OSError, ValueError) as error:  # a missing local path surfaces as a "Repo id must be ..." error
            where = "given as base_model=" if base_model is not None else "recorded in config.json"
            raise OSError(
                f"{head_name_or_path} is a head-only checkpoint: the base Whisper `{base_name}` {where} was not "
                f"found; pass `base_model=` (a local path, Hub id or loaded WhisperForConditionalGeneration). "
                f"({type(error).__name__}: {error})"
            ) from error
        check_whisper_fits_head(config, base_config, base_name)
        whisper = WhisperForConditionalGeneration.from_pretrained(
            base_name, revision=resolved, **base_loading_kwargs(kwargs)
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


# ----- the processor ------------------------------------------------------------------------------------------------
# a checkpoint has a processor when it has both halves: the feature extractor's settings (transformers 5 writes them
# into processor_config.json, earlier versions into preprocessor_config.json) and the tokenizer's
PROCESSOR_FILES = (("processor_config.json", "preprocessor_config.json"), ("tokenizer_config.json",))


def has_processor(name_or_path: str | os.PathLike | None, revision: str | None = None) -> bool:
    """Whether a local folder or Hub repo holds a Whisper processor (feature extractor and tokenizer files)."""
    if not name_or_path:
        return False
    return all(
        any(find_file(name_or_path, name, revision=revision) is not None for name in names)
        for names in PROCESSOR_FILES
    )


def processor_source(model: Any) -> tuple[str, str | None] | None:
    """`(name_or_path, revision)` of the processor that belongs to `model`: its own checkpoint's when that holds one,
    else that of the base Whisper its config names (`base_model_name_or_path`, recorded by `from_whisper` and in
    head-only checkpoints); `None` when neither has one."""
    config = model.config
    candidates = [
        (getattr(model, "name_or_path", None) or None, getattr(config, "_commit_hash", None)),
        (config.base_model_name_or_path, config.base_model_revision),
    ]
    for name, revision in candidates:
        if name and has_processor(name, revision):
            return os.fspath(name), revision
    return None


def load_model_processor(model: Any) -> Any:
    """The `WhisperProcessor` of a Whisper-AT model for a pipeline whose checkpoint has none (head-only checkpoints,
    full saves without `processor.save_pretrained`): the base Whisper's, as [`processor_source`] finds it.

    Raises `OSError` saying how to put a processor beside the checkpoint when none is found."""
    from transformers import WhisperProcessor

    name = getattr(model, "name_or_path", None) or "this model"
    source = processor_source(model)
    if source is None:
        raise OSError(
            f"{name} has no processor (tokenizer and feature extractor) and its config names no base Whisper that "
            f"has one: save one beside the weights, `WhisperProcessor.from_pretrained(BASE_WHISPER)"
            f".save_pretrained({name!r})`, or pass `tokenizer=` and `feature_extractor=` to `pipeline()`."
        )
    if source[0] != name:
        logger.warning(f"{name} has no processor; using the one of its base Whisper {source[0]}.")
    return WhisperProcessor.from_pretrained(source[0], revision=source[1])


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
    "HEAD_ONLY_MARKER",
    "HEAD_PREFIX",
    "HEAD_WEIGHTS_NAME",
    "check_whisper_fits_head",
    "is_head_only_checkpoint",
    "load_checkpoint_config",
    "load_head_only",
    "load_head_weights",
    "has_processor",
    "load_model_processor",
    "processor_source",
]
