"""`Trainer` integration: a Trainer that trains only the head, with the recipe's sampling, mixup and averaging."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..modeling_whisper_at import WhisperATEncoderOutput
from .arguments import RecipeArguments
from .features import POOLED_COLUMN
from .recipe import LABELS_KEY, EpochSampler, WeightAverager, balanced_sample_weights, mixup, smooth_labels, step_rng


class HeadOnlyTrainer(Trainer):
    """`Trainer` for `WhisperForAudioTaggingAndASR` head training (use `label_names=["audio_labels"]`).

    Batches hold either cached `pooled_hidden_states` or `input_features`; the frozen Whisper is kept in eval mode
    (Trainer switches the whole model to train mode every step), and predictions are the first-window logits
    `(B, C)`.
    """

    def __init__(self, *args: Any, recipe: RecipeArguments | None = None, at_time_res: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.recipe = recipe or RecipeArguments()
        self.at_time_res = at_time_res

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
        window = unwrapped.config.at_window_frames(at_time_res)
        targets = inputs[LABELS_KEY]
        if POOLED_COLUMN in inputs:
            pooled = inputs[POOLED_COLUMN]
        else:
            with torch.no_grad():
                pooled = unwrapped.encode(inputs["input_features"]).pooled_hidden_states[:, :, :window]
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


def make_compute_metrics(metric: Any):
    """`compute_metrics` for Trainer from the `evaluate` audio-tagging metric (mAP, accuracy)."""

    def compute_metrics(prediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return metric.compute(predictions=np.asarray(logits), references=np.asarray(prediction.label_ids))

    return compute_metrics
