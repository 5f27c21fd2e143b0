#!/usr/bin/env python
"""Train a Whisper-AT audio-tagging head on a frozen Whisper with `transformers.Trainer`.

    python training/train_head_trainer.py --model_name_or_path openai/whisper-base --dataset_name my/audio-dataset \
        --output_dir out --cache_features --eval_strategy epoch --logging_strategy epoch
    python training/train_head_trainer.py config.json      # or config.yaml

The same job as `train_head.py` (shared data, collator, metric and recipe code in `whisper_at_hf.training`), with
`label_names=["audio_labels"]`. Trainer's own `--push_to_hub` pushes head-only checkpoints with their model card
(`WhisperATHeadTrainer.push_to_hub`), never full-model ones; the final head is pushed at the end.
"""

import logging
import os
import sys

import datasets
import torch
import transformers
from accelerate import PartialState
from transformers import HfArgumentParser, TrainingArguments, set_seed

from whisper_at_hf.metrics import load_audio_tagging_metric
from whisper_at_hf.training import (
    DataArguments,
    check_push_settings,
    describe_data_source,
    ModelArguments,
    RecipeArguments,
    setup_head_training,
)
from whisper_at_hf.training.checkpoints import latest_intact_checkpoint
from whisper_at_hf.training.hub import quiet_http_loggers
from whisper_at_hf.training.trainer import WeightAveragingCallback, WhisperATHeadTrainer, make_compute_metrics

logger = logging.getLogger(__name__)


def set_log_levels(should_log: bool) -> None:
    """No per-request INFO lines of the Hub client's HTTP loggers; the package's progress lines (it logs under
    transformers' tree, at its WARNING default) where this process logs."""
    quiet_http_loggers()
    logging.getLogger("transformers.whisper_at_hf").setLevel(logging.INFO if should_log else logging.WARNING)


def main():
    parser = HfArgumentParser((ModelArguments, DataArguments, RecipeArguments, TrainingArguments))
    try:  # the argument dataclasses check their values: a bad one is a usage error (exit 2), before any work
        if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
            parsed = parser.parse_json_file(json_file=os.path.abspath(sys.argv[1]))
        elif len(sys.argv) == 2 and sys.argv[1].endswith((".yaml", ".yml")):
            parsed = parser.parse_yaml_file(yaml_file=os.path.abspath(sys.argv[1]))
        else:
            parsed = parser.parse_args_into_dataclasses()
    except ValueError as error:
        parser.error(str(error))
    model_args, data_args, recipe_args, training_args = parsed

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        handlers=[logging.StreamHandler(sys.stdout)],
        level=logging.INFO if training_args.should_log else logging.WARNING,
    )
    set_log_levels(training_args.should_log)
    if not training_args.should_log:
        datasets.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()
    # a push that would fail (no repo id) or publish an unloadable head (local base) is refused before any work
    check_push_settings(
        training_args.push_to_hub, training_args.hub_model_id, model_args.model_name_or_path, model_args.base_model_id
    )
    resume = training_args.resume_from_checkpoint
    resume = True if resume == "latest" else resume
    set_seed(training_args.seed)
    # subnormal floats appear in the head's backward pass on cached features and slow CPU steps ~20x; flushing them
    # to zero changes nothing measurable (no effect on GPUs, which flush anyway)
    torch.set_flush_denormal(True)

    # ----- data and model --------------------------------------------------------------------------------------------
    model, processor, data = setup_head_training(
        model_args, data_args, training_args.output_dir, training_args.device, state=PartialState()
    )

    # ----- train -----------------------------------------------------------------------------------------------------
    callbacks = []
    if resume is True:
        # the newest checkpoint whose state and weights read back; a damaged newer one is skipped with a warning
        resume = latest_intact_checkpoint(training_args.output_dir, "trainer_state.json")
        resume = str(resume) if resume is not None else None
        if resume is None:
            raise ValueError(f"--resume_from_checkpoint latest: no checkpoint in {training_args.output_dir}.")
    if recipe_args.weight_averaging_start_epoch is not None:
        averaging = WeightAveragingCallback(recipe_args.weight_averaging_start_epoch)
        if resume and averaging.load_checkpoint(resume):
            logger.info("Weight average restored from %s (%d epochs)", resume, averaging.averager.count)
        callbacks.append(averaging)
    trainer = WhisperATHeadTrainer(
        model=model,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        data_collator=data.collator,
        compute_metrics=make_compute_metrics(load_audio_tagging_metric(keep_in_memory=True)),
        callbacks=callbacks,
        processing_class=processor,
        recipe=recipe_args,
        at_time_res=model_args.at_time_res,
    )
    train_result = trainer.train(resume_from_checkpoint=resume)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    metrics = {}
    if data.eval is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)

    # ----- save the head, push: the trainer's own save_model / push_to_hub (head-only, with processor and card) ------
    trainer.card_kwargs = card_settings(trainer, model_args, data_args, recipe_args, training_args, data)
    trainer.save_model()
    if training_args.push_to_hub:
        logger.info("Pushed to %s", trainer.push_to_hub(commit_message="Upload Whisper-AT head trained with whisper-at-hf"))


def card_settings(trainer, model_args, data_args, recipe_args, training_args, data) -> dict:
    """What the model card says about this run (`WhisperATHeadTrainer(card_kwargs=...)`)."""
    data_name, data_type = describe_data_source(data_args.dataset_name, data_args.train_file, data_args.data_dir)
    return {
        "training_summary": {
            "base Whisper": trainer.model.config.base_model_name_or_path,
            "training clips": len(data.train),
            "epochs": training_args.num_train_epochs,
            "optimizer steps": trainer.state.global_step,
            "learning_rate": training_args.learning_rate,
            "lr_scheduler_type": str(training_args.lr_scheduler_type),
            "at_time_res": model_args.at_time_res,
            **vars(recipe_args),
            "script": "training/train_head_trainer.py (Trainer)",
        },
        "dataset_name": data_name,
        "dataset_type": data_type,
        "eval_split": data_args.eval_split_name if data.eval is not None else None,
        "license": model_args.license,
        "license_name": model_args.license_name,
        "license_link": model_args.license_link,
    }


if __name__ == "__main__":
    main()
