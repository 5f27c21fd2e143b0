#!/usr/bin/env python
"""Train a Whisper-AT audio-tagging head on a frozen Whisper with Accelerate.

    python training/train_head.py --model_name_or_path openai/whisper-base --dataset_name my/audio-dataset \
        --output_dir out --cache_features
    accelerate launch training/train_head.py config.json      # or config.yaml; any number of processes / GPUs

Only the head trains: Whisper stays frozen and in eval mode, and the optimizer sees the head's parameters only.
With `--cache_features` Whisper runs once per clip (sharded over processes); every epoch after that trains on the
cached pooled states.
"""

import json
import logging
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
import transformers
from accelerate import Accelerator, PartialState
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import HfArgumentParser, get_scheduler

from whisper_at_hf import WhisperForAudioTaggingAndASR
from whisper_at_hf.metrics import load_audio_tagging_metric
from whisper_at_hf.training import (
    LABELS_KEY,
    check_push_settings,
    describe_data_source,
    DataArguments,
    EpochSampler,
    LoopArguments,
    ModelArguments,
    RecipeArguments,
    WeightAverager,
    balanced_sample_weights,
    mixup,
    push_trained_head,
    setup_head_training,
    save_trained_head,
    smooth_labels,
    step_rng,
)
from whisper_at_hf.training.build import batch_pooled_states, head_logits, head_optimizer
from whisper_at_hf.training.checkpoints import (
    atomic_write_text,
    checkpoint_problem,
    checkpoints_newest_first,
    publish_checkpoint,
    temporary_checkpoint_dir,
)
from whisper_at_hf.training.hub import quiet_http_loggers

logger = logging.getLogger(__name__)
STATE_FILE = "training_state.json"


def parse_args():
    parser = HfArgumentParser((ModelArguments, DataArguments, RecipeArguments, LoopArguments))
    try:  # the argument dataclasses check their values: a bad one is a usage error (exit 2), before any work
        if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
            return parser.parse_json_file(json_file=os.path.abspath(sys.argv[1]))
        if len(sys.argv) == 2 and sys.argv[1].endswith((".yaml", ".yml")):
            return parser.parse_yaml_file(yaml_file=os.path.abspath(sys.argv[1]))
        return parser.parse_args_into_dataclasses()
    except ValueError as error:
        parser.error(str(error))


def resume(accelerator, output_dir: str, resume_from_checkpoint: str | None) -> tuple[str | None, dict]:
    """Loads the checkpoint to resume from: a given folder, or with "latest" the newest intact one (a damaged newer
    checkpoint is skipped with a warning). Returns `(folder, training state)`."""
    if not resume_from_checkpoint:
        return None, {}
    if resume_from_checkpoint != "latest":
        candidates = [Path(resume_from_checkpoint)]
    else:
        candidates = checkpoints_newest_first(output_dir)
    for folder in candidates:
        problem = checkpoint_problem(folder, STATE_FILE)
        if problem is None:
            try:
                accelerator.load_state(str(folder))
                return str(folder), json.loads((folder / STATE_FILE).read_text())
            except Exception as error:  # noqa: BLE001 - any damaged file: try the next older checkpoint
                problem = f"{error.__class__.__name__}: {error}"
        if resume_from_checkpoint != "latest":
            raise ValueError(f"Cannot resume from {folder}: {problem}")
        logger.warning("Checkpoint %s is damaged (%s): falling back to an older one.", folder, problem)
    logger.warning("No intact checkpoint found in %s: training from scratch.", output_dir)
    return None, {}


def evaluate_head(model, head, dataloader, accelerator, metric, at_time_res):
    """mAP (+ accuracy) of the first-window logits over a whole split, gathered from every process."""
    head.eval()
    for batch in dataloader:
        with torch.no_grad():
            logits = head_logits(model, head, batch, at_time_res)
        logits, labels = accelerator.gather_for_metrics((logits, batch[LABELS_KEY]))
        metric.add_batch(predictions=logits.float().cpu().numpy(), references=labels.cpu().numpy())
    return metric.compute()


@dataclass
class Loop:
    """Everything one training run steps through, prepared by Accelerate; `global_step` counts optimizer steps."""

    accelerator: Any
    args: Any
    recipe_args: Any
    model: Any
    head: Any
    optimizer: Any
    scheduler: Any
    train_dataloader: Any
    eval_dataloader: Any
    averager: WeightAverager | None
    metric: Any
    steps_per_epoch: int
    max_steps: int
    num_epochs: int
    at_time_res: float
    global_step: int = 0

    def save_checkpoint(self, epoch: int, step_in_epoch: int) -> None:
        # written under a temporary name and renamed when complete: a crash mid-save leaves no half checkpoint
        accelerator, args = self.accelerator, self.args
        final = Path(args.output_dir) / f"checkpoint-{self.global_step}"
        temporary = temporary_checkpoint_dir(final)
        accelerator.save_state(str(temporary))
        accelerator.wait_for_everyone()  # every process has written its RNG state
        if accelerator.is_main_process:
            state = {"global_step": self.global_step, "epoch": epoch, "step_in_epoch": step_in_epoch}
            atomic_write_text(temporary / STATE_FILE, json.dumps(state))
            publish_checkpoint(temporary, final)
            if args.save_total_limit:
                for stale in checkpoints_newest_first(args.output_dir)[args.save_total_limit :]:
                    shutil.rmtree(stale, ignore_errors=True)
        accelerator.wait_for_everyone()

    def evaluate(self) -> dict:
        if self.eval_dataloader is None:
            return {}
        return evaluate_head(self.model, self.head, self.eval_dataloader, self.accelerator, self.metric, self.at_time_res)

    def train_epoch(self, epoch: int, skip_batches: int, progress: Any) -> dict:
        """One epoch (from batch `skip_batches` on, when resuming); returns its log line."""
        accelerator, args, recipe_args = self.accelerator, self.args, self.recipe_args
        self.head.train()  # Whisper (model.model) stays in eval mode
        epoch_dataloader = self.train_dataloader
        if skip_batches:
            epoch_dataloader = accelerator.skip_first_batches(self.train_dataloader, skip_batches)
        # the sample order depends only on (seed, epoch); Accelerate passes this on to the sampler
        epoch_dataloader.set_epoch(epoch)
        step_in_epoch = skip_batches
        loss_sum, loss_count = torch.zeros((), device=accelerator.device), 0
        for batch in epoch_dataloader:
            if self.global_step >= self.max_steps:
                break
            pooled = batch_pooled_states(self.model, batch, self.at_time_res)
            targets = batch[LABELS_KEY]
            rng = step_rng(args.seed, self.global_step, accelerator.process_index)
            pooled, targets = mixup(pooled, targets, recipe_args.mixup_alpha, rng, recipe_args.mixup_probability)
            targets = smooth_labels(targets, recipe_args.label_smoothing)
            loss = WhisperForAudioTaggingAndASR.audio_tag_loss(self.head(pooled, self.at_time_res), targets)
            accelerator.backward(loss)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
            self.global_step += 1
            step_in_epoch += 1
            loss_sum += loss.detach()
            loss_count += 1
            progress.update(1)
            if args.logging_steps and self.global_step % args.logging_steps == 0:
                lr = self.scheduler.get_last_lr()[0]
                progress.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
                accelerator.log({"train/loss": loss.item(), "train/lr": lr}, step=self.global_step)
            if args.save_steps and self.global_step % args.save_steps == 0:
                self.save_checkpoint(epoch, step_in_epoch)
        if self.averager is not None:
            self.averager.update(accelerator.unwrap_model(self.head), epoch + 1)
        epoch_loss = accelerator.gather(loss_sum).sum().item() / max(1, loss_count * accelerator.num_processes)
        return {"epoch": epoch + 1, "train_loss": epoch_loss, "lr": self.scheduler.get_last_lr()[0]}


def set_up_accelerator(args) -> Accelerator:
    accelerator = Accelerator(log_with=args.report_to or None, project_dir=args.output_dir)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    quiet_http_loggers()
    # the package logs under transformers' tree (at its WARNING default); a run shows the package's progress lines
    logging.getLogger("transformers.whisper_at_hf").setLevel(logging.INFO)
    if not accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()
        logging.getLogger("transformers.whisper_at_hf").setLevel(logging.ERROR)
        logger.setLevel(logging.ERROR)  # one copy of the progress logs
    logger.info(accelerator.state)
    set_seed(args.seed)
    # subnormal floats appear in the head's backward pass on cached features and slow CPU steps ~20x; flushing them
    # to zero changes nothing measurable (no effect on GPUs, which flush anyway)
    torch.set_flush_denormal(True)
    os.makedirs(args.output_dir, exist_ok=True)
    return accelerator


def build_loop(accelerator, model, data, args, recipe_args, at_time_res: float) -> Loop:
    """Optimizer (head only), sampler, data loaders, scheduler and weight averager, prepared by Accelerate."""
    head = model.audio_tagging_head
    optimizer = head_optimizer(
        model, args.learning_rate, weight_decay=args.weight_decay, betas=(args.adam_beta1, args.adam_beta2)
    )
    weights = balanced_sample_weights(data.train_targets) if recipe_args.balanced_sampling else None
    sampler = EpochSampler(len(data.train), seed=args.seed, weights=weights)
    train_dataloader = DataLoader(data.train, batch_size=args.per_device_train_batch_size, sampler=sampler,
                                  collate_fn=data.collator, num_workers=args.dataloader_num_workers)  # fmt: skip
    eval_dataloader = None
    if data.eval is not None:
        eval_dataloader = DataLoader(data.eval, batch_size=args.per_device_eval_batch_size, collate_fn=data.collator)
    steps_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes)
    max_steps = args.max_steps if args.max_steps > 0 else steps_per_epoch * args.num_train_epochs
    warmup = args.warmup_steps or math.ceil(args.warmup_ratio * max_steps)
    # Accelerate steps a prepared scheduler once per process per optimizer step
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=warmup * accelerator.num_processes,
                              num_training_steps=max_steps * accelerator.num_processes)  # fmt: skip
    head, optimizer, train_dataloader, scheduler = accelerator.prepare(head, optimizer, train_dataloader, scheduler)
    if eval_dataloader is not None:
        eval_dataloader = accelerator.prepare(eval_dataloader)
    averager = None
    if recipe_args.weight_averaging_start_epoch is not None:
        averager = WeightAverager(recipe_args.weight_averaging_start_epoch)
        accelerator.register_for_checkpointing(averager)
    # fed with gathered predictions, computed identically on every process
    metric = load_audio_tagging_metric(keep_in_memory=True)
    return Loop(accelerator, args, recipe_args, model, head, optimizer, scheduler, train_dataloader, eval_dataloader,
                averager, metric, steps_per_epoch, max_steps, math.ceil(max_steps / steps_per_epoch), at_time_res)  # fmt: skip


def train(loop: Loop) -> dict:
    """Resumes (if asked), runs the epochs, applies the weight average; returns the final eval metrics."""
    accelerator, args = loop.accelerator, loop.args
    start_epoch, skip_batches = 0, 0
    checkpoint, state = resume(accelerator, args.output_dir, args.resume_from_checkpoint)
    if checkpoint:
        loop.global_step, start_epoch, skip_batches = state["global_step"], state["epoch"], state["step_in_epoch"]
        logger.info("Resumed from %s (step %d, epoch %d).", checkpoint, loop.global_step, start_epoch + 1)
    logger.info(
        "Training: %d clips, %d epochs, %d steps (%d per epoch), batch %d x %d processes.",
        len(loop.train_dataloader.dataset), loop.num_epochs, loop.max_steps, loop.steps_per_epoch,
        args.per_device_train_batch_size, accelerator.num_processes,
    )  # fmt: skip
    progress = tqdm(total=loop.max_steps, initial=loop.global_step, desc="Training head",
                    disable=args.disable_tqdm or not accelerator.is_local_main_process)  # fmt: skip
    metrics: dict = {}
    for epoch in range(start_epoch, loop.num_epochs):
        log = loop.train_epoch(epoch, skip_batches, progress)
        skip_batches = 0
        if loop.eval_dataloader is not None:
            metrics = loop.evaluate()
            log.update({f"eval_{key}": value for key, value in metrics.items()})
        logger.info("epoch %d: %s", epoch + 1, json.dumps(log))
        accelerator.log({k.replace("eval_", "eval/"): v for k, v in log.items() if k != "epoch"}, step=loop.global_step)
        if loop.global_step >= loop.max_steps:
            break
    progress.close()
    if loop.averager is not None and loop.averager.apply(accelerator.unwrap_model(loop.head)):
        logger.info("Averaged head weights of %d epochs from epoch %d.", loop.averager.count, loop.averager.start_epoch)
        if loop.eval_dataloader is not None:
            metrics = loop.evaluate()
    return {f"eval_{key}": value for key, value in metrics.items()}


def save_and_push(loop: Loop, processor, data, model_args, data_args, final: dict) -> None:
    """The head-only checkpoint with processor, labels, metrics and card; pushed when asked (main process)."""
    args, model = loop.args, loop.model
    summary = {
        "base Whisper": model.config.base_model_name_or_path,
        "training clips": len(data.train),
        "epochs": loop.num_epochs,
        "optimizer steps": loop.max_steps,
        "learning_rate": args.learning_rate,
        "lr_scheduler_type": args.lr_scheduler_type,
        "at_time_res": loop.at_time_res,
        **{key: value for key, value in vars(loop.recipe_args).items()},
        "script": "training/train_head.py (Accelerate)",
    }
    data_name, data_type = describe_data_source(data_args.dataset_name, data_args.train_file, data_args.data_dir)
    save_trained_head(
        model, processor, args.output_dir, final, summary, args.hub_model_id, dataset_name=data_name,
        dataset_type=data_type, eval_split=data_args.eval_split_name if data.eval is not None else None,
        license=model_args.license, license_name=model_args.license_name, license_link=model_args.license_link,
    )  # fmt: skip
    if args.push_to_hub:
        url = push_trained_head(args.output_dir, args.hub_model_id, args.hub_token, args.hub_private_repo)
        logger.info("Pushed to %s", url)


def main():
    model_args, data_args, recipe_args, args = parse_args()
    # a push that would fail (no repo id) or publish an unloadable head (local base) is refused before any work
    check_push_settings(args.push_to_hub, args.hub_model_id, model_args.model_name_or_path, model_args.base_model_id)
    accelerator = set_up_accelerator(args)
    model, processor, data = setup_head_training(
        model_args, data_args, args.output_dir, accelerator.device, state=PartialState()
    )
    if data.cached:
        logger.info("Feature cache %s.", "reused" if data.cache_reused else "built")
    loop = build_loop(accelerator, model, data, args, recipe_args, model_args.at_time_res)
    if args.report_to:
        hparams = {k: v for k, v in {**vars(args), **vars(recipe_args)}.items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers("train_head", config=hparams)
    final = train(loop)
    logger.info("final: %s", json.dumps(final))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_and_push(loop, processor, data, model_args, data_args, final)
    accelerator.end_training()


if __name__ == "__main__":
    main()
