"""Saving a trained head (with processor, labels and a model card) and pushing it to the Hub."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..checkpoint_folder import write_checkpoint_folder
from ..hub_upload import upload_folder
from ..hub_utils import is_hub_id
from ..model_card import model_card_for_model

logger = logging.getLogger(f"transformers.{__name__}")  # under transformers: its verbosity rules ours

# The HTTP clients under the Hub client log one INFO line per request (`HTTP Request: GET ...`); huggingface_hub 1.x
# uses httpx2 / httpcore2, older ones httpx / httpcore, and urllib3 where requests is used.
HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "urllib3", "huggingface_hub")


def quiet_http_loggers() -> None:
    """No per-request INFO lines from the HTTP clients under the Hub client (the training scripts call it)."""
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def hub_id_of_cache_path(path: str | os.PathLike) -> tuple[str, str] | None:
    """`(repo_id, revision)` of a folder inside the Hugging Face cache
    (`.../models--org--name/snapshots/<commit>`), else `None`."""
    parts = Path(os.path.abspath(path)).parts
    for index, part in enumerate(parts[:-2]):
        if part.startswith("models--") and parts[index + 1] == "snapshots":
            return part.removeprefix("models--").replace("--", "/"), parts[index + 2]
    return None


def resolve_base_model_id(
    model_name_or_path: str | os.PathLike, base_model_id: str | None = None
) -> tuple[str | None, str | None]:
    """The Hub id (and revision, when known) of the Whisper a head is trained on, for the config and the card.

    In order: an explicit `base_model_id`; `model_name_or_path` itself when it is a Hub id; a local folder inside the
    Hugging Face cache (`models--org--name/snapshots/<commit>`); the `_name_or_path` recorded in the folder's
    `config.json` when that is a Hub id. `(None, None)` when only a local path is known.
    """
    if base_model_id:
        if not is_hub_id(base_model_id):
            raise ValueError(f"--base_model_id {base_model_id!r} is not a Hub model id (org/name).")
        return base_model_id, None
    name = str(model_name_or_path)
    if is_hub_id(name):
        return name, None
    cached = hub_id_of_cache_path(name)
    if cached:
        return cached
    config_file = Path(name) / "config.json"
    if config_file.is_file():
        try:
            recorded = json.loads(config_file.read_text(encoding="utf-8")).get("_name_or_path")
        except (OSError, ValueError):
            recorded = None
        if isinstance(recorded, str) and is_hub_id(recorded):
            return recorded, None
    return None, None


def check_push_settings(
    push_to_hub: bool, hub_model_id: str | None, model_name_or_path: str, base_model_id: str | None
) -> None:
    """Refuses, before anything is trained, a push that would fail or publish a head nobody else can load.

    Raises `ValueError` naming the fix: a missing `--hub_model_id`, or a base Whisper known only as a local path.
    """
    if not push_to_hub:
        return
    if not hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id (the repo to create, e.g. you/whisper-at-my-sounds).")
    require_hub_base(model_name_or_path, base_model_id)


def require_hub_base(model_name_or_path: str | os.PathLike | None, base_model_id: str | None = None) -> str:
    """The base Whisper's Hub id; `ValueError` naming the fix when it is known only as a local path."""
    hub_id = resolve_base_model_id(model_name_or_path, base_model_id)[0] if model_name_or_path else None
    if hub_id is None:
        raise ValueError(
            f"push to the Hub refused: the base Whisper {model_name_or_path} is a local folder with no Hub id on "
            "record, so the pushed head would name a path that exists only on this machine and nobody could load "
            "it. Pass --base_model_id (the Hub id those weights come from, e.g. openai/whisper-small; in Python: "
            "model.config.base_model_name_or_path = 'openai/whisper-small'), or train on the Hub id."
        )
    return hub_id


def record_base_model(model: Any, model_name_or_path: str | os.PathLike, base_model_id: str | None = None) -> None:
    """Writes the base Whisper's Hub id (and revision) into `model.config` when one is known; otherwise the absolute
    local path (a head that loads on this machine only)."""
    hub_id, revision = resolve_base_model_id(model_name_or_path, base_model_id)
    if hub_id:
        model.config.base_model_name_or_path = hub_id
        if revision:
            model.config.base_model_revision = revision
    else:
        model.config.base_model_name_or_path = os.path.abspath(str(model_name_or_path))
        logger.warning(
            "The base Whisper %s has no Hub id on record: the saved head names this local path and loads only "
            "where it exists. Pass --base_model_id to record the Hub id.",
            model_name_or_path,
        )


def card_results(
    metrics: dict[str, float], dataset_name: str | None, dataset_type: str | None, split: str | None
) -> list[dict[str, Any]]:
    """`eval_mAP` / `eval_accuracy` fractions (as the metric reports them) -> card results in percent."""
    results = []
    for key, value in metrics.items():
        name = key.removeprefix("eval_")
        if name not in ("mAP", "accuracy") or not isinstance(value, (int, float)):
            continue
        results.append(
            {
                "name": name,
                "type": name.lower(),
                "value": round(100.0 * float(value), 2),
                "dataset": dataset_name or "held-out data",
                "dataset_type": dataset_type or "audiofolder",
                "split": split,
            }
        )
    return results


def training_card(
    model: Any,
    repo_name: str,
    metrics: dict[str, float],
    training_summary: dict[str, Any],
    head_only: bool,
    dataset_name: str | None = None,
    dataset_type: str | None = None,
    eval_split: str | None = None,
    license: str | None = None,
    license_name: str | None = None,
    license_link: str | None = None,
    repo_id: str | None = None,
) -> str:
    """The model card of a trained head: the package's card renderer fed with the measured held-out metrics (in
    percent), the base Whisper's Hub id (`base_model:`) and the training data."""
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    shown = ", ".join(label_names[:20]) + (" …" if len(label_names) > 20 else "")
    training = "Trained with whisper-at-hf's `training/` on a frozen Whisper:\n\n" + "\n".join(
        f"- {key}: {value}" for key, value in training_summary.items()
    )
    return model_card_for_model(
        model,
        repo_name,
        metrics=card_results(metrics, dataset_name, dataset_type, eval_split),
        datasets=[dataset_name] if is_hub_id(dataset_name) and dataset_type == dataset_name else [],
        label_set=f"{len(label_names)} custom classes ({shown})",
        audioset_labels=False,
        training=training,
        head_only=head_only,
        license=license,
        license_name=license_name,
        license_link=license_link,
        repo_id=repo_id,
        tags=["custom-labels"],
    )


def save_trained_head(
    model: Any,
    processor: Any,
    output_dir: str | os.PathLike,
    metrics: dict[str, float],
    training_summary: dict[str, Any],
    repo_name: str | None = None,
    head_only: bool = True,
    dataset_name: str | None = None,
    **card_kwargs: Any,
) -> Path:
    """Writes the trained head to `output_dir`: head-only weights (a few MB; the config names the base Whisper) or,
    with `head_only=False`, the full model; plus processor, label-names file, code for `trust_remote_code`, the
    metrics and a model card (README.md). `card_kwargs` go to [`training_card`] (`dataset_type`, `eval_split`,
    `license`, `license_name`, `license_link`)."""
    name = (repo_name or Path(output_dir).name).split("/")[-1]
    card = training_card(
        model, name, metrics, training_summary, head_only, dataset_name, repo_id=repo_name or name, **card_kwargs
    )
    return write_checkpoint_folder(model, output_dir, head_only=head_only, processor=processor, card=card,
                                   json_files={"eval_results.json": metrics})  # fmt: skip


def push_trained_head(
    output_dir: str | os.PathLike, hub_model_id: str, token: str | None = None, private: bool = False
) -> str:
    """Creates `hub_model_id` (if needed) and uploads the saved head folder in one commit; returns the commit URL."""
    info = upload_folder(
        output_dir,
        hub_model_id,
        token=token,
        private=private,
        commit_message="Upload Whisper-AT head trained with whisper-at-hf",
        ignore_patterns=["*/*"],  # top-level files only: no checkpoints, feature cache or logs
    )
    return str(info)
