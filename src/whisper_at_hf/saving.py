"""Saving and pushing a Whisper-AT model: what `WhisperForAudioTaggingAndASR.save_pretrained` and `push_to_hub` do
beyond transformers'. Authoring code of the installed package: a checkpoint's copy of the model (its remote code)
carries none of it, and there saving asks for the package (`modeling_whisper_at._saving`).

- a full save: after transformers' weights and config, the code for `trust_remote_code` (`remote_code.py`), the
  head-only marker dropped from the config, and the processor of the model's checkpoint or base Whisper beside it;
- a head-only save: the head's weights and a config naming its base Whisper (the format is `head_only.py`'s);
- a push: the saved folder with a card (the folder's, else the repo's, else the package's) in one upload.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

from transformers.utils import logging

from .head_only import FULL_WEIGHTS_NAMES, HEAD_ONLY_MARKER, HEAD_PREFIX, HEAD_WEIGHTS_NAME, has_processor, processor_source
from .hub_upload import upload_folder
from .model_card import model_card_for_model
from .remote_code import save_remote_code

logger = logging.get_logger(f"transformers.{__name__}")  # under transformers: its verbosity rules ours


def finish_full_save(model: Any, save_directory: str | os.PathLike) -> None:
    """What a full save writes after transformers' `save_pretrained`: the code, the unmarked config, the processor."""
    save_remote_code(save_directory, type(model))
    unmark_full_checkpoint(save_directory)
    save_processor_beside(model, save_directory)


def unmark_full_checkpoint(save_directory: str | os.PathLike) -> None:
    """Drops the head-only marker from a full checkpoint's `config.json`: a model built from a head-only checkpoint's
    config carries it, and a full save of that model must not read back as head-only."""
    config_file = os.path.join(save_directory, "config.json")
    with open(config_file, encoding="utf-8") as handle:
        config = json.load(handle)
    if config.pop(HEAD_ONLY_MARKER, None) is not None:
        with open(config_file, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)
            handle.write("\n")


def save_head_only(model: Any, save_directory: str | os.PathLike, is_main_process: bool = True) -> None:
    """Writes a head-only checkpoint of `model` to `save_directory` (see the module docstring)."""
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
    setattr(config, HEAD_ONLY_MARKER, True)
    config.save_pretrained(save_directory)
    state = {
        f"{HEAD_PREFIX}.{key}": tensor.detach().to("cpu").contiguous()
        for key, tensor in model.audio_tagging_head.state_dict().items()
    }
    save_file(state, os.path.join(save_directory, HEAD_WEIGHTS_NAME), metadata={"format": "pt"})
    save_remote_code(save_directory, type(model))


def save_processor_beside(model: Any, save_directory: str | os.PathLike) -> None:
    """Saves the processor of [`processor_source`] into `save_directory` unless it has one already, so that
    `pipeline(..., model=save_directory)` loads the folder; without a known processor, says what to do instead."""
    from transformers import WhisperProcessor

    if has_processor(save_directory):
        return
    fix = f"save it beside the weights with `processor.save_pretrained({os.fspath(save_directory)!r})`"
    try:
        source = processor_source(model)
        if source is not None:
            WhisperProcessor.from_pretrained(source[0], revision=source[1]).save_pretrained(save_directory)
            return
    except Exception as error:  # noqa: BLE001  (the weights are saved; an unreachable source must not undo that)
        logger.warning(f"no processor saved in {save_directory} ({type(error).__name__}: {error}); {fix}.")
        return
    logger.warning(f"no processor saved in {save_directory} (the model does not know where its processor is); {fix}.")


def push_folder(
    model: Any,
    folder: str | os.PathLike,
    head_only: bool,
    repo_id: str | None = None,
    token: str | bool | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    **_: Any,
) -> str:
    """Uploads a saved checkpoint folder of `model` to `repo_id` (default: the folder's name), with a `README.md` card:
    the folder's, else the repo's, else the package's card of this model (`model_card.model_card_for_model`)."""
    from huggingface_hub import HfApi, ModelCard
    from huggingface_hub.errors import EntryNotFoundError

    repo_id = repo_id or os.path.basename(os.path.abspath(folder))
    repo_id = HfApi(token=token).create_repo(repo_id, private=private, exist_ok=True).repo_id
    card = os.path.join(folder, "README.md")
    if not os.path.isfile(card):
        try:
            ModelCard.load(repo_id, token=token).save(card)
        except EntryNotFoundError:  # a repo without a card
            text = model_card_for_model(model, repo_id.split("/")[-1], repo_id=repo_id, head_only=head_only)
            Path(card).write_text(text, encoding="utf-8")
    default_message = "Upload Whisper-AT head" if head_only else "Upload Whisper-AT model"
    return upload_folder(folder, repo_id, token, private, commit_message or default_message)


__all__ = ["finish_full_save", "push_folder", "save_head_only", "save_processor_beside", "unmark_full_checkpoint"]
