"""Model cards (`README.md` with Hub YAML metadata) for Whisper-AT checkpoints.

One renderer, [`render_model_card`], serves the 16 converted original heads (from the single table
[`ORIGINAL_VARIANTS`]), checkpoints written by `whisper-at-convert`, and heads trained with `training/` (which
pass their measured metrics). `model_cards/generate_model_cards.py` writes the committed cards from the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration_whisper_at import AUDIOSET_NUM_LABELS
from .hub_utils import is_hub_id

from .original_variants import (
    ORIGINAL_VARIANTS,
    WHISPER_SIZES,
    OriginalVariant,
    find_original_variant,
)
from .remote_code import PIPELINE_TASK, REMOTE_PIPELINE_TASK

AUDIOSET_DATASET = "agkphysics/AudioSet"
ORIGINAL_PAPER = "https://arxiv.org/abs/2307.03183"
#: The card's text: a Jinja template rendered by huggingface_hub's `ModelCard.from_template` (package data).
MODEL_CARD_TEMPLATE = Path(__file__).with_name("templates") / "model_card_template.md"
ORIGINAL_REPO = "https://github.com/YuanGongND/whisper-at"
ORIGINAL_LICENSE = "bsd-2-clause"  # the original Whisper-AT code and head weights
AUDIOSET_LABEL_SET = "the 527 classes of the AudioSet ontology"

# (Whisper size, low-dim head) -> (initial learning rate, epochs, equivalent full epochs, averaged epochs) of the
# original recipe (each epoch stopped after 10% of its iterations).
ORIGINAL_RECIPE: dict[tuple[str, bool], tuple[float, int, int, str]] = {
    ("large", False): (5e-5, 30, 3, "16-30"),
    ("large", True): (1e-4, 30, 3, "16-30"),
    ("medium", False): (5e-5, 30, 3, "16-30"),
    ("medium", True): (1e-4, 30, 3, "16-30"),
    ("small", False): (1e-4, 50, 5, "21-50"),
    ("small", True): (1e-4, 50, 5, "21-50"),
    ("base", False): (1e-4, 50, 5, "21-50"),
    ("tiny", False): (1e-4, 50, 5, "21-50"),
}


def format_parameter_count(count: int | str | None) -> str | None:
    if count is None or isinstance(count, str):
        return count
    return f"{count / 1e6:.1f}M"


def card_metadata(
    model_name: str,
    *,
    base_model: str | None,
    license: str | None,
    license_name: str | None = None,
    license_link: str | None = None,
    english_only: bool | None = None,
    metrics: Sequence[Mapping[str, Any]] = (),
    datasets: Sequence[str] = (),
    audioset_labels: bool = True,
    head_only: bool = False,
    tags: Sequence[str] = (),
) -> ModelCardData:
    """The Hub metadata of a Whisper-AT card, built with `huggingface_hub.ModelCardData` / `EvalResult` (the schema the
    Hub reads). Metric values are in percent (mAP as in the paper's tables), whatever produced them.

    Args:
        metrics: each `{"name": "mAP", "type": "map", "value": 41.7, "dataset": "AudioSet", "dataset_type":
            "agkphysics/AudioSet", "split": "eval", "source": {"name": ..., "url": ...}}`; `dataset_type` is a Hub
            dataset id or the `datasets` loader of local data (`audiofolder`, `csv`, ...); `split`, `source` optional.
        license: a Hub licence id; `"other"` needs `license_name` and `license_link`; `None` leaves it out.
        audioset_labels: the head tags AudioSet's classes (adds the `audioset` tag).
    """
    if license == "other" and not (license_name and license_link):
        raise ValueError('license "other" needs license_name and license_link (the Hub requires both).')
    eval_results = []
    for metric in metrics:
        missing = [key for key in ("name", "value", "dataset", "dataset_type") if metric.get(key) in (None, "")]
        if missing == ["dataset", "dataset_type"]:
            continue  # measured on data the card does not name: a Results row only (model-index needs a dataset)
        if missing:
            raise ValueError(f"card metric {dict(metric)} lacks {missing}.")
        source = metric.get("source") or {}
        eval_results.append(
            EvalResult(
                task_type="audio-classification",
                task_name="Audio tagging",
                dataset_type=metric["dataset_type"],
                dataset_name=metric["dataset"],
                dataset_split=metric.get("split"),
                metric_type=metric.get("type", str(metric["name"]).lower()),
                metric_value=metric["value"],
                metric_name=metric["name"],
                source_name=source.get("name"),
                source_url=source.get("url"),
            )
        )
    hub_base = base_model if is_hub_id(base_model) else None
    tag_list = ["whisper", "whisper-at", "audio-tagging", "audio-classification"]
    tag_list += ["audioset"] if audioset_labels else []
    return ModelCardData(
        license=license,
        license_name=license_name if license == "other" else None,
        license_link=license_link if license == "other" else None,
        library_name="transformers",
        pipeline_tag="automatic-speech-recognition",
        base_model=hub_base,
        # a head-only checkpoint attaches to its base like an adapter; the Hub lists it under the base's adapters
        base_model_relation="adapter" if (hub_base and head_only) else None,
        tags=list(dict.fromkeys([*tag_list, *tags])),
        language=None if english_only is None else (["en"] if english_only else ["multilingual"]),
        datasets=list(datasets) or None,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )


def render_model_card(
    model_name: str,
    *,
    base_model: str | None,
    d_model: int,
    encoder_layers: int,
    at_low_dim: int | None,
    num_labels: int = 527,
    head_params: int | str | None = None,
    english_only: bool | None = None,
    metrics: Mapping[str, float] | Sequence[Mapping[str, Any]] = (),
    datasets: Sequence[str] = (AUDIOSET_DATASET,),
    label_set: str = AUDIOSET_LABEL_SET,
    training: str | None = None,
    head_only: bool = False,
    at_time_res: float = 10.0,
    license: str | None = ORIGINAL_LICENSE,
    license_name: str | None = None,
    license_link: str | None = None,
    audioset_labels: bool | None = None,
    repo_id: str | None = None,
    origin: str | None = None,
    tags: Sequence[str] = (),
    remote_code_usage: bool = False,
) -> str:
    """Renders a model card: Hub YAML metadata ([`card_metadata`]) + the text of [`MODEL_CARD_TEMPLATE`]
    (description, usage, training notes, results and limitations).

    Args:
        model_name: card title and `model-index` name.
        base_model: the Whisper the head runs on (a Hub id goes into the `base_model` metadata).
        d_model / encoder_layers / at_low_dim / num_labels: the head's shape.
        head_params: head parameters (int, or a string such as `"40.0M"`).
        english_only: `True` for `.en` Whisper models, `None` when unknown.
        metrics: results in percent, see [`card_metadata`], or `{"mAP": 41.7}` (see [`card_metrics`]).
        datasets: Hub dataset ids for the `datasets` metadata.
        label_set: what the classes are, in words.
        training: markdown paragraph on how the head was trained.
        head_only: the checkpoint holds only the head (the base Whisper is loaded from `base_model`).
        at_time_res: tagging resolution the head was trained at (seconds).
        license / license_name / license_link: see [`card_metadata`].
        audioset_labels: the head tags AudioSet's 527 classes (default: `label_set` is AudioSet's).
        repo_id: the id shown in code snippets (default `model_name`).
        origin: markdown paragraph on where the weights come from (e.g. the conversion command).
        tags: extra Hub tags.
        remote_code_usage: add the `trust_remote_code=True` section that names the custom classes.
    """
    mode = f"TL-TR-{at_low_dim}" if at_low_dim else "TL-TR"
    if audioset_labels is None:
        audioset_labels = num_labels == AUDIOSET_NUM_LABELS and label_set == AUDIOSET_LABEL_SET
    metadata = card_metadata(
        model_name, base_model=base_model, license=license, license_name=license_name, license_link=license_link,
        english_only=english_only, metrics=card_metrics(metrics, datasets), datasets=datasets, audioset_labels=audioset_labels,
        head_only=head_only, tags=tags,
    )  # fmt: skip
    card = ModelCard.from_template(
        metadata,
        template_path=str(MODEL_CARD_TEMPLATE),
        model_name=model_name,
        paper=ORIGINAL_PAPER,
        pipeline_task=PIPELINE_TASK, remote_pipeline_task=REMOTE_PIPELINE_TASK,
        repo_id=repo_id or model_name,
        whisper_words=f"`{base_model}`" if base_model else "its base Whisper",
        languages={True: "English-only ", False: "multilingual ", None: ""}[english_only],
        mode=mode,
        params=format_parameter_count(head_params),
        label_set=label_set,
        encoder_layers=encoder_layers,
        d_model=d_model,
        num_labels=num_labels,
        at_time_res=f"{at_time_res:g}",
        head_only=head_only,
        origin=origin,
        training=training or "No training details were recorded for this checkpoint.",
        metric_rows=[_result_row(metric) for metric in card_metrics(metrics, datasets)],
        license_missing=license is None,
        audioset_labels=audioset_labels,
        remote_code_usage=remote_code_usage,
    )
    return str(card)


def _result_row(metric: Mapping[str, Any]) -> str:
    source = metric.get("source")
    note = f" ([{source['name']}]({source['url']}))" if source and source.get("url") else ""
    split = f" ({metric['split']})" if metric.get("split") else ""
    return f"| {metric['name']} | {metric['value']} | {metric.get('dataset') or 'not recorded'}{split}{note} |"


def original_training_notes(variant: OriginalVariant) -> str:
    """How the released head was trained, in our words, from the original recipe's settings."""
    learning_rate, epochs, equivalent, averaged = ORIGINAL_RECIPE[(variant.size, variant.low_dim)]
    return (
        f"Trained by the Whisper-AT authors on AudioSet (the full ~2M-clip training set, 10 s clips) with "
        f"`{variant.whisper}` frozen: the pooled per-layer encoder states were extracted once and the head alone "
        f"trained on them with binary cross-entropy over the 527 classes. Initial learning rate {learning_rate:g}, "
        f"{epochs} epochs of 10% of the data each ({equivalent} full passes), weights averaged over epochs "
        f"{averaged}. The weights here are the released `{variant.head_file}`, converted without retraining."
    )


def original_variant_card(
    variant: OriginalVariant | str,
    head_only: bool = False,
    base_model: str | None = None,
    repo_id: str | None = None,
) -> str:
    """The card of a converted original head (one of [`ORIGINAL_VARIANTS`])."""
    if isinstance(variant, str):
        found = find_original_variant(variant)
        if found is None:
            raise ValueError(f"{variant!r} is not one of {[v.name for v in ORIGINAL_VARIANTS]}.")
        variant = found
    layers, d_model, _ = WHISPER_SIZES[variant.size]
    base_model = base_model or variant.base_model
    head_flag = " --head-only" if head_only else ""
    origin = (
        f"Converted from the original release ([YuanGongND/whisper-at]({ORIGINAL_REPO})): the head "
        f"`{variant.head_file}` on OpenAI's Whisper `{variant.whisper}` (`{variant.base_model}` in transformers), "
        "with\n\n"
        "```bash\n"
        f"whisper-at-convert --whisper {variant.base_model} --at-checkpoint {variant.head_file} "
        f"--output {variant.repo_name}{head_flag}\n"
        "```\n\n"
        "The converted head gives the same logits as the original `whisper_at` package (fp32, max |Δ| ≤ 1e-4 in "
        "this project's tests), and the transcripts are the base Whisper's."
    )
    metric = {
        "name": "mAP",
        "type": "map",
        "value": variant.audioset_map,
        "dataset": "AudioSet",
        "dataset_type": AUDIOSET_DATASET,
        "split": "evaluation set",
        "source": {"name": "Whisper-AT release", "url": ORIGINAL_REPO},
    }
    return render_model_card(
        variant.repo_name,
        base_model=base_model,
        d_model=d_model,
        encoder_layers=layers,
        at_low_dim=variant.at_low_dim,
        head_params=variant.head_params,
        english_only=variant.english_only,
        metrics=[metric],
        training=original_training_notes(variant),
        head_only=head_only,
        repo_id=repo_id,
        origin=origin,
    )


def label_set_words(names: Sequence[str], shown: int = 20) -> str:
    """What a head tags, in words: AudioSet's ontology for its 527 classes, else the count and the first names."""
    if len(names) == AUDIOSET_NUM_LABELS:
        return AUDIOSET_LABEL_SET
    listed = ", ".join(names[:shown]) + (", …" if len(names) > shown else "")
    return f"{len(names)} custom classes ({listed})"


def card_metrics(
    metrics: Mapping[str, float] | Sequence[Mapping[str, Any]], datasets: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Card results from either form: the list of [`card_metadata`] entries as they are, or `{"mAP": 41.7}` (name ->
    value in percent), measured on the card's first dataset (without one, a Results row and no `model-index`)."""
    if not isinstance(metrics, Mapping):
        return [dict(metric) for metric in metrics]
    dataset = datasets[0] if datasets else None
    return [
        {"name": name, "type": str(name).lower(), "value": value, "dataset": dataset, "dataset_type": dataset}
        for name, value in metrics.items()
    ]


def model_card_for_model(model: Any, model_name: str, **card_kwargs: Any) -> str:
    """Card for any [`WhisperForAudioTaggingAndASR`] (e.g. a head trained with `training/`): shape, base model, head
    size and labels (count and names from `config.id2label`) come from the model; `metrics` (a list of
    [`card_metadata`] entries or `{"mAP": 41.7}`), `training`, `datasets`, `license`, `head_only` ... from the caller.

    A head of AudioSet's 527 classes is described as AudioSet's (its `datasets` and licence default to AudioSet's and
    the original release's); any other head claims no dataset and no licence unless they are passed."""
    config = model.config
    names = [config.id2label[index] for index in range(config.num_labels)]
    audioset = len(names) == AUDIOSET_NUM_LABELS
    kwargs: dict[str, Any] = dict(
        base_model=config.base_model_name_or_path,
        d_model=config.d_model,
        encoder_layers=config.encoder_layers,
        at_low_dim=config.at_low_dim,
        num_labels=config.num_labels,
        head_params=sum(param.numel() for param in model.audio_tagging_head.parameters()),
        english_only={51864: True}.get(config.vocab_size, False if config.vocab_size > 51864 else None),
        at_time_res=config.at_time_res,
        label_set=label_set_words(names),
        audioset_labels=audioset,
        datasets=(AUDIOSET_DATASET,) if audioset else (),
        license=ORIGINAL_LICENSE if audioset else None,
        remote_code_usage=True,
    )
    kwargs.update(card_kwargs)
    return render_model_card(model_name, **kwargs)


__all__ = [
    "card_metadata",
    "card_metrics",
    "label_set_words",
    "model_card_for_model",
    "original_variant_card",
    "render_model_card",
]
