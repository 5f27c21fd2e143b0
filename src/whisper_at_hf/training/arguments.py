"""`HfArgumentParser` dataclasses shared by `training/train_head.py` (Accelerate) and `train_head_trainer.py`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..options import check_int, check_number


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "The frozen Whisper to train a head on: a transformers Whisper dir or Hub id."}
    )
    head_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Start from an existing Whisper-AT head (a full or head-only checkpoint). Its classifier is "
            "re-initialised when its labels differ from the dataset's."
        },
    )
    at_low_dim: int | None = field(default=None, metadata={"help": "512 for a TL-TR-512 head; None for full width."})
    at_time_res: float = field(default=10.0, metadata={"help": "Training window in seconds (one window per clip)."})
    base_model_id: str | None = field(
        default=None,
        metadata={
            "help": "The Hub id of the Whisper in --model_name_or_path when that is a local folder (e.g. "
            "openai/whisper-small): recorded as the head's base model, needed for --push_to_hub. Found without it "
            "for Hub ids, Hugging Face cache folders and folders whose config.json records _name_or_path."
        },
    )
    license: str | None = field(
        default=None,
        metadata={"help": "The model card's license (a Hub license id such as mit, or 'other'); default: none set."},
    )
    license_name: str | None = field(default=None, metadata={"help": "With --license other: the license's name."})
    license_link: str | None = field(default=None, metadata={"help": "With --license other: a link to its text."})
    cache_dir: str | None = field(default=None, metadata={"help": "Hub download cache."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models/datasets."})


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None, metadata={"help": "A Hub dataset id or a local dataset folder (e.g. audiofolder layout)."}
    )
    dataset_config_name: str | None = field(default=None)
    data_dir: str | None = field(default=None)
    train_file: str | None = field(default=None, metadata={"help": "CSV/TSV/JSON(L) with audio paths and labels."})
    validation_file: str | None = field(default=None)
    train_split_name: str = field(default="train")
    eval_split_name: str = field(default="validation")
    audio_column_name: str = field(default="audio")
    label_column_name: str = field(
        default="label",
        metadata={"help": "Single-label (ClassLabel/string) or multi-label (list of names or ids) column."},
    )
    label_separator: str | None = field(
        default=None, metadata={"help": "Split string labels on this separator (multi-label CSV cells, e.g. '|')."}
    )
    class_names: list[str] | None = field(
        default=None, metadata={"help": "The class names, in order (default: from the data or the start head)."}
    )
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    cache_features: bool = field(
        default=False, metadata={"help": "Compute Whisper's pooled states once and train on the on-disk cache."}
    )
    feature_cache_dir: str | None = field(
        default=None, metadata={"help": "Where the feature cache lives (default: <output_dir>/feature_cache)."}
    )
    encode_batch_size: int = field(default=16, metadata={"help": "Clips per encoder pass when caching features."})


@dataclass
class RecipeArguments:
    """Whisper-AT recipe knobs (BCE loss throughout). Defaults are ours, chosen for small custom label sets; the
    paper's AudioSet recipe used balanced sampling, mixup, warm-up and late-epoch weight averaging."""

    balanced_sampling: bool = field(
        default=False, metadata={"help": "Draw clips with weight sum(1/class frequency) (AudioSet-style balancing)."}
    )
    mixup_alpha: float = field(default=0.0, metadata={"help": "Beta(alpha, alpha) mixup on features; 0 = off."})
    mixup_probability: float = field(default=0.5, metadata={"help": "Fraction of examples mixed when mixup is on."})
    label_smoothing: float = field(default=0.0, metadata={"help": "BCE targets become smoothing / 1 - smoothing."})
    weight_averaging_start_epoch: int | None = field(
        default=None, metadata={"help": "Average the head weights of epochs >= this (1-based); None = off."}
    )

    def __post_init__(self) -> None:
        # checked when parsed, before any data or model is loaded (the scripts turn a ValueError into a usage error)
        check_number("--mixup_alpha", self.mixup_alpha, 0.0)
        check_number("--mixup_probability", self.mixup_probability, 0.0, 1.0)
        # targets become smoothing / 1 - smoothing: at 0.5 every target is 0.5, above it they are inverted
        if not 0.0 <= check_number("--label_smoothing", self.label_smoothing, 0.0) < 0.5:
            raise ValueError(f"--label_smoothing must be a number >= 0 and < 0.5, got {self.label_smoothing!r}.")
        if self.weight_averaging_start_epoch is not None:
            check_int("--weight_averaging_start_epoch", self.weight_averaging_start_epoch, 1)


@dataclass
class LoopArguments:
    """Training-loop settings of the Accelerate script (the Trainer script uses `TrainingArguments`)."""

    output_dir: str = field(metadata={"help": "Where checkpoints, logs and the final head go."})
    overwrite_output_dir: bool = field(default=False)
    seed: int = field(default=42)
    num_train_epochs: int = field(default=10)
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimizer steps (overrides epochs)."})
    per_device_train_batch_size: int = field(default=32)
    per_device_eval_batch_size: int = field(default=64)
    learning_rate: float = field(default=1e-4)
    weight_decay: float = field(default=5e-7)
    adam_beta1: float = field(default=0.95)
    adam_beta2: float = field(default=0.999)
    lr_scheduler_type: str = field(
        default="cosine", metadata={"help": "Any transformers scheduler name (linear, cosine, constant_with_warmup)."}
    )
    warmup_steps: int = field(default=0)
    warmup_ratio: float = field(default=0.0)
    logging_steps: int = field(default=10)
    save_steps: int = field(default=0, metadata={"help": "Save a resumable checkpoint every N steps; 0 = never."})
    save_total_limit: int | None = field(default=2)
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "A checkpoint folder, or 'latest' for the newest in output_dir."}
    )
    dataloader_num_workers: int = field(default=0)
    report_to: list[str] | None = field(default=None, metadata={"help": "e.g. tensorboard"})
    push_to_hub: bool = field(default=False)
    hub_model_id: str | None = field(default=None)
    hub_token: str | None = field(default=None)
    hub_private_repo: bool = field(default=False)
    disable_tqdm: bool = field(default=False)

    def __post_init__(self) -> None:
        check_int("--num_train_epochs", self.num_train_epochs, 1)  # 0 or less would save an untrained head
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size"):
            check_int(f"--{name}", getattr(self, name), 1)
        check_number("--learning_rate", self.learning_rate, 0.0, strict_minimum=True)
        check_number("--warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        check_int("--warmup_steps", self.warmup_steps, 0)
        self.report_to = check_report_to(self.report_to)


def check_report_to(report_to: list[str] | str | None) -> list[str]:
    """`--report_to`: Accelerate tracker names, or `none` (as for transformers' `TrainingArguments`) for none."""
    from accelerate.utils import LoggerType

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    names = [name for name in names if name != "none"]
    known = [kind.value for kind in LoggerType]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"--report_to {' '.join(unknown)}: not a tracker; use none or one of {', '.join(known)}.")
    return names
