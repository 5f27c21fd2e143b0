"""Saving a trained head (with processor, labels and a model card) and pushing it to the Hub."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..labels import LabelNames

logger = logging.getLogger(__name__)


def training_card(
    model: Any,
    repo_name: str,
    metrics: dict[str, float],
    training_summary: dict[str, Any],
    head_only: bool,
    dataset_name: str | None = None,
) -> str:
    """The model card of a trained head: the package's card renderer fed with the measured held-out metrics."""
    from ..model_card import model_card_for_model

    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    shown = ", ".join(label_names[:20]) + (" …" if len(label_names) > 20 else "")
    results = [
        {"name": name.removeprefix("eval_"), "type": name.removeprefix("eval_").lower(), "value": round(value, 4),
         "dataset": dataset_name or "held-out split", "split": "evaluation"}
        for name, value in metrics.items()
        if isinstance(value, float)
    ]
    training = "Trained with whisper-at-hf's `training/` scripts on a frozen Whisper:\n\n" + "\n".join(
        f"- {key}: {value}" for key, value in training_summary.items()
    )
    is_hub_dataset = bool(dataset_name) and not os.path.exists(dataset_name) and dataset_name.count("/") == 1
    return model_card_for_model(
        model,
        repo_name,
        metrics=results,
        datasets=[dataset_name] if is_hub_dataset else [],
        label_set=f"{len(label_names)} custom classes ({shown})",
        training=training,
        head_only=head_only,
        license="other",
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
) -> Path:
    """Writes the trained head to `output_dir`: head-only weights (a few MB; the config names the base Whisper) or,
    with `head_only=False`, the full model; plus processor, label-names file, code for `trust_remote_code`, the
    metrics and a model card (README.md)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir, head_only=head_only)
    if processor is not None:
        processor.save_pretrained(output_dir)
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    LabelNames({"en": label_names}).save(output_dir)
    (output_dir / "eval_results.json").write_text(json.dumps(metrics, indent=2))
    card = training_card(model, repo_name or output_dir.name, metrics, training_summary, head_only, dataset_name)
    (output_dir / "README.md").write_text(card)
    return output_dir


def push_trained_head(
    output_dir: str | os.PathLike, hub_model_id: str, token: str | None = None, private: bool = False
) -> str:
    """Creates `hub_model_id` (if needed) and uploads the saved head folder in one commit; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(hub_model_id, private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=hub_model_id,
        folder_path=str(output_dir),
        commit_message="Upload Whisper-AT head trained with whisper-at-hf",
        ignore_patterns=["*/*"],  # top-level files only: no checkpoints, feature cache or logs
    )
    return str(info)
