"""Saving a trained head (with processor, labels and a model card) and pushing it to the Hub."""

from __future__ import annotations

import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any

from ..labels import LabelNames

logger = logging.getLogger(__name__)


def supports_head_only_save(model: Any) -> bool:
    """Whether this package version's `save_pretrained` knows `head_only=True` (head-only checkpoints)."""
    return "head_only" in inspect.signature(type(model).save_pretrained).parameters


def render_model_card(
    repo_name: str,
    base_model: str | None,
    label_names: list[str],
    metrics: dict[str, float],
    training_summary: dict[str, Any],
    head_only: bool,
) -> str:
    """A model card (README.md) with YAML metadata and the measured evaluation metrics."""
    metric_lines = "\n".join(f"| {key} | {value:.4f} |" for key, value in metrics.items() if isinstance(value, float))
    results = "\n".join(
        f"      - type: {key.lower()}\n        value: {value:.4f}\n        name: {key}"
        for key, value in metrics.items()
        if isinstance(value, float)
    )
    base_line = f"base_model: {base_model}\n" if base_model and not os.path.isabs(base_model) else ""
    shown = ", ".join(label_names[:20]) + (" …" if len(label_names) > 20 else "")
    summary = "\n".join(f"- {key}: {value}" for key, value in training_summary.items())
    kind = "a head-only checkpoint: the base Whisper is fetched on load" if head_only else "a full checkpoint"
    return f"""---
library_name: transformers
pipeline_tag: audio-classification
{base_line}tags:
- whisper-at
- audio-tagging
- audio-classification
model-index:
- name: {repo_name}
  results:
  - task:
      type: audio-classification
    metrics:
{results}
---

# {repo_name}

A Whisper-AT TL-TR audio-tagging head trained with `whisper-at-hf`'s `training/` scripts on a frozen Whisper
(`{base_model}`). This is {kind}; Whisper still transcribes exactly as before, and the same encoder pass tags
{len(label_names)} classes: {shown}.

## Evaluation (held-out split, one {training_summary.get("at_time_res", 10.0)} s window per clip)

| metric | value |
|---|---|
{metric_lines}

## Usage

```python
import whisper_at_hf  # registers the pipeline and the model class
from transformers import pipeline

tagger = pipeline("whisper-at", model="{repo_name}")
print(tagger("clip.wav"))
```

or, without the package, `AutoModelForSpeechSeq2Seq.from_pretrained("{repo_name}", trust_remote_code=True)`.

## Training

{summary}

Limitations: tags are trained on one window per clip; the label set is the training data's, nothing else.
"""


def save_trained_head(
    model: Any,
    processor: Any,
    output_dir: str | os.PathLike,
    metrics: dict[str, float],
    training_summary: dict[str, Any],
    repo_name: str | None = None,
) -> Path:
    """Writes the trained model to `output_dir`: head-only weights when supported (else the full model), config
    with labels and base Whisper, processor, label-names file, code for `trust_remote_code`, metrics, model card."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    head_only = supports_head_only_save(model)
    if head_only:
        model.save_pretrained(output_dir, head_only=True)
    else:  # head-only checkpoints not available in this version: save everything
        model.save_pretrained(output_dir)
    if processor is not None:
        processor.save_pretrained(output_dir)
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    LabelNames({"en": label_names}).save(output_dir)
    (output_dir / "eval_results.json").write_text(json.dumps(metrics, indent=2))
    card = render_model_card(
        repo_name or output_dir.name,
        model.config.base_model_name_or_path,
        label_names,
        metrics,
        training_summary,
        head_only,
    )
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
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", "feature_cache/**", "runs/**", "*.shards/**"],
    )
    return str(info)
