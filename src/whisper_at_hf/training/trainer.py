"""`Trainer` integration: [`WhisperATHeadTrainer`] trains only the head, saves and pushes head-only checkpoints with
their processor, labels and model card, and runs the recipe's sampling, mixup and averaging;
[`make_compute_metrics`] works with it and with a plain `transformers.Trainer`."""

from __future__ import annotations

import copy
import logging
import os
import shutil
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..hub_upload import upload_folder
from ..metrics import load_audio_tagging_metric
from ..modeling_whisper_at import HEAD_WEIGHTS_NAME, WhisperATEncoderOutput
from .arguments import RecipeArguments
from .build import batch_pooled_states
from .hub import require_hub_base, save_trained_head, training_card
from .recipe import (
    LABELS_KEY,
    AudioFeatureCollator,
    EpochSampler,
    WeightAverager,
    balanced_sample_weights,
    mixup,
    smooth_labels,
    step_rng,
)

logger = logging.getLogger(f"transformers.{__name__}")  # under transformers: its verbosity rules ours

# what Trainer writes into a checkpoint besides the model (not part of a pushed head)
_TRAINER_STATE_FILES = ("optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "scaler.pt")


class WhisperATHeadTrainer(Trainer):
    """`Trainer` for a [`WhisperForAudioTaggingAndASR`] whose Whisper is frozen: only the audio-tagging head trains.

    Differences from `Trainer`:

    - `label_names=["audio_labels"]` and `remove_unused_columns=False` are set on `args`; without a `data_collator`,
      an [`AudioFeatureCollator`] over `audio_column` is built from `processing_class` (a Whisper processor or
      feature extractor). Batches hold `input_features` or cached `pooled_hidden_states` plus `audio_labels`.
    - The frozen Whisper stays in eval mode (Trainer switches the whole model to train mode every step);
      predictions are the first-window logits `(B, C)`, the window the `(B, C)` targets describe.
    - Checkpoints, `save_model()` and `push_to_hub()` write the head-only checkpoint (a few MB:
      `audio_tagging_head.safetensors`, `config.json` naming the base Whisper, code for `trust_remote_code`), the
      processor, `label_names.json`, `eval_results.json` and a Whisper-AT model card with the last evaluation's
      metrics, never the full model. Resuming and `load_best_model_at_end` read those head-only checkpoints.
    - `push_to_hub()` refuses (before training, when `args.push_to_hub` is set) a base Whisper known only as a local
      path: record its Hub id in `model.config.base_model_name_or_path` (see `record_base_model`).

    Args:
        recipe: [`RecipeArguments`] (balanced sampling, mixup, label smoothing); defaults: all off.
        at_time_res: the training window in seconds (default: the model's `at_time_res`).
        audio_column: the audio column the default collator reads.
        card_kwargs: passed to the model card ([`training_card`]): `dataset_name`, `dataset_type` (a Hub id or the
            loader: `audiofolder`, `csv`, ...), `eval_split`, `license`, `license_name`, `license_link`,
            `training_summary` (dict).
    """

    def __init__(
        self,
        *args: Any,
        recipe: RecipeArguments | None = None,
        at_time_res: float | None = None,
        audio_column: str = "audio",
        card_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        if training_args is not None:
            # the caller's arguments stay as they were: this trainer's settings go on a copy
            training_args = copy.copy(training_args)
            training_args.label_names = [LABELS_KEY]
            training_args.remove_unused_columns = False  # rows carry audio / pooled states, not forward() args
            if len(args) > 1:
                args = (args[0], training_args, *args[2:])
            else:
                kwargs["args"] = training_args
        model = kwargs.get("model", args[0] if args else None)
        self.at_time_res = at_time_res
        if kwargs.get("data_collator") is None and len(args) < 3 and kwargs.get("processing_class") is not None:
            processing = kwargs["processing_class"]
            extractor = getattr(processing, "feature_extractor", processing)
            resolution = at_time_res or getattr(getattr(model, "config", None), "at_time_res", 10.0)
            kwargs["data_collator"] = AudioFeatureCollator(extractor, audio_column, resolution)
        if training_args is not None and training_args.push_to_hub and model is not None:
            require_hub_base(model.config.base_model_name_or_path)
        super().__init__(*args, **kwargs)
        self.recipe = recipe or RecipeArguments()
        self.card_kwargs = dict(card_kwargs or {})

    # ----- training ---------------------------------------------------------------------------------------------------
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        weights = None
        if self.recipe.balanced_sampling:
            weights = balanced_sample_weights(np.asarray(dataset[LABELS_KEY], dtype=np.float32))
        return EpochSampler(len(dataset), seed=self.args.seed, weights=weights)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        unwrapped = self.accelerator.unwrap_model(model)
        unwrapped.model.eval()  # Whisper's encoder/decoder: no dropout, no layer drop
        at_time_res = self.at_time_res or unwrapped.config.at_time_res
        targets = inputs[LABELS_KEY]
        pooled = batch_pooled_states(unwrapped, inputs, at_time_res)
        if model.training:
            rng = step_rng(self.args.seed, self.state.global_step, self.args.process_index)
            pooled, targets = mixup(pooled, targets, self.recipe.mixup_alpha, rng, self.recipe.mixup_probability)
            targets = smooth_labels(targets, self.recipe.label_smoothing)
        # through the (possibly DDP-wrapped) model's forward so gradients are synchronised
        outputs = model(
            encoder_outputs=WhisperATEncoderOutput(pooled_hidden_states=pooled),
            audio_labels=targets,
            at_time_res=at_time_res,
        )
        loss = outputs.audio_tag_loss
        return (loss, {"loss": loss, "audio_tag_logits": outputs.audio_tag_logits[:, 0]}) if return_outputs else loss

    # ----- saving: head-only checkpoints with processor, labels and card ---------------------------------------------
    def _last_eval_metrics(self) -> dict[str, float]:
        for entry in reversed(self.state.log_history):
            found = {key: value for key, value in entry.items() if key in ("eval_mAP", "eval_accuracy")}
            if found:
                return found
        return {}

    def _card_arguments(self) -> tuple[dict[str, Any], dict[str, Any]]:
        card = dict(self.card_kwargs)
        summary = card.pop("training_summary", None) or {
            "base Whisper": self.model.config.base_model_name_or_path,
            "optimizer steps": self.state.global_step,
            "epochs": round(float(self.state.epoch or 0), 2),
            "learning_rate": self.args.learning_rate,
            "lr_scheduler_type": str(getattr(self.args.lr_scheduler_type, "value", self.args.lr_scheduler_type)),
            "at_time_res": self.at_time_res or self.model.config.at_time_res,
            "trainer": type(self).__name__,
        }
        return summary, card

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        summary, card = self._card_arguments()
        save_trained_head(
            model,
            self.processing_class,
            output_dir,
            self._last_eval_metrics(),
            summary,
            repo_name=self.args.hub_model_id,
            head_only=True,
            **card,
        )
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def create_model_card(self, model_name: str | None = None, **kwargs: Any) -> None:
        """Writes the Whisper-AT card (not Trainer's generic one) to `output_dir/README.md`."""
        if not self.is_world_process_zero():
            return
        summary, card = self._card_arguments()
        text = training_card(
            self.accelerator.unwrap_model(self.model),
            model_name or os.path.basename(os.path.abspath(self.args.output_dir)),
            self._last_eval_metrics(),
            summary,
            head_only=True,
            repo_id=self.args.hub_model_id,
            **card,
        )
        with open(os.path.join(self.args.output_dir, "README.md"), "w", encoding="utf-8") as handle:
            handle.write(text)

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ):
        """Saves the head-only checkpoint and card to `output_dir` and uploads its top-level files to
        `args.hub_model_id` (no checkpoints, feature cache or logs)."""
        require_hub_base(self.model.config.base_model_name_or_path)
        token = token if token is not None else self.args.hub_token
        if self.hub_model_id is None:
            self.init_hf_repo(token=token, private=private)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        self._finish_current_push()
        return upload_folder(
            self.args.output_dir,
            self.hub_model_id,
            token=token,
            private=private,
            commit_message=commit_message,
            ignore_patterns=["_*", "*/*", "training_args.bin"],
            revision=revision if revision is not None else self.args.hub_revision,
            run_as_future=not blocking,
        )

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        # Trainer copies the files it knows (model.safetensors, config) from the checkpoint into output_dir before
        # uploading it; a head-only checkpoint's files are copied here first.
        if self.is_world_process_zero():
            for name in os.listdir(checkpoint_folder):
                path = os.path.join(checkpoint_folder, name)
                if os.path.isfile(path) and name not in _TRAINER_STATE_FILES and not name.startswith("rng_state"):
                    shutil.copy(path, os.path.join(self.args.output_dir, name))
        super()._push_from_checkpoint(checkpoint_folder)

    # ----- loading head-only checkpoints (resume, best model) --------------------------------------------------------
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        head_file = os.path.join(resume_from_checkpoint, HEAD_WEIGHTS_NAME)
        if not os.path.isfile(head_file):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        target = self.accelerator.unwrap_model(model if model is not None else self.model)
        target.load_head(head_file)
        logger.info("Loaded the head from %s", head_file)

    def _load_best_model(self) -> None:
        head_file = os.path.join(self.state.best_model_checkpoint, HEAD_WEIGHTS_NAME)
        if not os.path.isfile(head_file):
            return super()._load_best_model()
        logger.info("Loading the best head from %s (score: %s).", head_file, self.state.best_metric)
        self.accelerator.unwrap_model(self.model).load_head(head_file)


class WeightAveragingCallback(TrainerCallback):
    """Averages the head's weights over the epochs from `start_epoch` (1-based) on; loads the mean at train end.

    The running mean travels with Trainer checkpoints (`weight_average.pt` in each `checkpoint-N` folder, written
    when Trainer saves); call [`load_checkpoint`] with the folder a run resumes from.
    """

    file_name = "weight_average.pt"

    def __init__(self, start_epoch: int):
        self.averager = WeightAverager(start_epoch)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.averager.update(model.audio_tagging_head, int(round(state.epoch)))

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            torch.save(self.averager.state_dict(), os.path.join(folder, self.file_name))

    def load_checkpoint(self, checkpoint_dir: str | os.PathLike) -> bool:
        """Restores the running mean saved with a checkpoint; `False` when the checkpoint holds none."""
        path = os.path.join(checkpoint_dir, self.file_name)
        if not os.path.isfile(path):
            return False
        self.averager.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return True

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.averager.apply(model.audio_tagging_head)


def first_window_scores(predictions: Any, label_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """`(scores (N, C), targets (N, C))` from what `Trainer` collected.

    `predictions` may be a tuple (a plain `Trainer` returns every output field but the loss, e.g. the tag loss
    and `audio_tag_logits`): the array whose last dimension matches the labels' is used. Window logits
    `(N, windows, C)` are scored on the windows the labels describe: the first one for `(N, C)` labels, the first
    W for `(N, W, C)` labels (flattened to `(N*W, C)`), as the model's `audio_tag_loss` trains them.
    """
    targets = np.asarray(label_ids[0] if isinstance(label_ids, (tuple, list)) else label_ids)
    candidates = predictions if isinstance(predictions, (tuple, list)) else (predictions,)
    scores = None
    for candidate in candidates:
        candidate = np.asarray(candidate)
        if candidate.ndim >= 2 and candidate.shape[-1] == targets.shape[-1] and candidate.shape[0] == targets.shape[0]:
            scores = candidate
            break
    if scores is None:
        shapes = [np.shape(candidate) for candidate in candidates]
        raise ValueError(f"no prediction of shape (N, [windows,] {targets.shape[-1]}) among {shapes}")
    if scores.ndim == 3:
        if targets.ndim == 2:
            scores = scores[:, 0]
        else:
            scores = scores[:, : targets.shape[1]].reshape(-1, scores.shape[-1])
            targets = targets.reshape(-1, targets.shape[-1])
    return scores.astype(np.float32), targets


def make_compute_metrics(metric: Any = None):
    """`compute_metrics` for `Trainer` / [`WhisperATHeadTrainer`]: macro mAP (and accuracy for single-label data)
    from the package's `evaluate` audio-tagging metric (loaded offline when `metric` is None)."""
    if metric is None:
        metric = load_audio_tagging_metric(keep_in_memory=True)

    def compute_metrics(prediction) -> dict[str, float]:
        scores, targets = first_window_scores(prediction.predictions, prediction.label_ids)
        return metric.compute(predictions=scores, references=targets)

    return compute_metrics
