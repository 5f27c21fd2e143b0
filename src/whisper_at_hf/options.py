"""Checks of user-facing options, run where they enter (pipeline call, CLI, compat API) before any audio is decoded
or any model runs, so a wrong value costs no work and the message names the option, the value and what is allowed.

Every check raises `ValueError` (a `TypeError` is never leaked for a value of the wrong kind) and returns the value
in its canonical type. `at_time_res` is checked by the config's [`window_frames`], the one rule for it. The pipeline
copies this module beside checkpoints, so it imports nothing from the package but the config and the event defaults
of `tags` (numpy only).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .configuration_whisper_at import window_frames
from .tags import EVENT_THRESHOLD

# Whisper's geometry, for checks made before a model (and its config) is loaded: 0.4 s pooled frames (20 encoder
# frames of 20 ms) and 30 s seen by one encoder pass. With a config at hand, `config.at_window_frames` decides.
POOLED_FRAME_SECONDS = 0.4
WINDOW_SECONDS = 30.0


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not _is_bool(value)


def _is_bool(value: Any) -> bool:
    return type(value).__name__ in ("bool", "bool_")


def _is_whole(value: Any) -> bool:
    """An int, a numpy integer or a float holding a whole number (`5.0`), but not a bool."""
    if isinstance(value, numbers.Integral) and not _is_bool(value):
        return True
    return _is_real(value) and math.isfinite(value) and float(value).is_integer()


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """A whole number `>= minimum` (e.g. `top_k`, `batch_size`, `num_beams`)."""
    if not _is_whole(value) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}.")
    return int(value)


def check_number(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
    allow_infinite: bool = False,
) -> float:
    """A real number within `[minimum, maximum]` (`(minimum, maximum]` with `strict_minimum`); never NaN, and
    finite unless `allow_infinite` (e.g. a threshold of `-inf` that keeps everything)."""
    ok = _is_real(value) and not math.isnan(value) and (allow_infinite or math.isfinite(value))
    if ok and minimum is not None:
        ok = value > minimum if strict_minimum else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        low = "" if minimum is None else f"{'>' if strict_minimum else '>='} {minimum:g}"
        high = "" if maximum is None else f"<= {maximum:g}"
        allowed = " and ".join(part for part in (low, high) if part) or "finite"
        raise ValueError(f"{name} must be a number {allowed}, got {value!r}.")
    return float(value)


def check_tag_threshold(value: Any) -> float:
    """A probability in `[0, 1]`."""
    return check_number("tag_threshold", value, 0.0, 1.0)


def check_event_options(
    threshold: Any = None, offset_threshold: Any = None, min_duration: Any = None, min_gap: Any = None
) -> dict[str, float | None]:
    """`event_threshold` (onset) in `(0, 1]`, `event_offset_threshold` in `[0, 1]` and at most the onset (given or
    default), `event_min_duration` / `event_min_gap` seconds `>= 0`; the ones given, canonical (`None` stays)."""
    checked: dict[str, float | None] = {
        "event_threshold": None if threshold is None else check_number("event_threshold", threshold, 0.0, 1.0, True),
        "event_offset_threshold": None
        if offset_threshold is None
        else check_number("event_offset_threshold", offset_threshold, 0.0, 1.0),
        "event_min_duration": None if min_duration is None else check_number("event_min_duration", min_duration, 0.0),
        "event_min_gap": None if min_gap is None else check_number("event_min_gap", min_gap, 0.0),
    }
    onset = EVENT_THRESHOLD if checked["event_threshold"] is None else checked["event_threshold"]
    offset = checked["event_offset_threshold"]
    if offset is not None and offset > onset:
        raise ValueError(
            f"event_offset_threshold must be <= the onset event_threshold ({onset:g}), got {offset_threshold!r}."
        )
    return checked


def check_sampling_rate(value: Any) -> int:
    """The sampling rate of array inputs: a positive whole number of Hz."""
    if not _is_whole(value) or value <= 0:
        raise ValueError(f"sampling_rate must be a positive whole number of Hz (e.g. 16000), got {value!r}.")
    return int(value)


def check_at_time_res(value: Any, config: Any = None) -> float:
    """A tag window in seconds: a positive multiple of the pooled frame (0.4 s), at most one Whisper pass (30 s).

    With a `WhisperATConfig`, its `at_window_frames` decides (the geometry of that checkpoint); without one (e.g. in
    the CLI before the model is loaded), Whisper's 0.4 s / 30 s.
    """
    if config is not None:
        config.at_window_frames(value)
    else:
        window_frames(value, POOLED_FRAME_SECONDS, round(WINDOW_SECONDS / POOLED_FRAME_SECONDS))
    return float(value)


def check_labels(name: str, labels: Any, known: Iterable[str]) -> list[str]:
    """`include_labels` / `exclude_labels`: a label name or a list of them, each one of the checkpoint's classes."""
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
            close = difflib.get_close_matches(label, known, n=3)
            if close:
                hints.append(f"{label!r}: did you mean {', '.join(repr(c) for c in close)}?")
        hint = (" " + " ".join(hints)) if hints else ""
        raise ValueError(
            f"{name} holds unknown labels {unknown}; labels are the checkpoint's class names "
            f"(e.g. 'Speech', 'Music').{hint}"
        )
    return labels


def check_class_indices(name: str, indices: Any, num_labels: int) -> list[int]:
    """Class indices (e.g. the original API's `include_class_list`): whole numbers in `[0, num_labels)`."""
    if isinstance(indices, (str, bytes, Mapping)) or not isinstance(indices, Iterable):
        raise ValueError(f"{name} must be a list of class indices, got {indices!r}.")
    indices = list(indices)
    bad = [index for index in indices if not _is_whole(index) or not 0 <= index < num_labels]
    if bad:
        raise ValueError(f"{name} must hold whole class indices in [0, {num_labels}), got {bad[:5]!r}.")
    return [int(index) for index in indices]


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
    if isinstance(inputs, list) and inputs and all(_is_real(item) for item in inputs[:64]):
        raise ValueError(
            f"got a list of {len(inputs)} numbers: pass a waveform as a numpy array or torch tensor (with "
            "sampling_rate=...), e.g. np.asarray(samples, dtype=np.float32); a list is read as several inputs."
        )


def check_pipeline_options(
    config: Any = None, known_labels: Iterable[str] | None = None, **options: Any
) -> dict[str, Any]:
    """Checks the `pipeline("whisper-at")` call options that are given (not `None`); returns them canonical.

    Args:
        config: the model's `WhisperATConfig` (for `at_time_res`); `None` checks Whisper's default geometry.
        known_labels: every class name the checkpoint has (all languages), for `include_labels`/`exclude_labels`.
        options: `at_time_res`, `top_k`, `tag_threshold`, `include_labels`, `exclude_labels`, `sampling_rate`,
            `batch_size`, `num_beams`, `max_new_tokens`, `chunk_length_s`, `stride_length_s`, `language`,
            `label_language`, `return_timestamps`, `return_events`, `event_threshold`, `event_offset_threshold`,
            `event_min_duration`, `event_min_gap`; others are passed through unchecked.
    """
    checked = dict(options)
    event_names = ("event_threshold", "event_offset_threshold", "event_min_duration", "event_min_gap")
    if any(options.get(name) is not None for name in event_names):
        events = check_event_options(*(options.get(name) for name in event_names))
        checked.update({name: value for name, value in events.items() if name in options})
    for name, value in options.items():
        if value is None:
            continue
        if name == "at_time_res":
            checked[name] = check_at_time_res(value, config)
        elif name in ("top_k", "batch_size", "num_beams", "max_new_tokens"):
            checked[name] = check_int(name, value)
        elif name == "tag_threshold":
            checked[name] = check_tag_threshold(value)
        elif name == "sampling_rate":
            checked[name] = check_sampling_rate(value)
        elif name in ("include_labels", "exclude_labels"):
            checked[name] = check_labels(name, value, known_labels if known_labels is not None else ())
        elif name == "chunk_length_s":
            checked[name] = check_number(name, value, 0.0, WINDOW_SECONDS)
        elif name == "stride_length_s":
            values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
            if len(values) not in (1, 2):
                raise ValueError(f"stride_length_s must be a number or a (left, right) pair, got {value!r}.")
            for item in values:
                check_number(name, item, 0.0)
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
    "POOLED_FRAME_SECONDS",
    "WINDOW_SECONDS",
    "check_at_time_res",
    "check_class_indices",
    "check_event_options",
    "check_int",
    "check_labels",
    "check_language",
    "check_not_a_sample_list",
    "check_number",
    "check_pipeline_options",
    "check_sampling_rate",
    "check_tag_threshold",
]
