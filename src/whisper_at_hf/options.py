"""Checks of user-facing options, run where they enter (pipeline call, CLI, compat API) before any audio is decoded
or any model runs, so a wrong value costs no work and the message names the option, the value and what is allowed.

Every check raises `ValueError` (a `TypeError` is never leaked for a value of the wrong kind) and returns the value
in its canonical type. The number rules (and [`window_frames`], the one `at_time_res` rule) are in [`option_rules`],
re-exported here. The pipeline copies this module beside checkpoints, so it imports nothing from the package but
those rules, `generate_output` and the event defaults of `tags` (numpy only), and holds only what the pipeline's
checks use and what the entry points share with it: the original API's own options are in [`compat_options`],
`--device` in [`cli_options`].
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .generate_output import language_code
# the number rules, re-exported: `options` is where every check is found
from .option_rules import (DECODER_START_TOKENS, MAX_NUM_BEAMS, MAX_TARGET_POSITIONS, MIN_CHUNK_SECONDS,
    POOLED_FRAME_SECONDS, TASKS, WINDOW_SECONDS, _is_bool, check_at_time_res, check_chunk_length_s, check_event_values,
    check_int, check_max_new_tokens, check_num_beams, check_number, check_sampling_rate, check_tag_threshold,
    is_real_number, is_whole_number)  # fmt: skip
from .tags import EVENT_THRESHOLD


def check_event_options(
    threshold: Any = None, offset_threshold: Any = None, min_duration: Any = None, min_gap: Any = None
) -> dict[str, float | None]:
    """[`check_event_values`], and `event_offset_threshold` at most the onset `event_threshold` (given or default);
    the ones given, canonical (`None` stays)."""
    checked = check_event_values(threshold, offset_threshold, min_duration, min_gap)
    onset = EVENT_THRESHOLD if checked["event_threshold"] is None else checked["event_threshold"]
    offset = checked["event_offset_threshold"]
    if offset is not None and offset > onset:
        raise ValueError(
            f"event_offset_threshold must be <= the onset event_threshold ({onset:g}), got {offset_threshold!r}."
        )
    return checked



def check_labels(name: str, labels: Any, known: Iterable[str], preferred: Iterable[str] = ()) -> list[str]:
    """`include_labels` / `exclude_labels`: a label name or a list of them, each one of the checkpoint's classes
    (`known`: in every language). A misspelling is answered with the close names among `preferred` (the English
    names and those of the language in use), else among all of `known`."""
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, Iterable) or isinstance(labels, (bytes, Mapping)):
        raise ValueError(f"{name} must be a label name or a list of label names, got {labels!r}.")
    labels = list(labels)
    not_text = [label for label in labels if not isinstance(label, str)]
    if not_text:
        raise ValueError(f"{name} must hold label names (strings), got {not_text[:5]!r}.")
    known = set(known)
    unknown = [label for label in labels if label not in known]
    if unknown:
        hints = []
        for label in unknown[:5]:
            close = difflib.get_close_matches(label, set(preferred), n=3)
            close = close or difflib.get_close_matches(label, known, n=3)
            if close:
                hints.append(f"{label!r}: did you mean {', '.join(repr(c) for c in close)}?")
        hint = (" " + " ".join(hints)) if hints else ""
        raise ValueError(
            f"{name} holds unknown labels {unknown}; labels are the checkpoint's class names "
            f"(e.g. 'Speech', 'Music').{hint}"
        )
    return labels


def check_language(name: str, value: Any) -> Any:
    """A spoken language for Whisper: a code (`"de"`), a name (`"German"`) or a token (`"<|de|>"`); a list of them
    (one per batch item) is checked item by item."""
    if isinstance(value, (list, tuple)):
        return type(value)(check_language(name, item) for item in value)
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

    text = value.strip() if isinstance(value, str) else None
    if text and text.startswith("<|") and text.endswith("|>"):
        text = text[2:-2]
    if text is None or (text.lower() not in LANGUAGES and text.lower() not in TO_LANGUAGE_CODE):
        close = difflib.get_close_matches(str(value).lower(), [*LANGUAGES, *TO_LANGUAGE_CODE], n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f'{name} must be one of Whisper\'s languages, as a code ("de"), a name ("german") or a token ("<|de|>"), '
            f"got {value!r}.{hint}"
        )
    return value


def check_not_a_sample_list(inputs: Any) -> None:
    """A plain list of numbers is one waveform, not a list of inputs: say so once instead of failing per sample."""
    if isinstance(inputs, list) and inputs and all(is_real_number(item) for item in inputs[:64]):
        raise ValueError(
            f"got a list of {len(inputs)} numbers: pass a waveform as a numpy array or torch tensor (with "
            "sampling_rate=...), e.g. np.asarray(samples, dtype=np.float32); a list is read as several inputs."
        )


def check_generate_kwargs(value: Any) -> dict[str, Any]:
    """`generate_kwargs`: `None` or a dict of `generate` arguments keyed by name; returned as a (new) dict."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ValueError(
            f"generate_kwargs must be a dict of generate() arguments, e.g. {{'num_beams': 1}}, got {value!r}."
        )
    return dict(value)


def check_language_and_task(
    language: Any,
    task: Any,
    multilingual: bool,
    model_name: str = "this model",
    names: Sequence[str] = ("language", "task"),
) -> dict[str, Any]:
    """The one rule for `language` / `task` (pipeline, CLI, annotate, compat): returns what to pass to `generate`.

    A multilingual model takes any of Whisper's languages and either task. An English-only model has no language or
    task tokens: English (or no language) and `"transcribe"` are what it does anyway and are dropped; another
    language or `"translate"` cannot be honoured and is refused (never dropped silently). `names` name the options in
    the message (e.g. `("--language", "--task")`).
    """
    if task is not None and task not in TASKS:
        raise ValueError(f'{names[1]} must be "transcribe" or "translate", got {task!r}.')
    if language is not None:
        check_language(names[0], language)
    if multilingual:
        return {key: value for key, value in (("language", language), ("task", task)) if value is not None}
    languages = language if isinstance(language, (list, tuple)) else [language]
    foreign = [item for item in languages if item is not None and language_code(item) != "en"]
    if foreign or task == "translate":
        asked = [f"{names[0]} {foreign[0]!r}"] if foreign else []
        asked += [f"{names[1]} 'translate'"] if task == "translate" else []
        raise ValueError(
            f"{model_name} is an English-only model: it has no {' or '.join(asked)}. Use a multilingual model "
            f"(e.g. small rather than small.en), or leave out {' and '.join(names)}."
        )
    return {}


def check_pipeline_options(
    config: Any = None,
    known_labels: Iterable[str] | None = None,
    multilingual: bool | None = None,
    model_name: str = "this model",
    preferred_labels: Iterable[str] = (),
    **options: Any,
) -> dict[str, Any]:
    """Checks the `pipeline("whisper-at")` call options that are given (not `None`); returns them canonical.

    Args:
        config: the model's `WhisperATConfig` (for `at_time_res`, `max_new_tokens`); `None` checks Whisper's
            defaults.
        known_labels: every class name the checkpoint has (all languages), for `include_labels`/`exclude_labels`.
        preferred_labels: the names a misspelled label is matched against first (English and the label language).
        multilingual: whether the model is (its `generation_config.is_multilingual`); when given, `language` and
            `task` go through [`check_language_and_task`] (named `model_name` in its message).
        options: `at_time_res`, `top_k`, `tag_threshold`, `include_labels`, `exclude_labels`, `sampling_rate`,
            `batch_size`, `num_beams`, `max_new_tokens`, `chunk_length_s`, `stride_length_s`, `language`, `task`,
            `label_language`, `return_timestamps`, `generate_kwargs`, `return_events`, `event_threshold`,
            `event_offset_threshold`, `event_min_duration`, `event_min_gap`; others are passed through unchecked.
    """
    checked = dict(options)
    if multilingual is not None and (options.get("language") is not None or options.get("task") is not None):
        check_language_and_task(options.get("language"), options.get("task"), multilingual, model_name)
    event_names = ("event_threshold", "event_offset_threshold", "event_min_duration", "event_min_gap")
    if any(options.get(name) is not None for name in event_names):
        events = check_event_options(*(options.get(name) for name in event_names))
        checked.update({name: value for name, value in events.items() if name in options})
    for name, value in options.items():
        if value is None:
            continue
        if name == "at_time_res":
            checked[name] = check_at_time_res(value, config)
        elif name in ("top_k", "batch_size"):
            checked[name] = check_int(name, value)
        elif name == "num_beams":
            checked[name] = check_num_beams(value)
        elif name == "max_new_tokens":
            checked[name] = check_max_new_tokens(value, config)
        elif name == "generate_kwargs":
            checked[name] = check_generate_kwargs(value)
        elif name == "task":
            if value not in TASKS:
                raise ValueError(f'task must be "transcribe" or "translate", got {value!r}.')
        elif name == "tag_threshold":
            checked[name] = check_tag_threshold(value)
        elif name == "sampling_rate":
            checked[name] = check_sampling_rate(value)
        elif name in ("include_labels", "exclude_labels"):
            known = known_labels if known_labels is not None else ()
            checked[name] = check_labels(name, value, known, preferred_labels)
        elif name == "chunk_length_s":
            checked[name] = check_chunk_length_s(value)
        elif name == "stride_length_s":
            values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
            if len(values) not in (1, 2):
                raise ValueError(f"stride_length_s must be a number or a (left, right) pair, got {value!r}.")
            items = [check_number(name, item, 0.0) for item in values]
            checked[name] = items[0] if values is not value else items  # numpy scalars as Python floats
        elif name == "language":
            checked[name] = check_language(name, value)
        elif name == "label_language":
            if not isinstance(value, str) or not value:
                raise ValueError(f'label_language must be "follow_asr" or a language code such as "de", got {value!r}.')
        elif name == "return_events":
            if not _is_bool(value):
                raise ValueError(f"return_events must be True or False, got {value!r}.")
            checked[name] = bool(value)
        elif name == "return_timestamps":
            if value not in (True, False, "word"):
                raise ValueError(f'return_timestamps must be True, False or "word", got {value!r}.')
    return checked


__all__ = [
    "DECODER_START_TOKENS",
    "MAX_NUM_BEAMS",
    "MAX_TARGET_POSITIONS",
    "MIN_CHUNK_SECONDS",
    "POOLED_FRAME_SECONDS",
    "TASKS",
    "WINDOW_SECONDS",
    "check_at_time_res",
    "check_chunk_length_s",
    "check_event_options",
    "check_event_values",
    "check_generate_kwargs",
    "check_int",
    "check_labels",
    "check_language",
    "check_language_and_task",
    "check_max_new_tokens",
    "check_not_a_sample_list",
    "check_num_beams",
    "check_number",
    "check_pipeline_options",
    "check_sampling_rate",
    "check_tag_threshold",
    "is_real_number",
    "is_whole_number",
]
