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
from pathlib import Path

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


def main():
    model_args, data_args, recipe_args, args = parse_args()
    # a push that would fail (no repo id) or publish an unloadable head (local base) is refused before any work
    check_push_settings(args.push_to_hub, args.hub_model_id, model_args.model_name_or_path, model_args.base_model_id)

    # ----- set-up ----------------------------------------------------------------------------------------------------
    accelerator = Accelerator(log_with=args.report_to or None, project_dir=args.output_dir)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    if not accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()
        logging.getLogger("whisper_at_hf").setLevel(logging.ERROR)
        logger.setLevel(logging.ERROR)  # one copy of the progress logs
    logger.info(accelerator.state)
    set_seed(args.seed)
    # subnormal floats appear in the head's backward pass on cached features and slow CPU steps ~20x; flushing them
    # to zero changes nothing measurable (no effect on GPUs, which flush anyway)
    torch.set_flush_denormal(True)
    os.makedirs(args.output_dir, exist_ok=True)

    # ----- data and model --------------------------------------------------------------------------------------------
    model, processor, data = setup_head_training(
        model_args, data_args, args.output_dir, accelerator.device, state=PartialState()
    )
    if data.cached:
        logger.info("Feature cache %s.", "reused" if data.cache_reused else "built")

    head = model.audio_tagging_head
    optimizer = head_optimizer(
        model, args.learning_rate, weight_decay=args.weight_decay, betas=(args.adam_beta1, args.adam_beta2)
    )
    weights = balanced_sample_weights(data.train_targets) if recipe_args.balanced_sampling else None
    sampler = EpochSampler(len(data.train), seed=args.seed, weights=weights)
    train_dataloader = DataLoader(
        data.train,
        batch_size=args.per_device_train_batch_size,
        sampler=sampler,
        collate_fn=data.collator,
        num_workers=args.dataloader_num_workers,
    )
    eval_dataloader = (
        DataLoader(data.eval, batch_size=args.per_device_eval_batch_size, collate_fn=data.collator)
        if data.eval is not None
        else None
    )
    steps_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes)
    max_steps = args.max_steps if args.max_steps > 0 else steps_per_epoch * args.num_train_epochs
    num_epochs = math.ceil(max_steps / steps_per_epoch)
    warmup = args.warmup_steps or math.ceil(args.warmup_ratio * max_steps)
    # Accelerate steps a prepared scheduler once per process per optimizer step
    scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer,
        num_warmup_steps=warmup * accelerator.num_processes,
        num_training_steps=max_steps * accelerator.num_processes,
    )
    head, optimizer, train_dataloader, scheduler = accelerator.prepare(head, optimizer, train_dataloader, scheduler)
    if eval_dataloader is not None:
        eval_dataloader = accelerator.prepare(eval_dataloader)
    averager = None
    if recipe_args.weight_averaging_start_epoch is not None:
        averager = WeightAverager(recipe_args.weight_averaging_start_epoch)
        accelerator.register_for_checkpointing(averager)
    metric = load_audio_tagging_metric(keep_in_memory=True)  # fed with gathered predictions, computed identically on every process
    if args.report_to:
        hparams = {k: v for k, v in {**vars(args), **vars(recipe_args)}.items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers("train_head", config=hparams)

    # ----- resume ----------------------------------------------------------------------------------------------------
    global_step, start_epoch, skip_batches = 0, 0, 0
    checkpoint, state = resume(accelerator, args.output_dir, args.resume_from_checkpoint)
    if checkpoint:
        global_step, start_epoch, skip_batches = state["global_step"], state["epoch"], state["step_in_epoch"]
        logger.info("Resumed from %s (step %d, epoch %d).", checkpoint, global_step, start_epoch + 1)

    def save_checkpoint(epoch: int, step_in_epoch: int) -> None:
        # written under a temporary name and renamed when complete: a crash mid-save leaves no half checkpoint
        final = Path(args.output_dir) / f"checkpoint-{global_step}"
        temporary = temporary_checkpoint_dir(final)
        accelerator.save_state(str(temporary))
        accelerator.wait_for_everyone()  # every process has written its RNG state
        if accelerator.is_main_process:
            state = {"global_step": global_step, "epoch": epoch, "step_in_epoch": step_in_epoch}
            atomic_write_text(temporary / STATE_FILE, json.dumps(state))
            publish_checkpoint(temporary, final)
            if args.save_total_limit:
                for stale in checkpoints_newest_first(args.output_dir)[args.save_total_limit :]:
                    shutil.rmtree(stale, ignore_errors=True)
        accelerator.wait_for_everyone()

    # ----- train -----------------------------------------------------------------------------------------------------
    logger.info(
        "Training: %d clips, %d epochs, %d steps (%d per epoch), batch %d x %d processes.",
        len(data.train), num_epochs, max_steps, steps_per_epoch, args.per_device_train_batch_size,
        accelerator.num_processes,
    )
    progress = tqdm(
        total=max_steps, initial=global_step, desc="Training head",
        disable=args.disable_tqdm or not accelerator.is_local_main_process,
    )
    res = model_args.at_time_res
    metrics: dict = {}
    for epoch in range(start_epoch, num_epochs):
        head.train()  # Whisper (model.model) stays in eval mode
        epoch_dataloader = train_dataloader
        step_in_epoch = skip_batches
        if skip_batches:
            epoch_dataloader = accelerator.skip_first_batches(train_dataloader, skip_batches)
            skip_batches = 0
        # the sample order depends only on (seed, epoch); Accelerate passes this on to the sampler
        epoch_dataloader.set_epoch(epoch)
        loss_sum, loss_count = torch.zeros((), device=accelerator.device), 0
        for batch in epoch_dataloader:
            if global_step >= max_steps:
                break
            pooled = batch_pooled_states(model, batch, res)
            targets = batch[LABELS_KEY]
            rng = step_rng(args.seed, global_step, accelerator.process_index)
            pooled, targets = mixup(pooled, targets, recipe_args.mixup_alpha, rng, recipe_args.mixup_probability)
            targets = smooth_labels(targets, recipe_args.label_smoothing)
            loss = WhisperForAudioTaggingAndASR.audio_tag_loss(head(pooled, res), targets)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            global_step += 1
            step_in_epoch += 1
            loss_sum += loss.detach()
            loss_count += 1
            progress.update(1)
            if args.logging_steps and global_step % args.logging_steps == 0:
                progress.set_postfix(loss=f"{loss.item():.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
                accelerator.log({"train/loss": loss.item(), "train/lr": scheduler.get_last_lr()[0]}, step=global_step)
            if args.save_steps and global_step % args.save_steps == 0:
                save_checkpoint(epoch, step_in_epoch)
        if averager is not None:
            averager.update(accelerator.unwrap_model(head), epoch + 1)
        epoch_loss = accelerator.gather(loss_sum).sum().item() / max(1, loss_count * accelerator.num_processes)
        log = {"epoch": epoch + 1, "train_loss": epoch_loss, "lr": scheduler.get_last_lr()[0]}
        if eval_dataloader is not None:
            metrics = evaluate_head(model, head, eval_dataloader, accelerator, metric, res)
            log.update({f"eval_{key}": value for key, value in metrics.items()})
        logger.info("epoch %d: %s", epoch + 1, json.dumps(log))
        accelerator.log({k.replace("eval_", "eval/"): v for k, v in log.items() if k != "epoch"}, step=global_step)
        if global_step >= max_steps:
            break
    progress.close()

    # ----- finish: weight averaging, final metrics, save, push ------------------------------------------------------
    if averager is not None and averager.apply(accelerator.unwrap_model(head)):
        logger.info("Averaged head weights of %d epochs from epoch %d.", averager.count, averager.start_epoch)
        if eval_dataloader is not None:
            metrics = evaluate_head(model, head, eval_dataloader, accelerator, metric, res)
    final = {f"eval_{key}": value for key, value in metrics.items()}
    logger.info("final: %s", json.dumps(final))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        summary = {
            "base Whisper": model.config.base_model_name_or_path,
            "training clips": len(data.train),
            "epochs": num_epochs,
            "optimizer steps": max_steps,
            "learning_rate": args.learning_rate,
            "lr_scheduler_type": args.lr_scheduler_type,
            "at_time_res": res,
            **{key: value for key, value in vars(recipe_args).items()},
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
    accelerator.end_training()


if __name__ == "__main__":
    main()
